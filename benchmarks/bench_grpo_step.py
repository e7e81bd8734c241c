"""GRPO step time: our RL stage against a plain TRL GRPOTrainer script on the same model, data and settings.

Both sides train LoRA on SmolLM2-135M with identical GRPOConfig values and the same reward function; ours adds
what the stage adds (registry reward with component logging, zero-variance filtering). They run alternately,
`--rounds` times each, in one process, so both see the same machine load. Step time is TRL's own `step_time`
log, averaged over all steps but the first of each run (warm-up). Prints both and the ratio (target <= 1.03).

    python benchmarks/bench_grpo_step.py [--steps 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from rerank_rl.rl import _env  # noqa: F401
from rerank_rl.rl.config import CONFIG_DIR, load_recipe
from rerank_rl.rl.models import resolve_model

SETTINGS = ["ray.enabled=false", "rl.save_steps=1000", "rl.filter_zero_variance=true"]


def _step_times(history: list[dict]) -> list[float]:
    return [row["step_time"] for row in history if "step_time" in row][1:]


def run_ours(config, run_dir: Path, model: str) -> list[float]:
    from rerank_rl.rl.stages.grpo import run_rl

    run_rl(config, run_dir, model)
    return _step_times(json.loads((run_dir / "rl" / "trainer_state.json").read_text())["log_history"])


def run_plain(config, run_dir: Path, model: str) -> list[float]:
    """What a user would write with TRL alone."""
    from datasets import load_from_disk
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    from rerank_rl.rewards.registry import get_reward
    from rerank_rl.rl.stages.grpo import rl_dataset

    rl = config.rl
    dataset = rl_dataset(config, load_from_disk(str(run_dir / "data" / "train_groups")))
    step = rl.prompts_per_step * rl.num_generations
    micro = rl.micro_batch_size or step
    args = GRPOConfig(output_dir=str(run_dir / "plain"), max_steps=rl.max_steps, learning_rate=rl.learning_rate,
                      per_device_train_batch_size=micro, gradient_accumulation_steps=step // micro,
                      num_generations=rl.num_generations, max_completion_length=rl.max_completion_length,
                      temperature=rl.temperature, beta=rl.beta, loss_type=rl.loss_type, logging_steps=1,
                      save_strategy="no", report_to=[], seed=config.seed, data_seed=config.seed, use_cpu=True,
                      gradient_checkpointing=config.model.gradient_checkpointing,
                      bf16=False)  # TRL defaults to True: on a CPU without bf16 units that autocast made steps 1.8x slower
    lora = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=model, reward_funcs=[get_reward("grouprank_answer_only", relevant_at=2)], args=args,
                          train_dataset=dataset, peft_config=lora)
    trainer.train()
    return _step_times(trainer.state.log_history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sft-steps", type=int, default=24,
                        help="warm-start both sides from a short SFT: the untrained model breaks the format in every "
                             "completion, so all rewards tie and no step would carry a gradient")
    args = parser.parse_args()
    from rerank_rl.rl.stages.prepare import prepare_data
    from rerank_rl.rl.stages.sft import run_sft

    config = load_recipe(CONFIG_DIR / "grouprank.yaml",
                         SETTINGS + [f"rl.max_steps={args.steps}", f"sft.max_steps={args.sft_steps}"])
    times: dict[str, list[float]] = {"plain TRL": [], "rerank-rl": []}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        prepare_data(config, base)
        model = resolve_model(config.model.name)
        if args.sft_steps:
            model = str(run_sft(config, base, model))
        for round_ in range(args.rounds):
            for name, fn in (("plain TRL", run_plain), ("rerank-rl", run_ours)):
                run_dir = base / f"{name.replace(' ', '_')}-{round_}"
                run_dir.mkdir()
                (run_dir / "data").symlink_to(base / "data")
                started = time.time()
                times[name] += fn(config, run_dir, model)
                print(f"round {round_} {name}: {time.time() - started:.1f} s wall", flush=True)
    plain, ours = statistics.mean(times["plain TRL"]), statistics.mean(times["rerank-rl"])
    rl = config.rl
    print(f"\nGRPO step ({rl.prompts_per_step} prompts x {rl.num_generations} generations, micro-batch "
          f"{rl.micro_batch_size or 'all'}, "
          f"<= {rl.max_completion_length} new tokens, LoRA r={config.lora.r}, SmolLM2-135M, CPU)")
    print(f"plain TRL GRPOTrainer: {plain:.2f} s/step over {len(times['plain TRL'])} steps")
    print(f"rerank-rl RL stage:    {ours:.2f} s/step over {len(times['rerank-rl'])} steps")
    print(f"ratio ours/plain:      {ours / plain:.3f}  (target <= 1.03)")


if __name__ == "__main__":
    main()
