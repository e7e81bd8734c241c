"""Loading an export: the bundle's inference settings drive ranking, and command-line overrides replace them."""

from __future__ import annotations

import json
import logging
import re

import pytest
from clitools import run_cli

from rerank_rl.rl.errors import UserError
from rerank_rl.rl.serving import load_reranker


@pytest.fixture
def export_dir(tmp_path, tiny_lm_path):
    (tmp_path / "model").symlink_to(tiny_lm_path, target_is_directory=True)
    bundle = {"paradigm": "groupwise", "variant": "answer_only", "dtype": "float32",
              "inference": {"window": 6, "stride": 3, "repeats": 1, "fusion_weight": None, "max_doc_chars": 50,
                            "seed": 0, "batch_size": 8}}
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    return tmp_path


EXAMPLE = {"qid": "q1", "query": "what is a tiny test", "doc_ids": [f"d{i}" for i in range(6)],
           "doc_texts": [f"passage number {i}" for i in range(6)], "first_stage_scores": [6, 5, 4, 3, 2, 1],
           "labels": [0] * 6}


def _prompt_sizes(reranker) -> list[int]:
    """Rank one query with a recording generator; returns the number of passages in each prompt."""
    seen = []

    def generate(prompts, max_new_tokens):
        seen.extend(p[-1]["content"].count("\n[") for p in prompts)
        return ['<answer>{"[1]": 3}</answer>'] * len(prompts)

    reranker.generate = generate
    run = reranker.rerank_run([EXAMPLE])
    assert sorted(d for d, _ in run["q1"]) == sorted(EXAMPLE["doc_ids"])
    return seen


def test_bundle_settings_and_overrides(export_dir):
    assert _prompt_sizes(load_reranker(export_dir, paradigm="groupwise")) == [6]
    # window 3, stride 1 over 6 documents: windows start at 0, 1, 2, 3
    assert _prompt_sizes(load_reranker(export_dir, window=3, stride=1, batch_size=None)) == [3, 3, 3, 3]


def test_bad_overrides_and_paradigm(export_dir):
    with pytest.raises(UserError, match="no inference setting named windw"):
        load_reranker(export_dir, windw=3)
    with pytest.raises(UserError, match="trained as 'groupwise'"):
        load_reranker(export_dir, paradigm="classifier")


def test_ray_workers_silence_the_placement_group_cleaner():
    from ray.train.v2._internal.execution.controller import placement_group_cleaner

    from rerank_rl.rl.orchestration import quiet_ray_workers

    quiet_ray_workers()
    assert not placement_group_cleaner.logger.isEnabledFor(logging.WARNING)
    assert placement_group_cleaner.logger.isEnabledFor(logging.ERROR)


def test_evaluate_table_says_what_the_model_answered(export_dir, tmp_path):
    hits = [{"qid": "q1", "docid": d, "content": f"text about {d}", "score": s, "rank": r}
            for r, (d, s) in enumerate([("d1", 3.0), ("d2", 2.0), ("d3", 1.0)], 1)]
    (tmp_path / "cands.json").write_text(json.dumps([{"query": "a question", "hits": hits}]))
    (tmp_path / "qrels.txt").write_text("q1 0 d2 1\n")
    result = run_cli("evaluate", "--model", str(export_dir), "--paradigm", "groupwise",
                     "--candidates", str(tmp_path / "cands.json"), "--qrels", str(tmp_path / "qrels.txt"))
    assert result.returncode == 0, result.stderr[-2000:]
    # One window of the 3 passages (the bundle's window is 6); the random tiny model may score none of them.
    assert re.search(r"answers: [0-3] of 3 passages scored over 1 windows", result.stdout), result.stdout


def _evaluate(export_dir, tmp_path, capsys, *extra: str) -> tuple[int, str, str]:
    """`rerank-rl evaluate --model` in-process (the tiny model loads in a second); returns (code, stdout, stderr)."""
    from rerank_rl.rl.cli import main

    hits = [{"qid": "q1", "docid": d, "content": f"text about {d}", "score": s, "rank": r}
            for r, (d, s) in enumerate([("d1", 3.0), ("d2", 2.0), ("d3", 1.0)], 1)]
    (tmp_path / "cands.json").write_text(json.dumps([{"query": "a question", "hits": hits}]))
    (tmp_path / "qrels.txt").write_text("q1 0 d2 1\n")
    code = main(["evaluate", "--model", str(export_dir), "--paradigm", "groupwise", "--candidates",
                 str(tmp_path / "cands.json"), "--qrels", str(tmp_path / "qrels.txt"), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_reports_the_fusion_it_applies(export_dir, tmp_path, capsys):
    bundle = json.loads((export_dir / "bundle.json").read_text())
    bundle["inference"]["fusion_weight"] = 0.6
    (export_dir / "bundle.json").write_text(json.dumps(bundle))
    runs = {}
    for name, extra in [("export's", []), ("given", ["--fusion", "0.6"]), ("none", ["--fusion", "none"])]:
        code, out, _ = _evaluate(export_dir, tmp_path, capsys, "--json", "--run-out", str(tmp_path / "run"), *extra)
        assert code == 0
        payload = json.loads(out)
        assert (payload["fusion"], payload["fusion_weight"]) == ((False, None) if name == "none" else (True, 0.6))
        runs[name] = (tmp_path / "run").read_text()
    assert runs["export's"] == runs["given"] != runs["none"]  # the bundle's weight is applied, and none turns it off
    code, out, _ = _evaluate(export_dir, tmp_path, capsys)
    assert code == 0 and "fusion on (weight 0.6)" in " ".join(out.split())
    with pytest.raises(SystemExit) as caught:
        _evaluate(export_dir, tmp_path, capsys, "--fusion", "high")
    assert caught.value.code == 2


@pytest.mark.parametrize("extra", [["--stride", "0"], ["--window", "4", "--stride", "5"], ["--window", "2"]])
def test_evaluate_rejects_a_stride_that_skips_passages(export_dir, tmp_path, capsys, extra):
    code, out, err = _evaluate(export_dir, tmp_path, capsys, *extra)  # the bundle's window 6, stride 3
    assert code == 2 and not out
    assert err.count("\n") == 1 and "--stride" in err
    assert err.startswith("error: stride must be between 1 and the window")


def test_inference_settings_carry_scoring_and_the_reasoning_budget():
    from rerank_rl.rl.config import CONFIG_DIR, load_recipe
    from rerank_rl.rl.serving import inference_settings

    answer_only = inference_settings(load_recipe(CONFIG_DIR / "grouprank.yaml"))
    assert answer_only["scoring"] == "expected" and answer_only["decode_budget"] is None  # sized by the answer
    reasoning = load_recipe(CONFIG_DIR / "grouprank.yaml", ["variant=reasoning", "evaluate.scoring=greedy",
                                                            "sft.loss=tokens", "rl.rewards={grouprank: 1.0}",
                                                            "rl.max_completion_length=300"])
    settings = inference_settings(reasoning)
    # the reasoning variant decodes as long as it trained to write, not 12 + 8n + 64 tokens
    assert settings["scoring"] == "greedy" and settings["decode_budget"] == 300


def test_reasoning_variant_cannot_use_expected_scoring():
    from rerank_rl.rl.config import CONFIG_DIR, load_recipe

    with pytest.raises(UserError, match="reasoning variant needs scoring: greedy"):
        load_recipe(CONFIG_DIR / "grouprank.yaml", ["variant=reasoning", "rl.rewards={grouprank: 1.0}"])
