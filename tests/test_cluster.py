"""Fault tolerance on a real two-node Ray cluster (tests/raycluster.py): `ray start --head` plus a second node on this
machine, one CPU each. A tiny GRPO recipe joins it by `ray.address` and trains on 2 Ray Train workers, one per node.
Its reward plug-in kills the rank-1 worker (SIGKILL, as the OOM killer would) in step 3, once checkpoint-2 is on
disk. With `ray.max_failures: 1` Ray Train starts a new worker group, which must resume from checkpoint-2 rather
than retrain from step 0, finish at `rl.max_steps` and leave an export that loads. Without the resume, the second
attempt's first reward call would see step 0; without `FailureConfig`, the run would fail."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from raycluster import LocalCluster

from rerank_rl.rl.config import CONFIG_DIR

TINY = CONFIG_DIR / "grouprank_tiny.yaml"
MAX_STEPS, SAVE_STEPS = 4, 2

# The reward plug-in records every call (rank, process, step) and kills rank 1 once, at the first call after the
# checkpoint of step SAVE_STEPS is complete (rank 0 writes it; rank 1 may get there first).
KILLING_REWARD = """
import json, os, signal, time
from pathlib import Path

RUN = Path({run!r})


def by_length(prompts, completions, trainer_state=None, **columns):
    rank, step = int(os.environ.get("RANK", "0")), trainer_state.global_step
    with open(RUN / "reward_calls.jsonl", "a") as calls:
        calls.write(json.dumps({{"rank": rank, "pid": os.getpid(), "step": step}}) + "\\n")
    checkpoint = RUN / "rl" / "checkpoint-{save}" / "trainer_state.json"
    if rank == 1 and step >= {save} and not (RUN / "killed").exists():
        while not checkpoint.exists():
            time.sleep(0.2)
        (RUN / "killed").write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return [min(1.0, len(c[-1]["content"] if isinstance(c, list) else c) / 1000) for c in completions]
"""


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(nodes=2, cpus_per_node=1, env={"OMP_NUM_THREADS": "1"}) as running:
        yield running


@pytest.mark.slow
def test_killed_worker_restarts_from_the_last_checkpoint(cluster, tmp_path, tiny_lm_path):
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    run.mkdir()
    plugin = tmp_path / "killing_reward.py"
    plugin.write_text(KILLING_REWARD.format(run=str(run), save=SAVE_STEPS))
    settings = [f"model.name={tiny_lm_path}", "ray.enabled=true", f"ray.address={cluster.address}",
                "ray.num_workers=2", "ray.max_failures=1", "sft.enabled=false", "evaluate.enabled=false",
                f"rl.max_steps={MAX_STEPS}", f"rl.save_steps={SAVE_STEPS}", "rl.prompts_per_step=1",
                f'rl.rewards={{"{plugin}:by_length": 1.0}}']
    args = [sys.executable, "-m", "rerank_rl.rl.cli", "train", str(TINY), "--output-dir", str(run)]
    for item in settings:
        args += ["--set", item]
    result = subprocess.run(args, env=cluster.env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]

    killed = int((run / "killed").read_text())
    calls = [json.loads(line) for line in (run / "reward_calls.jsonl").read_text().splitlines()]
    first = {c["pid"] for c in calls if c["step"] == 0}  # the first worker group's processes
    assert killed in first and len(first) == 2
    after = [c for c in calls if c["pid"] not in first]
    assert {c["rank"] for c in after} == {0, 1}
    # the new group started at the checkpoint's step, not at 0, and went on to the last step
    assert min(c["step"] for c in after) == SAVE_STEPS and max(c["step"] for c in after) == MAX_STEPS - 1
    assert json.loads((run / "rl" / "trainer_state.json").read_text())["global_step"] == MAX_STEPS
    assert (run / "logs" / "rl.log").read_text().count("restarted by Ray Train") == 2  # each rank, once
    assert "export" in json.loads((run / "state.json").read_text())["done"]
    AutoModelForCausalLM.from_pretrained(run / "export" / "model")  # the export loads
