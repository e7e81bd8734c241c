"""benchmarks/gpu_smoke.sh and its helper, as far as a machine without a GPU can check them: the clear stop when no
GPU is visible (before anything is installed), the pin set, and that the GRPO run's recipe overrides load."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib

import pytest
from clitools import REPO

HELPER = REPO / "benchmarks" / "gpu_smoke.py"
SCRIPT = REPO / "benchmarks" / "gpu_smoke.sh"
MESSAGE = "gpu_smoke: no NVIDIA GPU visible"


def load_helper():
    spec = importlib.util.spec_from_file_location("gpu_smoke", HELPER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def helper(*args, path: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HELPER), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": path})


def test_check_without_nvidia_smi_stops_with_the_reason(tmp_path):
    done = helper("check", "--no-torch", path=str(tmp_path))
    assert done.returncode == load_helper().NO_GPU == 3
    assert MESSAGE in done.stderr and "nvidia-smi is not on PATH" in done.stderr
    assert "nothing was installed" in done.stderr and done.stdout == ""


def test_check_when_torch_sees_no_gpu(tmp_path):
    """nvidia-smi lists a GPU (a stand-in here) but torch cannot use it: the reason names torch and its CUDA."""
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: Stand-in (UUID: GPU-0)'\n")
    fake.chmod(0o755)
    listed = helper("check", "--no-torch", path=str(tmp_path))
    assert listed.returncode == 0 and listed.stdout.startswith("GPU: GPU 0: Stand-in"), listed.stderr
    done = helper("check", path=str(tmp_path))
    assert done.returncode == 3, done.stdout
    assert MESSAGE in done.stderr and "torch " in done.stderr and "the checks were not run" in done.stderr


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU: the script would run")
def test_script_stops_before_installing_anything(tmp_path):
    venv = tmp_path / "venv-gpu"
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHON": sys.executable, "GPU_VENV": str(venv)})
    assert done.returncode == 3 and MESSAGE in done.stderr, done.stderr
    assert not venv.exists() and "== install" not in done.stdout


def test_arguments():
    parser = load_helper().build_parser()
    args = parser.parse_args(["grpo", "--out", "o", "--set", "rl.max_steps=2", "--set", "seed=1"])
    assert args.settings == ["rl.max_steps=2", "seed=1"] and args.out == "o"
    args = parser.parse_args(["throughput", "--out", "o"])
    assert (args.prompts, args.generations, args.dtype) == (64, 4, "bfloat16")
    with pytest.raises(SystemExit):
        parser.parse_args(["grpo"])  # --out is required
    done = subprocess.run([sys.executable, str(HELPER), "bogus"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_requirements_are_the_projects_pins_with_the_overrides():
    smoke = load_helper()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = smoke.requirements()
    assert lines[0].startswith("# ")
    pins = {smoke._name(line): line for line in lines[1:]}
    expected = project["dependencies"] + project["optional-dependencies"]["vllm"]
    assert set(pins) == {smoke._name(r) for r in expected}
    assert pins["numpy"] == smoke.OVERRIDES["numpy"]
    assert pins["vllm"] in project["optional-dependencies"]["vllm"]
    assert pins["torch"] in project["dependencies"] and pins["transformers"] in project["dependencies"]


def test_the_grpo_runs_overrides_load(tmp_path):
    """The command line the GRPO pass runs parses as `rerank-rl train` does, and its overrides give a recipe with
    vLLM colocate rollouts and GPU evaluation whose TRL config builds."""
    from rerank_rl.rl.cli import build_parser
    from rerank_rl.rl.config import load_recipe
    from rerank_rl.rl.stages.grpo import rl_args

    smoke = load_helper()
    argv = smoke.train_argv(tmp_path / "run", ["rl.max_steps=3"])
    assert argv[1:3] == ["-m", "rerank_rl.rl.cli"]
    args = build_parser().parse_args(argv[3:])
    assert args.overrides == smoke.SETTINGS + ["rl.max_steps=3"]
    config = load_recipe(args.config, args.overrides)
    assert (config.rl.use_vllm, config.rl.vllm_mode, config.ray.use_gpu, config.sft.enabled) == \
        (True, "colocate", True, False)
    assert config.evaluate.scoring == "greedy" and config.rl.max_steps == 3  # greedy: evaluation decodes via vLLM
    trl = rl_args(config, tmp_path / "rl")
    assert trl.use_vllm and trl.vllm_mode == "colocate"


def test_summary_reports_what_the_logs_show(tmp_path, capsys):
    """The closing lines from throughput.json and grpo.json; an engine is named only where its log shows it."""
    import json

    smoke = load_helper()
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "rl.log").write_text("(EngineCore pid=9) INFO [core.py:123] Initializing a V1 LLM engine (v0.30.0) with "
                                 "config: model='/m'\n")
    (logs / "eval_after.log").write_text("use_vllm: true\n")  # a recipe dump is no sign of vLLM at work
    assert smoke.vllm_in_log(logs / "rl.log") and not smoke.vllm_in_log(logs / "eval_after.log")
    assert not smoke.vllm_in_log(logs / "absent.log")
    (tmp_path / "throughput.json").write_text(json.dumps({"ratio": 4.0, "rows": [
        {"engine": "transformers (batch 64)", "startup_s": 1.0, "tokens": 1000, "seconds": 10.0},
        {"engine": "vLLM offline engine", "startup_s": 30.0, "tokens": 4000, "seconds": 10.0}]}))
    (tmp_path / "grpo.json").write_text(json.dumps({
        "steps": 8, "seconds_per_step": 1.25, "wall_s": 200.0, "first_stage": {"ndcg@10": 0.5},
        "reranked": {"ndcg@10": 0.6}, "run_dir": "R", "vllm_in_logs": {"rl": True, "eval_after": False}}))
    assert smoke.main(["summary", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        "generation: transformers (batch 64) 100 tokens/s, vLLM offline engine 400 tokens/s "
        "(vLLM / transformers 4.00x)",
        "GRPO: 1.25 s/step over 8 steps, rollouts: vLLM (200 s for the whole run, evaluation included)",
        "evaluation (no vLLM engine start in logs/eval_after.log): nDCG@10 first stage 0.5, reranked 0.6 (R)"]
    assert smoke.main(["summary", "--out", str(tmp_path / "empty")]) == 1
