"""The Python half of benchmarks/gpu_smoke.sh, the one-command GPU smoke check (issue 16 item 5). Subcommands:

    check [--no-torch]          is an NVIDIA GPU visible (nvidia-smi, then torch.cuda)? Exit 3 with the reason if not
    requirements                the GPU environment's pin set: the project's, its `vllm` extra, and OVERRIDES
    throughput --out DIR        vLLM vs transformers generation tokens/s on the GPU, the same RL prompts and model
    grpo --out DIR [--set K=V]  a short GroupRank GRPO run: vLLM colocate rollouts, evaluation on the GPU
    summary --out DIR           the figures of the two above, in three lines

`check --no-torch` and `requirements` use the standard library only: the script runs them with the machine's Python
before the GPU environment exists. The throughput pass shares its prompts, token count and table with
benchmarks/bench_vllm_cpu.py (the same comparison on CPU).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NO_GPU = 3  # exit status of `check` (and so of gpu_smoke.sh) when no GPU is visible

# Pins the GPU environment takes instead of the project's own. mistral-common, which every recent vLLM requires,
# caps numpy below 2.4 on Python <= 3.12, so the project's numpy==2.4.6 and `.[vllm]` do not resolve together.
OVERRIDES = {"numpy": "numpy>=2.3,<2.4"}

STEPS = 8  # GRPO steps: the default recipe's rl.max_steps
# The default recipe (configs/grouprank.yaml), RL only, with vLLM rollouts in the training process and evaluation
# (after training) as a Ray task holding the GPU: greedy scoring, so it decodes through vLLM (rl/generation.py
# choose_engine). bfloat16 weights as in configs/grouprank_cluster.yaml.
SETTINGS = [
    "sft.enabled=false",
    f"rl.max_steps={STEPS}",
    f"rl.save_steps={STEPS}",
    "rl.use_vllm=true",
    "rl.vllm_mode=colocate",
    "model.dtype=bfloat16",
    "ray.use_gpu=true",
    "ray.num_workers=1",
    "evaluate.before_training=false",
    "evaluate.scoring=greedy",
    "evaluate.probe_every=0",
]


class NoGPU(Exception):
    pass


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")


def requirements() -> list[str]:
    """pyproject.toml's dependencies and `vllm` extra, with OVERRIDES in place of the project's pins; a first line
    records setup.py's digest, so the script reinstalls when the package list changes."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["vllm"]
    digest = hashlib.sha256((REPO / "setup.py").read_bytes()).hexdigest()[:16]
    return [f"# rerank-rl GPU smoke environment; setup.py {digest}"] + [OVERRIDES.get(_name(r), r) for r in wanted]


def driver_cuda() -> str:
    """The CUDA version the driver supports, as nvidia-smi prints it ("unknown" if it does not)."""
    try:
        out = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    found = re.search(r"CUDA Version:\s*([0-9.]+)", out)
    return found.group(1) if found else "unknown"


def check_gpu(with_torch: bool = True) -> str:
    """A line naming the GPU; NoGPU with the reason when nvidia-smi lists none or torch cannot use it."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        raise NoGPU("nvidia-smi is not on PATH (no NVIDIA driver on this machine)")
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise NoGPU(f"nvidia-smi -L failed: {err}") from None
    gpus = [line for line in listed.stdout.splitlines() if line.startswith("GPU ")]
    if listed.returncode != 0 or not gpus:
        why = (listed.stderr or listed.stdout).strip().splitlines()
        raise NoGPU(f"nvidia-smi -L lists no GPU (exit {listed.returncode}{': ' + why[0] if why else ''})")
    if not with_torch:
        return gpus[0]
    import torch

    if torch.version.cuda is None:
        raise NoGPU(f"torch {torch.__version__} is a CPU build (pip took a CPU wheel: see `pip config list` for a "
                    "find-links or index that holds one)")
    if not torch.cuda.is_available():
        raise NoGPU(f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) sees no GPU; the driver "
                    f"supports CUDA {driver_cuda()}; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}")
    props = torch.cuda.get_device_properties(0)
    return (f"{props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__} "
            f"(CUDA {torch.version.cuda}, driver supports {driver_cuda()})")


def run_check(args) -> int:
    try:
        print(f"GPU: {check_gpu(with_torch=not args.no_torch)}")
    except NoGPU as err:
        stage = "nothing was installed" if args.no_torch else "the checks were not run"
        print(f"gpu_smoke: no NVIDIA GPU visible: {err}. This check needs one NVIDIA GPU; {stage}.", file=sys.stderr)
        return NO_GPU
    return 0


def run_requirements(args) -> int:
    print("\n".join(requirements()))
    return 0


def run_throughput(args) -> int:
    """Rollout tokens/s of transformers' generate (on the GPU) and of a vLLM offline engine, one after the other in
    this process, on the default recipe's RL prompts sampled at temperature 1."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from bench_vllm_cpu import print_throughput, rollout_prompts, timed  # benchmarks/ is this script's folder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rerank_rl.rl.generation import HFGenerator, VLLMGenerator
    from rerank_rl.rl.models import prepare_default_lm

    model_path = str(prepare_default_lm())
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    prompts = rollout_prompts(args.prompts)
    rollouts = [p for p in prompts for _ in range(args.generations)]
    print(f"{len(prompts)} prompts x {args.generations} completions, {args.max_new_tokens} new tokens at most, "
          f"{args.dtype}, {model_path}")
    rows = []
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, args.dtype)).to("cuda")
    local = HFGenerator(model, AutoTokenizer.from_pretrained(model_path), batch_size=args.batch_size,
                        temperature=1.0, progress=False)
    local(rollouts[:1], 4)  # warm-up
    rows.append((f"transformers (batch {args.batch_size})", time.perf_counter() - started,
                 *timed(local, rollouts, args.max_new_tokens, tokenizer)))
    del model, local
    torch.cuda.empty_cache()

    started = time.perf_counter()
    engine = VLLMGenerator(model_path, temperature=1.0, dtype=args.dtype, seed=0,
                           gpu_memory_utilization=args.gpu_memory_utilization)
    engine(rollouts[:1], 4)  # warm-up
    rows.append(("vLLM offline engine", time.perf_counter() - started,
                 *timed(engine, rollouts, args.max_new_tokens, tokenizer)))
    ratio = print_throughput(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(
        {"ratio": ratio, "rows": [dict(zip(("engine", "startup_s", "tokens", "seconds"), row)) for row in rows]},
        indent=2))
    return 0


