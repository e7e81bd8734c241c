"""The classifier recipe end to end: baseline -> supervised -> evaluate -> PPO -> evaluate -> export.

A plain function of (config, run folder): the orchestration layer decides where it runs. Finished stages are
recorded in the run's `state.json` and skipped on resume; an interrupted training stage continues from its last
checkpoint. Everything lands in the run folder: `supervised/` and `ppo/` (logs, TensorBoard, checkpoints, final
model), `export/`, and `metrics.json`.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from rerank_rl.rl.errors import UserError
from rerank_rl.rl.run_state import RunState

from .config import ClassifierRecipe
from .data import (
    LabelSetSampler, data_root, label_names, load_eval_sets, load_sets, load_unlabeled, open_vocabulary,
)
from .evaluate import embedding_baseline, evaluate_model
from .export import export_model
from .holdout import split_holdout
from .model import build_model, load_model
from .ppo import resolve_reward, train_ppo
from .supervised import SimilarityTeacher, train_supervised
from .validate import Validator, heldout_figure

HELDOUT = "held-out labels"  # the held-out labels' test texts (never used for choice), beside each evaluation set


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_recipe(config: ClassifierRecipe, run_dir: Path, resume: bool = False, log=print) -> dict:
    """Run (or continue) the classifier recipe in `run_dir`; returns the metrics also written to metrics.json."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    _seed(config.seed)
    reward_fn = resolve_reward(config.ppo.reward) if config.ppo.enabled else None  # fail before any heavy work
    state = RunState(run_dir)
    root = data_root(config.data)
    train_sets = load_sets(config.data.train, root, config.data.train_per_set, config.seed)
    heldout_names: set[str] = set()
    groups: dict = {}
    test_groups: dict = {}
    if config.data.holdout_labels or config.data.holdout_sets:
        all_names = {label.casefold() for rows in train_sets.values() for label in label_names(rows)}
        train_sets, groups, test_groups = split_holdout(train_sets, config.data, config.seed)
        if not groups:
            raise UserError("data.holdout_labels / data.holdout_sets left no validation group (each needs texts of "
                            "at least two held-out labels)")
        heldout_names = all_names - {label.casefold() for rows in train_sets.values() for label in label_names(rows)}
        log(f"held out {len(heldout_names)} labels: {len(groups)} validation groups, "
            f"{sum(map(len, groups.values()))} texts; {sum(map(len, test_groups.values()))} other texts to report on")
    eval_sets = load_eval_sets(config.data, root, config.seed)
    seen = {label.casefold() for rows in train_sets.values() for label in label_names(rows)}
    ev = config.evaluate
    max_length = config.model.max_length
    # None: train every weight; else the number of bottom transformer layers kept fixed with the embeddings.
    frozen = None if config.model.train_embeddings else config.model.frozen_layers

    def stage(name: str, fn, *args):
        def timed(interrupted: bool, *inner):
            started = time.time()
            result = fn(interrupted, *inner)
            log(f"[{name}] done in {time.time() - started:.1f} s")
            return result

        return state.stage(name, timed, *args, resume=resume)

    validator = tester = None

    def evaluate(_resume, model_dir: str):
        model, tokenizer = load_model(model_dir)
        results = evaluate_model(model, tokenizer, eval_sets, seen, ev.batch_size, max_length,
                                 ev.classification_type, ev.threshold)
        return {**results, HELDOUT: tester(model, tokenizer)} if tester else results

    def supervised(interrupted: bool):
        model, tokenizer = build_model(config.model, config.seed)
        data = config.data
        sets = dict(train_sets)
        if data.unlabeled:  # one more set, drawn as often as each labelled one
            sets["unlabeled"] = load_unlabeled(data.unlabeled, root, data.train_per_set, config.seed)
        vocabulary = []
        if data.vocab_labels:
            vocabulary = open_vocabulary(sets, data.vocab_min_df, data.vocab_max_df)
            vocabulary = [word for word in vocabulary if word.casefold() not in heldout_names]
            if not vocabulary:
                raise UserError(f"open vocabulary is empty: no word of the training texts is in at least "
                                f"data.vocab_min_df={data.vocab_min_df} texts and at most data.vocab_max_df="
                                f"{data.vocab_max_df} of them")
            log(f"open vocabulary: {len(vocabulary)} words of the training texts, {data.vocab_labels} per example")
        sampler = LabelSetSampler(sets, data, config.seed, vocabulary)
        sup = config.supervised
        train_length = sup.max_length or max_length
        teacher = (SimilarityTeacher(config.model.encoder, sup.distill_temperature, sup.max_length)
                   if sup.distill_weight else None)
        _, summary = train_supervised(model, tokenizer, sampler, sup, train_length, run_dir / "supervised",
                                      interrupted, log, frozen, teacher, validator)
        log(f"supervised training offered {summary['distinct_labels']['with_target']} distinct label strings with a "
            f"target and {summary['distinct_labels']['open_vocabulary']} open-vocabulary ones")
        return {"model": str(run_dir / "supervised" / "final"), "open_vocabulary": len(vocabulary), **summary}

    def ppo(interrupted: bool, start_dir: str | None):
        if start_dir:
            model, tokenizer = load_model(start_dir)
        else:
            model, tokenizer = build_model(config.model, config.seed)
        sampler = LabelSetSampler(train_sets, config.data, config.seed + 1)
        _, summary = train_ppo(model, tokenizer, sampler, config.ppo, max_length, run_dir / "ppo", reward_fn,
                               interrupted, log, frozen, validator)
        return {"model": str(run_dir / "ppo" / "final"), **summary}

    def export(_resume, model_dir: str):
        model, tokenizer = load_model(model_dir)
        out = export_model(model, tokenizer, run_dir / config.export.dir, max_length, ev.classification_type,
                           ev.threshold, source=model_dir)
        return str(out)

    metrics: dict = {"seen_labels": sorted(seen), "eval_examples": {k: len(v) for k, v in eval_sets.items()}}
    if groups:
        metrics["heldout_labels"] = sorted(heldout_names)
        metrics["heldout_groups"] = {name: len(rows) for name, rows in groups.items()}
        # The base encoder's figure on the held-out labels: the bar every validation is reported against.
        base = stage("baseline_heldout",
                     lambda _r: heldout_figure(embedding_baseline(groups, set(), config.model.encoder)))
        validator = Validator(groups, config.model.encoder, max_length, ev.batch_size, base=base)
    if test_groups:
        metrics["heldout_test_groups"] = {name: len(rows) for name, rows in test_groups.items()}
        base = stage("baseline_heldout_test",
                     lambda _r: heldout_figure(embedding_baseline(test_groups, set(), config.model.encoder)))
        tester = Validator(test_groups, config.model.encoder, max_length, ev.batch_size, base=base)
    if ev.enabled and ev.embedding_baseline:
        metrics["baseline"] = stage("baseline", lambda _r: embedding_baseline(eval_sets, seen, config.model.encoder))
        if tester:
            metrics["baseline"][HELDOUT] = tester.base
    model_dir = None
    if config.supervised.enabled:
        metrics["supervised_training"] = stage("supervised", supervised)
        model_dir = metrics["supervised_training"]["model"]
        if ev.enabled:
            metrics["supervised"] = stage("eval_supervised", evaluate, model_dir)
    if config.ppo.enabled:
        metrics["ppo_training"] = stage("ppo", ppo, model_dir)
        model_dir = metrics["ppo_training"]["model"]
        if ev.enabled:
            metrics["ppo"] = stage("eval_ppo", evaluate, model_dir)
    if config.export.enabled and model_dir:
        metrics["export"] = stage("export", export, model_dir)
    verdict = heldout_verdict(metrics)
    if verdict:
        metrics["heldout_verdict"] = verdict
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    table = summary_table(metrics)
    (run_dir / "report.md").write_text(f"# {config.name}\n\nZero-shot {table}\n\n{verdict}\n\n"
                                       "(metrics.json has every figure)\n")
    log(table + (f"\n{verdict}" if verdict else ""))
    return metrics


