"""The main job end to end: stages, run folder, export/reload, resume after SIGKILL, Ray Train workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets import load_from_disk

from clitools import REPO, run_cli, write_candidates

TINY_RECIPE = str(REPO / "configs" / "grouprank_tiny.yaml")


def _train(run_dir: Path, *overrides: str, resume: bool = False, popen: bool = False):
    args = ["train", "--resume", str(run_dir)] if resume else ["train", TINY_RECIPE, "--output-dir", str(run_dir)]
    for item in overrides:
        args += ["--set", item]
    if popen:
        return subprocess.Popen([sys.executable, "-m", "rerank_rl.rl.cli", *args], cwd=REPO, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = run_cli(*args, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_default_model_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    _train(run_dir)
    state = json.loads((run_dir / "state.json").read_text())
    assert list(state["done"]) == ["data", "eval_before", "sft", "rl", "eval_after", "export"]
    after = json.loads((run_dir / "metrics/after.json").read_text())
    assert after["first_stage"]["queries"] == after["reranked"]["queries"] == 3 and after["fusion"] is False
    assert (run_dir / "metrics/after.run").read_text().count("\n") == 3 * 6
    for path in ("report.md", "metrics.png", "rewards.png", "export/bundle.json", "export/model/config.json",
                 "export/adapter/adapter_config.json", "config.yaml"):
        assert (run_dir / path).exists(), path
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents*"))
    report = (run_dir / "report.md").read_text()
    assert "before training" in report and "after training" in report
    assert after["paradigm"] == "groupwise" and "passages scored over" in report  # answers, via the paradigm

    # Reloading the export through the CLI reproduces the run's own evaluation.
    examples = [dict(r) for r in load_from_disk(str(run_dir / "data/eval"))]
    cands, qrels = write_candidates(examples, tmp_path)
    result = run_cli("evaluate", "--model", str(run_dir / "export"), "--paradigm", "groupwise",
                     "--candidates", str(cands), "--qrels", str(qrels), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads(result.stdout)
    shared = set(after["reranked"]) & set(payload)
    assert {"ndcg@10", "mrr@10", "queries"} <= shared
    for metric in shared:
        assert payload[metric] == pytest.approx(after["reranked"][metric], abs=1e-9), metric
    assert payload["first_stage"]["ndcg@10"] == pytest.approx(after["first_stage"]["ndcg@10"])
    assert payload["answers"] == after["answers"]  # same windows, same greedy answers
    assert payload["answers"]["windows"] >= len(examples)

    # `rerank-rl export` rebuilds the same bundle elsewhere.
    again = run_cli("export", str(run_dir), "--out", str(tmp_path / "export2"))
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((tmp_path / "export2/bundle.json").read_text()) == \
        json.loads((run_dir / "export/bundle.json").read_text())


def _kill_at(proc, checkpoint: Path) -> None:
    """SIGKILL a training run as soon as `checkpoint` has finished saving."""
    deadline = time.time() + 900
    while not (checkpoint / "trainer_state.json").exists():
        assert proc.poll() is None, "training ended before it could be interrupted"
        assert time.time() < deadline
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _weights(folder: Path, name: str = "model.safetensors") -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / name))


# The tiny random model never writes a valid answer, so GroupRank alone gives every completion -0.5: zero advantages
# and LoRA weights that never move. This deterministic plug-in reward tells completions apart by their length.
LENGTH_REWARD = """
def by_length(prompts, completions, **columns):
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [min(1.0, len(t) / 1000) for t in texts]
"""


def test_resume_after_sigkill_matches_uninterrupted(tmp_path, tiny_lm_path):
    plugin = tmp_path / "length_reward.py"
    plugin.write_text(LENGTH_REWARD)
    settings = [f"model.name={tiny_lm_path}", "sft.enabled=false", "evaluate.before_training=false",
                "rl.max_steps=4", "rl.save_steps=1",
                f'rl.rewards={{grouprank_answer_only: 1.0, "{plugin}:by_length": 1.0}}']
    straight = tmp_path / "straight"
    _train(straight, *settings)

    killed = tmp_path / "killed"
    _kill_at(_train(killed, *settings, popen=True), killed / "rl" / "checkpoint-2")
    assert not (killed / "rl" / "merged").exists()
    _train(killed, resume=True)

    history = json.loads((killed / "rl" / "trainer_state.json").read_text())
    assert history["global_step"] == 4
    a, b = _weights(straight / "rl" / "merged"), _weights(killed / "rl" / "merged")
    # Training moved the weights (LoRA B starts at zero), so the comparison below can fail.
    adapter = _weights(straight / "rl" / "adapter", "adapter_model.safetensors")
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)
    base = _weights(tiny_lm_path)
    assert any(not (base[k] == a[k]).all() for k in base.keys() & a.keys())
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert json.loads((straight / "metrics/after.json").read_text())["reranked"] == \
        json.loads((killed / "metrics/after.json").read_text())["reranked"]


def test_slot_sft_resumes_after_sigkill_and_exports(tmp_path, tiny_lm_path):
    """The slot loss runs in its own Trainer: checkpoints, resume and export must work as for TRL's."""
    settings = [f"model.name={tiny_lm_path}", "sft.loss=slots", "data.group_sizes=[1, 2]", "data.groups_per_query=3",
                "sft.max_steps=4", "sft.save_steps=1", "sft.batch_size=1", "rl.enabled=false",
                "evaluate.before_training=false", "evaluate.window=2", "evaluate.stride=2"]
    straight = tmp_path / "straight"
    _train(straight, *settings)
    killed = tmp_path / "killed"
    _kill_at(_train(killed, *settings, popen=True), killed / "sft" / "checkpoint-2")
    _train(killed, resume=True)
    a, b, base = _weights(straight / "sft" / "merged"), _weights(killed / "sft" / "merged"), _weights(tiny_lm_path)
    assert any(not (base[k] == a[k]).all() for k in base.keys() & a.keys())  # the slot loss moved the weights
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    logged = json.loads((straight / "sft" / "trainer_state.json").read_text())["log_history"]
    assert any("rank_loss" in entry and "token_ce" in entry for entry in logged)
    assert (straight / "export/bundle.json").exists()


