"""Zero-shot macro-F1 of the GLiClass-style classifier on ag_news and yin2019_emotion (labels never trained on,
except the six emotions yin2019 shares with emotion_dair, for which macro-F1 over the unseen labels is shown in
brackets) and on the training data's held-out labels: MiniLM embedding-similarity baseline (the base encoder),
after supervised training, after PPO, with wall times; the final model's gain over the base on each set.

    nice .venv/bin/python benchmarks/bench_gliclass_zeroshot.py [--config configs/gliclass.yaml] [--set k=v ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "gliclass.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: faster than 2 when other jobs share the 2 cores)")
    parser.add_argument("--run-dir", help="keep the run here (default: a temporary folder)")
    args = parser.parse_args()

    import torch

    from rerank_rl.rl.config import load_recipe
    from rerank_rl.rl.paradigms.classifier.pipeline import run_recipe

    config = load_recipe(args.config, [f"threads={args.threads}", "ray.enabled=false", *args.overrides])
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.run_dir or tmp)
        started = time.time()
        metrics = run_recipe(config, run_dir, log=lambda line: print(line, file=sys.stderr, flush=True))
        total = time.time() - started
    print(report(metrics, config, total))
    return 0


def _cell(result: dict) -> str:
    unseen = f" ({result['macro_f1_unseen']:.3f})" if "macro_f1_unseen" in result else ""
    return f"{result['macro_f1']:.3f}{unseen}"


def report(metrics: dict, config, total: float) -> str:
    sets = list(metrics["eval_examples"]) + [s for s in ("held-out labels",) if s in metrics.get("baseline", {})]
    lines = [
        f"config: {config.model.architecture}, seed {config.seed}, supervised {config.supervised.steps} steps x "
        f"{config.supervised.batch_size} (loss {config.supervised.loss}, lr {config.supervised.lr}), "
        f"PPO {config.ppo.steps} steps x {config.ppo.batch_size} x {config.ppo.samples_per_example} samples "
        f"(reward {config.ppo.reward}{'' if config.ppo.enabled else ', off'}), "
        f"eval {json.dumps(metrics['eval_examples'])}, threads {config.threads}",
        "",
        f"| model | {' | '.join(f'{s} macro-F1' for s in sets)} | training s | eval s |",
        "|---|" + "---|" * len(sets) + "---|---|",
    ]
    training = {"baseline": None, "supervised": metrics.get("supervised_training", {}).get("wall_s"),
                "ppo": metrics.get("ppo_training", {}).get("wall_s")}
    for name in ("baseline", "supervised", "ppo"):
        if name not in metrics:
            continue
        evaluation = sum(metrics[name][s].get("wall_s", 0) for s in sets)
        train_s = "-" if training[name] is None else f"{training[name]:.0f}"
        lines.append(f"| {name} | {' | '.join(_cell(metrics[name][s]) for s in sets)} | {train_s} | {evaluation:.0f} |")
    final = next((name for name in ("ppo", "supervised") if name in metrics), None)
    if "baseline" in metrics and final:
        gains = [100 * (metrics[final][s]["macro_f1"] - metrics["baseline"][s]["macro_f1"]) for s in sets]
        lines.append("")
        lines.append(f"{final} (the final model) vs base encoder (points): "
                     + ", ".join(f"{s} {g:+.1f}" for s, g in zip(sets, gains)) + f"; mean {sum(gains) / len(gains):+.1f}")
    for stage in ("supervised_training", "ppo_training"):
        held = metrics.get(stage, {}).get("heldout")
        if held:
            # in brackets: the share of bootstrap resamples on which the step beats the stage's start
            figures = ", ".join(f"{h['step']}" + (f" mixed {h['interpolation']}" if "interpolation" in h else "")
                                + f": {h['macro_f1']:.3f}"
                                + (f" ({h['p_better_than_start']:.2f})" if "p_better_than_start" in h else "")
                                for h in held["history"])
            mixed = held.get("chosen_interpolation")
            lines.append(f"{stage} held-out labels by step ({figures}); chosen step {held['chosen_step']}"
                         + (f" mixed {mixed} with the pretrained weights" if mixed is not None else ""))
    distinct = metrics.get("supervised_training", {}).get("distinct_labels")
    if distinct:
        lines.append(f"distinct label strings offered in supervised training: {distinct['with_target']} with a "
                     f"target, {distinct['open_vocabulary']} open-vocabulary (teacher only)")
    lines.append(f"total wall time {total:.0f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
