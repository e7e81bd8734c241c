"""A recipe end to end: data -> evaluate (before) -> sft -> rl -> evaluate (after) -> export -> report.

The run folder holds the resolved config, each stage's outputs and checkpoints, metrics, TREC runs, tensorboard logs
and a markdown report. `state.json` records finished stages, so `--resume` skips them and continues the stage that
was interrupted from its last checkpoint.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

from rerank_rl.rl.config import CONFIG_DIR, load_recipe, save_resolved
from rerank_rl.rl.console import StageLine, logs_dir, stage_figures
from rerank_rl.rl.errors import UserError
from rerank_rl.rl.models import resolve_model
from rerank_rl.rl.orchestration import StageRunner
from rerank_rl.rl.run_state import RunState

DEFAULT_RECIPE = CONFIG_DIR / "grouprank.yaml"
RESOLVED = "config.yaml"


def new_run_dir(config, output_dir: str | None) -> Path:
    if output_dir:
        return Path(output_dir)
    return Path(config.output_dir) / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"


# Recipes beside the rerankers (same run folder, state file and resume rules, their own stages), by the recipe's
# `paradigm:` key. Each runs as one task: its pipeline places nothing itself.
SIBLING_RECIPES = {"classifier": "rerank_rl.rl.paradigms.classifier.pipeline:run_recipe"}


def run_recipe(config, run_dir: Path, resume: bool = False) -> dict:
    """Run (or continue) every stage of a recipe in `run_dir`; returns the final metrics."""
    sibling = SIBLING_RECIPES.get(config.paradigm)
    if sibling:
        module, function = sibling.split(":")
        with StageRunner(config.ray, run_dir) as runner:
            return runner.task(getattr(importlib.import_module(module), function), config, run_dir, resume,
                               num_cpus=2)
    return run_reranker(config, run_dir, resume)


def run_reranker(config, run_dir: Path, resume: bool = False) -> dict:
    """The reranker pipeline, the same for every paradigm (the stages ask the paradigm what differs)."""
    from rerank_rl.rl.report import write_report
    from rerank_rl.rl.stages.evaluation import evaluate_checkpoint
    from rerank_rl.rl.stages.export import export_run
    from rerank_rl.rl.stages.grpo import run_rl
    from rerank_rl.rl.stages.prepare import prepare_data
    from rerank_rl.rl.stages.sft import run_sft

    state = RunState(run_dir)
    qrels = None
    if config.data.eval.qrels:
        from rerank_rl.data_synthesis.readers import read_qrels

        qrels = read_qrels(config.data.eval.qrels)
    base = resolve_model(config.model.name)
    with StageRunner(config.ray, run_dir, quiet=True) as runner:

        def stage(name: str, fn, *args, training: bool = False, gpu: bool = False):
            log = logs_dir(run_dir) / f"{name}.log"  # the stage's own output; the console gets one line

            def place(interrupted: bool):
                if training:
                    runner.train(name, fn, *args, interrupted, log=log)
                    return str(run_dir / name / "merged")
                return runner.task(fn, *args, num_gpus=1 if gpu and config.ray.use_gpu else 0, log=log)

            if state.done(name):
                return state.stage(name, place)
            with StageLine(run_dir, name) as line:
                result = state.stage(name, place, resume=resume)
                line.done(stage_figures(name, result, run_dir))
            return result

        if config.synthesize is not None:
            from rerank_rl.data_synthesis.stage import synthesize

            teacher = config.synthesize.teacher
            stage("synthesize", synthesize, config.synthesize, run_dir / "synthesis",
                  gpu=teacher.backend == "vllm" or teacher.device != "cpu")
        stage("data", prepare_data, config, run_dir)
        if config.evaluate.enabled and config.evaluate.before_training:
            stage("eval_before", evaluate_checkpoint, config, run_dir, base, "before", qrels, gpu=True)
        model = base
        if config.sft.enabled:
            model = stage("sft", run_sft, config, run_dir, model, training=True)
        if config.rl.enabled:
            model = stage("rl", run_rl, config, run_dir, model, training=True)
        after = None
        if config.evaluate.enabled:
            after = stage("eval_after", evaluate_checkpoint, config, run_dir, model, "after", qrels, gpu=True)
        if model != base:
            stage("export", lambda *a: str(export_run(*a)), config, run_dir, Path(model))
    write_report(run_dir)
    return after or {}


def train_command(args) -> int:
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / RESOLVED).exists():
            raise UserError(f"{run_dir}: not a run folder (no {RESOLVED})")
        config = load_recipe(run_dir / RESOLVED, args.overrides)
    else:
        config = load_recipe(args.config or DEFAULT_RECIPE, args.overrides)
        run_dir = new_run_dir(config, args.output_dir)
        if (run_dir / "state.json").exists():
            raise UserError(f"{run_dir} already holds a run: continue it with --resume {run_dir}")
        run_dir.mkdir(parents=True, exist_ok=True)
        save_resolved(config, run_dir / RESOLVED)
    run_dir = run_dir.resolve()
    started = time.time()
    metrics = run_recipe(config, run_dir, resume=bool(args.resume))
    print(f"run folder: {run_dir}")
    if metrics:
        shown = {k: metrics[k] for k in ("first_stage", "reranked") if k in metrics} or metrics
        print(json.dumps(shown, indent=2, default=str))
    print(f"report: {run_dir / 'report.md'}  ({time.time() - started:.0f} s)")
    return 0


def export_command(args) -> int:
    from rerank_rl.rl.stages.export import export_run

    run_dir = Path(args.run_dir)
    if not (run_dir / RESOLVED).exists():
        raise UserError(f"{run_dir}: not a run folder (no {RESOLVED})")
    config = load_recipe(run_dir / RESOLVED)
    state = RunState(run_dir)
    model = state.data["done"].get("rl") or state.data["done"].get("sft")
    if not model:
        raise UserError(f"{run_dir}: no finished training stage to export")
    print(export_run(config, run_dir, Path(model), Path(args.out) if args.out else None))
    return 0