def test_ray_train_with_two_workers_from_relative_paths(tmp_path, tiny_lm_path):
    """Ray Train workers run in their own session folder: a recipe that names its reward plug-in, DeepSpeed config
    and model folder relatively to where the user ran it must still find them there (rl/paths.py)."""
    import shutil

    user = tmp_path / "user"
    (user / "plugins").mkdir(parents=True)
    (user / "plugins" / "length_reward.py").write_text(LENGTH_REWARD)
    shutil.copytree(tiny_lm_path, user / "models" / "tiny")
    shutil.copy(REPO / "configs" / "deepspeed" / "zero2.json", user / "ds.json")
    overrides = ["model.name=models/tiny", "ray.enabled=true", "ray.num_workers=2", "ray.deepspeed=ds.json",
                 "sft.enabled=false", "evaluate.before_training=false", "rl.max_steps=1", "rl.prompts_per_step=1",
                 "rl.save_steps=1", 'rl.rewards={grouprank_answer_only: 1.0, "plugins/length_reward.py:by_length": 1.0}']
    args = [sys.executable, "-m", "rerank_rl.rl.cli", "train", TINY_RECIPE, "--output-dir", "runs/ray"]
    for item in overrides:
        args += ["--set", item]
    result = subprocess.run(args, cwd=user, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = user / "runs" / "ray"
    assert "export" in json.loads((run_dir / "state.json").read_text())["done"]
    assert (run_dir / "export/model/model.safetensors").exists()
    assert list((run_dir / "rl").glob("checkpoint-1/global_step1"))  # DeepSpeed's own checkpoint: it ran
    logged = json.loads((run_dir / "rl" / "trainer_state.json").read_text())["log_history"]
    values = [row["reward_components/length_reward.py:by_length"] for row in logged
              if "reward_components/length_reward.py:by_length" in row]
    assert values and all(v > 0 for v in values)  # the plug-in scored every completion

    # The console: one line per stage with its figures; Ray's and the libraries' chatter in the run's logs.
    stage_lines = [line.split()[0] for line in result.stdout.splitlines() if line and not line.startswith(" ")]
    assert stage_lines[:4] == ["data", "rl", "eval_after", "export"], result.stdout
    assert "rl          step 1/1, reward" in result.stdout
    chatter = result.stdout + result.stderr
    assert "it/s]" not in chatter and "Token authentication" not in chatter and "find_unused" not in chatter, chatter
    assert "it/s]" in (run_dir / "logs" / "eval_after.log").read_text()  # the bars went to the stage's log


def test_report_describes_answers_through_the_recorded_paradigm():
    from rerank_rl.rl.errors import UserError
    from rerank_rl.rl.report import _answers_line

    answers = {"passages": 4, "unscored_passages": 1, "windows": 2, "score_counts": {"3": 3}}
    line = _answers_line("after training", {"paradigm": "groupwise", "answers": answers})
    assert line.startswith("- after training: 3 of 4 passages scored over 2 windows")
    assert _answers_line("after training", {"answers": answers}) == line  # files without the key: groupwise runs
    assert _answers_line("after training", {"paradigm": "groupwise", "answers": {"passages": 0}}) == ""
    with pytest.raises(UserError, match="unknown paradigm 'pairwise'"):
        _answers_line("after training", {"paradigm": "pairwise", "answers": answers})