def heldout_verdict(metrics: dict) -> str:
    """One sentence on the final model's held-out-label figure against the base encoder's ('' without holdout):
    on the test texts when there are some, else on the validation texts the model was chosen on (said so)."""
    final = next((s for s in ("ppo", "supervised") if HELDOUT in metrics.get(s, {})), None)
    if final and HELDOUT in metrics.get("baseline", {}):
        figure, base, where = metrics[final][HELDOUT]["macro_f1"], metrics["baseline"][HELDOUT]["macro_f1"], ""
    else:
        chosen = next((metrics[s]["heldout"] for s in ("ppo_training", "supervised_training")
                       if metrics.get(s, {}).get("heldout")), None)
        if chosen is None:
            return ""
        figure, base = chosen["macro_f1"], chosen["base_encoder"]
        where = " (on the validation texts it was chosen on, so an upper estimate)"
    gap = 100 * (figure - base)
    if gap >= 0:
        return (f"Held-out labels{where}: the final model ({figure:.3f}) is at or above the base encoder "
                f"({base:.3f}), {gap:+.1f} points.")
    return (f"WARNING held-out labels{where}: the final model ({figure:.3f}) is {-gap:.1f} points BELOW the base "
            f"encoder's label embeddings ({base:.3f}): on new label sets, MiniLM's own similarity is the better "
            "classifier.")


def summary_table(metrics: dict) -> str:
    """Macro-F1 per evaluation set and model, as a small text table."""
    rows = [(name, metrics[name]) for name in ("baseline", "supervised", "ppo") if name in metrics]
    if not rows:
        return "no evaluation"
    sets = list(rows[0][1])
    lines = ["model        " + "  ".join(f"{s:>24}" for s in sets)]
    for name, result in rows:
        cells = []
        for s in sets:
            m = result[s]
            unseen = f" ({m['macro_f1_unseen']:.3f})" if "macro_f1_unseen" in m else ""
            cells.append(f"{m['macro_f1']:.3f}{unseen}".rjust(24))
        lines.append(f"{name:<13}" + "  ".join(cells))
    return "macro-F1 (in brackets: over the labels never seen in training)\n\n" + "\n".join(
        f"    {line}" for line in lines)