def train_argv(run_dir: Path, extra: list[str]) -> list[str]:
    """The `rerank-rl train` command line of the GRPO pass (later --set values win)."""
    return [sys.executable, "-m", "rerank_rl.rl.cli", "train", str(REPO / "configs" / "grouprank.yaml"),
            "--output-dir", str(run_dir), "--set", *SETTINGS, *extra]


def vllm_in_log(log: Path) -> bool:
    """Whether a stage's log shows a vLLM engine starting ("Initializing a V1 LLM engine (v0.30.0) with config"),
    so the summary reports what ran rather than what the settings asked for (a recipe dump names use_vllm too)."""
    return log.exists() and re.search(r"LLM engine \(v\d", log.read_text(errors="replace")) is not None


def run_grpo(args) -> int:
    from bench_vllm_cpu import seconds_per_step

    out = Path(args.out).resolve()
    run_dir = out / "run"
    argv = train_argv(run_dir, args.settings)
    print(" ".join(argv[1:]), flush=True)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO)
    wall = time.perf_counter() - started
    if done.returncode:
        print(f"gpu_smoke: the GRPO run failed (exit {done.returncode}); its stage logs: {run_dir / 'logs'}",
              file=sys.stderr)
        return done.returncode
    state = json.loads((run_dir / "rl" / "trainer_state.json").read_text())
    steps = state.get("global_step") or STEPS
    after = json.loads((run_dir / "metrics" / "after.json").read_text())
    figures = {"steps": steps, "seconds_per_step": seconds_per_step(run_dir / "rl", steps), "wall_s": wall,
               "reranked": after.get("reranked"), "first_stage": after.get("first_stage"), "run_dir": str(run_dir),
               "vllm_in_logs": {stage: vllm_in_log(run_dir / "logs" / f"{stage}.log")
                                for stage in ("rl", "eval_after")}}
    (out / "grpo.json").write_text(json.dumps(figures, indent=2))
    return 0


def run_summary(args) -> int:
    out = Path(args.out)
    lines = []
    throughput = out / "throughput.json"
    if throughput.exists():
        data = json.loads(throughput.read_text())
        rates = ", ".join(f"{row['engine']} {row['tokens'] / row['seconds']:.0f} tokens/s" for row in data["rows"])
        lines.append(f"generation: {rates} (vLLM / transformers {data['ratio']:.2f}x)")
    grpo = out / "grpo.json"
    if grpo.exists():
        data = json.loads(grpo.read_text())
        seen = {stage: "vLLM" if found else f"no vLLM engine start in logs/{stage}.log"
                for stage, found in data["vllm_in_logs"].items()}
        lines.append(f"GRPO: {data['seconds_per_step']:.2f} s/step over {data['steps']} steps, rollouts: {seen['rl']} "
                     f"({data['wall_s']:.0f} s for the whole run, evaluation included)")
        ndcg = {k: (data[k] or {}).get("ndcg@10") for k in ("first_stage", "reranked")}
        lines.append(f"evaluation ({seen['eval_after']}): nDCG@10 first stage {ndcg['first_stage']}, reranked "
                     f"{ndcg['reranked']} ({data['run_dir']})")
    print("\n".join(lines) or f"gpu_smoke: no figures in {out}")
    return 0 if lines else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpu_smoke.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="is an NVIDIA GPU visible? (exit 3 with the reason if not)")
    check.add_argument("--no-torch", action="store_true", help="nvidia-smi only (before torch is installed)")
    check.set_defaults(func=run_check)
    sub.add_parser("requirements", help="the GPU environment's pin set").set_defaults(func=run_requirements)
    bench = sub.add_parser("throughput", help="vLLM vs transformers generation tokens/s on the GPU")
    bench.add_argument("--out", required=True, help="folder for throughput.json")
    bench.add_argument("--prompts", type=int, default=64)
    bench.add_argument("--generations", type=int, default=4, help="completions per prompt")
    bench.add_argument("--max-new-tokens", type=int, default=128)
    bench.add_argument("--batch-size", type=int, default=64, help="transformers' generate batch")
    bench.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    bench.add_argument("--gpu-memory-utilization", type=float, default=0.5, help="vLLM's share of the GPU")
    bench.set_defaults(func=run_throughput)
    grpo = sub.add_parser("grpo", help="a short GroupRank GRPO run with vLLM colocate rollouts")
    grpo.add_argument("--out", required=True, help="folder for grpo.json; the run goes to OUT/run")
    grpo.add_argument("--set", dest="settings", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                      help="more recipe overrides, after the smoke check's own")
    grpo.set_defaults(func=run_grpo)
    summary = sub.add_parser("summary", help="print the figures of throughput and grpo")
    summary.add_argument("--out", required=True)
    summary.set_defaults(func=run_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
