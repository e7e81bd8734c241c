"""Instruments that show whether a run learns: per-grade mean scores (probes and evaluation), the report's verdict,
and the probe callback inside real SFT and GRPO trainers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clitools import REPO
from rerank_rl.rl.probe import grade_means, probe_examples, read_probes, score_std
from rerank_rl.rl.report import separation, write_report


def test_grade_means_average_the_0_to_10_score_per_gold_grade():
    qrels = {"q1": {"a": 3, "b": 0, "c": 1}, "q2": {"d": 3}}
    # Ranking scores are mean(answer / 10) minus a 1e-6 tie-break per position.
    run = {"q1": [("a", 0.9), ("b", 0.1 - 1e-6), ("c", 0.0 - 2e-6), ("x", 0.5)], "q2": [("d", 0.7)]}
    means, counts = grade_means(run, qrels)
    assert counts == {"0": 2, "1": 1, "3": 2}  # "x" is unjudged: grade 0, as trec_eval counts it
    assert means == pytest.approx({"0": 3.0, "1": 0.0, "3": 8.0}, abs=1e-3)
    assert list(means) == ["0", "1", "3"]


def test_score_std_and_probe_examples():
    assert score_std({}) == 0.0 and score_std({"10": 12}) == 0.0
    assert score_std({"0": 1, "10": 1}) == pytest.approx(5.0)
    examples = [{"qid": str(i), "query": "q", "doc_ids": list("abcdefghijkl"), "doc_texts": list("ABCDEFGHIJKL"),
                 "labels": [3, 0, 0, 1, 2, 0] * 2, "first_stage_scores": list(range(12, 0, -1))} for i in range(5)]
    cut = probe_examples(examples, queries=2, window=11)
    assert [ex["qid"] for ex in cut] == ["0", "1"]
    assert cut[0]["doc_ids"] == list("abcdefghijk") and cut[0]["labels"] == [3, 0, 0, 1, 2, 0, 3, 0, 0, 1, 2]
    assert len(examples[0]["doc_ids"]) == 12
    # single-passage windows still probe several passages (grades) of each list
    assert [len(ex["doc_ids"]) for ex in probe_examples(examples, queries=2, window=1)] == [10, 10]


def _probe(stage: str, step: int, means: dict, **extra) -> dict:
    return {"stage": stage, "step": step, "queries": 2, "passages": 8, "grade_means": means,
            "grade_counts": {g: 2 for g in means}, "unscored_passages": 1, "score_counts": {"0": 5, "10": 2},
            "score_std": 4.5, **extra}


def _write_probes(run_dir: Path, records: list[dict]) -> None:
    (run_dir / "metrics").mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics" / "probe.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_read_probes_orders_stages_and_keeps_the_rerun_of_a_step(tmp_path):
    _write_probes(tmp_path, [_probe("rl", 0, {"0": 1.0}), _probe("sft", 2, {"0": 2.0}), _probe("sft", 0, {"0": 0.0}),
                             _probe("sft", 2, {"0": 9.0})])  # a resumed stage probed step 2 again
    with (tmp_path / "metrics" / "probe.jsonl").open("a") as f:
        f.write('{"stage": "rl", "st')  # torn by a kill
    probes = read_probes(tmp_path)
    assert [(p["stage"], p["step"]) for p in probes] == [("sft", 0), ("sft", 2), ("rl", 0)]
    assert probes[1]["grade_means"] == {"0": 9.0}


def test_separation_wording():
    flat = separation({"0": 2.0, "1": 2.1, "2": 2.2, "3": 2.5}, "after training")
    assert flat.startswith("The per-grade means did not separate: the model does not yet tell relevant from "
                           "irrelevant passages")
    rising = separation({"0": 0.5, "1": 1.2, "2": 6.0, "3": 7.8}, "after training")
    assert rising.startswith("The per-grade means separated: after training, the mean score rises with the gold grade")
    # DESIGN.md §6: small groups start the reading, but grade 3 sits far below grade 2
    partly = separation({"0": 0.5, "1": 1.2, "2": 7.5, "3": 3.3}, "after training")
    assert partly.startswith("The per-grade means separated only partly") and "grade 3 averages 4.2 below grade 2" in partly
    assert separation({"0": 1.0, "1": 0.7, "3": 5.0}, "x").startswith("The per-grade means separated:")  # 0.3 < slack
    assert "cannot be judged" in separation({"0": 4.0}, "x")


def test_long_runs_show_evenly_spaced_probes_with_each_stage_edge():
    from rerank_rl.rl.report import _grade_table

    probes = [_probe("sft", step, {"0": 1.0}) for step in range(0, 300, 10)] + \
        [_probe("rl", step, {"0": 1.0}) for step in range(0, 95, 10)]
    rows = [line.split(" |")[0].removeprefix("| ") for line in _grade_table(None, probes, None)[2:]]
    assert len(rows) <= 16
    assert rows[0] == "probe, sft step 0 (before)" and rows[-1] == "probe, rl step 90 (after)"
    assert {"probe, sft step 290", "probe, rl step 0"} <= set(rows)


def _synthetic_run(run_dir: Path, after_means: dict, fused: bool = False) -> None:
    """The files a finished run leaves, with chosen numbers: probes, trainer logs, before/after metrics."""
    _write_probes(run_dir, [_probe("sft", 0, {"0": 3.0, "3": 3.0}), _probe("sft", 10, {"0": 2.0, "3": 4.0}),
                            _probe("rl", 0, {"0": 2.0, "3": 4.0}), _probe("rl", 4, after_means)])
    for stage, rows in (("sft", [{"loss": 0.8, "step": 1}, {"probe/grade_0_mean": 2.0, "step": 10},
                                 {"loss": 0.2, "step": 10}]),
                        ("rl", [{"reward": 0.1, "reward_std": 0.3, "reward_components/ndcg": 0.2,
                                 "zero_variance_groups": 1.0, "frac_zero_variance": 0.5, "step": 1},
                                {"reward": 0.4, "reward_std": 0.2, "reward_components/ndcg": 0.5,
                                 "zero_variance_groups": 0.0, "frac_zero_variance": 0.0, "step": 4}])):
        (run_dir / stage).mkdir()
        (run_dir / stage / "trainer_state.json").write_text(json.dumps({"log_history": rows}))
    scores = {"ndcg@10": 0.5, "queries": 2}
    answers = {"windows": 2, "passages": 8, "unscored_passages": 0, "score_counts": {"0": 6, "10": 2}}
    for name, means in (("before", {"0": 3.0, "3": 3.0}), ("after", after_means)):
        payload = {"paradigm": "groupwise", "reranked": scores, "first_stage": scores, "fusion": fused,
                   "fusion_weight": 0.6 if fused else None, "rel_level": 2, "answers": answers,
                   "grade_means": means, "grade_counts": {g: 4 for g in means}, "grade_means_fused": fused}
        (run_dir / "metrics" / f"{name}.json").write_text(json.dumps(payload))


def test_report_says_when_the_grades_do_not_separate(tmp_path):
    _synthetic_run(tmp_path, {"0": 2.4, "3": 2.9})
    report = write_report(tmp_path).read_text()
    section = report[report.index("## Does it learn?"):]
    assert ("The per-grade means did not separate: the model does not yet tell relevant from irrelevant passages "
            "(on the evaluation set after training") in section
    assert "| probe, sft step 0 (before) | 3.00 | 3.00 | 4.50 | 1/8 |" in section
    assert "| probe, rl step 4 (after) | 2.40 | 2.90 |" in section
    assert "| after training, evaluation set | 2.40 | 2.90 | 4.33 | 0/8 |" in section
    assert "SFT loss: 0.800 (first step) -> 0.200 (last step)" in section
    assert "RL reward (mean +- std over a step's completions): 0.100 +- 0.300 (step 1) -> 0.400 +- 0.200 (step 4)" \
        in section
    assert "ndcg 0.200 -> 0.500" in section and "Zero-variance groups filtered out of the loss: 1" in section
    assert "- last probe (rl step 4): 0 x5, 10 x2 (std 4.50); 1 of 8 passages unscored" in section
    for png in ("probe.png", "sft_loss.png", "rewards.png", "metrics.png"):
        assert (tmp_path / png).stat().st_size > 0 and f"({png})" in report


def test_report_says_when_the_grades_separate_and_judges_fused_runs_by_the_probe(tmp_path):
    _synthetic_run(tmp_path, {"0": 0.5, "1": 3.0, "3": 8.0})
    assert "The per-grade means separated: on the evaluation set after training, the mean score rises" in \
        write_report(tmp_path).read_text()
    fused = tmp_path / "fused"
    fused.mkdir()
    _synthetic_run(fused, {"0": 0.5, "3": 8.0}, fused=True)
    report = write_report(fused).read_text()
    assert "The per-grade means separated: at the last probe (rl step 4)" in report  # fused scores are not answers
    assert "| after training, evaluation set (fused with the first stage) |" in report


def test_probe_callback_logs_during_sft_and_grpo(tmp_path, tiny_lm_path, monkeypatch):
    """Real trainers on the tiny model: probes at start, every step and end; rows in log_history; GRPO's own
    reward rows untouched."""
    from rerank_rl.rl.config import load_recipe
    from rerank_rl.rl.stages.grpo import run_rl
    from rerank_rl.rl.stages.prepare import prepare_data
    from rerank_rl.rl.stages.sft import run_sft

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)  # common_args sets it per stage; restored after
    config = load_recipe(REPO / "configs" / "grouprank_tiny.yaml",
                         ["ray.enabled=false", "evaluate.probe_every=2", "evaluate.probe_queries=2", "sft.max_steps=3",
                          "rl.max_steps=1", "sft.save_steps=10", "rl.save_steps=10"])
    prepare_data(config, tmp_path)
    merged = run_sft(config, tmp_path, str(tiny_lm_path))
    run_rl(config, tmp_path, str(merged))

    probes = read_probes(tmp_path)
    assert [(p["stage"], p["step"]) for p in probes] == [("sft", 0), ("sft", 2), ("sft", 3), ("rl", 0), ("rl", 1)]
    first = probes[0]
    assert first["queries"] == 2 and first["passages"] == 12  # two lists cut to the window of 6
    assert sum(first["grade_counts"].values()) == 12 and set(first["grade_means"]) <= {"0", "1", "2", "3"}
    assert sum(first["score_counts"].values()) + first["unscored_passages"] == 12
    for stage, steps in (("sft", [0, 2, 3]), ("rl", [0, 1])):
        history = json.loads((tmp_path / stage / "trainer_state.json").read_text())["log_history"]
        assert [r["step"] for r in history if "probe/score_std" in r] == steps
        probe_rows = [r for r in history if "probe/score_std" in r]
        assert all("probe/grade_0_mean" in r and not {"loss", "reward", "entropy"} & set(r) for r in probe_rows)
    rl_history = json.loads((tmp_path / "rl" / "trainer_state.json").read_text())["log_history"]
    assert [r["step"] for r in rl_history if "reward" in r] == [1]
    for stage in ("sft", "rl"):  # each stage logs into its own folder, even in one process
        assert list((tmp_path / "tensorboard" / stage).rglob("events.out.tfevents*")), stage
    report = write_report(tmp_path).read_text()
    assert "## Does it learn?" in report and "| probe, rl step 1 (after) |" in report
