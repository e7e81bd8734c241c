"""GRPO step time: our RL stage against a plain TRL GRPOTrainer script on the same model, data and settings.

Both sides train LoRA on SmolLM2-135M with identical GRPOConfig values and the same reward function; ours adds
what the stage adds (registry reward with component logging, zero-variance filtering). With the same seed both
sides sample the same completions step by step (the completion lengths are printed to show it), so step i of one
side pairs with step i of the other. They run alternately, `--rounds` times each, in one process.

Each step is clocked by the same TrainerCallback on both sides, in wall time and in process CPU time. On a shared
virtual machine the wall time of identical steps varied 2x between runs; CPU time (both threads summed) does not
count time the process spent waiting for a core, so it is the steadier figure. The first step of each run is
warm-up and left out. Prints means, the ratio of means and the median paired ratio (target <= 1.03).

    python benchmarks/bench_grpo_step.py [--steps 4] [--rounds 2] [--start-model SFT_CHECKPOINT]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from transformers import TrainerCallback

from rerank_rl.rl import _env  # noqa: F401
from rerank_rl.rl.config import CONFIG_DIR, load_recipe
from rerank_rl.rl.models import resolve_model

SETTINGS = ["ray.enabled=false", "rl.save_steps=1000", "rl.filter_zero_variance=true"]


class StepClock(TrainerCallback):
    """Wall and CPU seconds per optimizer step, plus the step's mean completion length from TRL's log."""

    def __init__(self):
        self.steps: list[dict] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append({"wall": time.perf_counter() - self._wall, "cpu": time.process_time() - self._cpu})

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "completions/mean_length" in logs and self.steps:
            self.steps[-1]["length"] = logs["completions/mean_length"]


def run_ours(config, run_dir: Path, model: str, clock: StepClock) -> None:
    from rerank_rl.rl.stages.grpo import run_rl

    run_rl(config, run_dir, model, callbacks=[clock])


def run_plain(config, run_dir: Path, model: str, clock: StepClock) -> None:
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
                          train_dataset=dataset, peft_config=lora, callbacks=[clock])
    trainer.train()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sft-steps", type=int, default=24,
                        help="warm-start both sides from a short SFT: the untrained model breaks the format in every "
                             "completion, so all rewards tie and no step would carry a gradient")
    parser.add_argument("--start-model", help="an SFT checkpoint to start both sides from (skips the warm-start SFT)")
    args = parser.parse_args()
    from rerank_rl.rl.stages.prepare import prepare_data
    from rerank_rl.rl.stages.sft import run_sft

    config = load_recipe(CONFIG_DIR / "grouprank.yaml",
                         SETTINGS + [f"rl.max_steps={args.steps}", f"sft.max_steps={args.sft_steps}"])
    sides = {"plain TRL": run_plain, "rerank-rl": run_ours}
    steps: dict[str, list[dict]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        prepare_data(config, base)
        model = args.start_model or resolve_model(config.model.name)
        if args.sft_steps and not args.start_model:
            model = str(run_sft(config, base, model))
        for round_ in range(args.rounds):
            for name, run in sides.items():
                run_dir = base / f"{name.replace(' ', '_')}-{round_}"
                run_dir.mkdir()
                (run_dir / "data").symlink_to(base / "data")
                clock = StepClock()
                run(config, run_dir, model, clock)
                for i, s in enumerate(clock.steps, start=1):
                    print(f"round {round_} {name:9s} step {i}: {s['wall']:5.1f} s wall, {s['cpu']:5.1f} s CPU, "
                          f"completion length {s.get('length', float('nan')):.1f}", flush=True)
                steps[name] += clock.steps[1:]
    rl = config.rl
    print(f"\nGRPO step ({rl.prompts_per_step} prompts x {rl.num_generations} generations, micro-batch "
          f"{rl.micro_batch_size or 'all'}, <= {rl.max_completion_length} new tokens, LoRA r={config.lora.r}, "
          f"SmolLM2-135M, CPU), {len(steps['plain TRL'])} timed steps per side")
    for kind, label in (("cpu", "CPU time "), ("wall", "wall time")):
        plain = [s[kind] for s in steps["plain TRL"]]
        ours = [s[kind] for s in steps["rerank-rl"]]
        pairs = statistics.median(o / p for o, p in zip(ours, plain))
        print(f"{label}: plain TRL {statistics.mean(plain):6.2f} s/step, rerank-rl {statistics.mean(ours):6.2f} "
              f"s/step, ratio of means {statistics.mean(ours) / statistics.mean(plain):.3f}, "
              f"median paired ratio {pairs:.3f}  (target <= 1.03)")


if __name__ == "__main__":
    main()
