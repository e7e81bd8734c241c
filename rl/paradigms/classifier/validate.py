"""Zero-shot validation on held-out labels during training, and the choice of a stage's checkpoint by it.

The figure is macro-F1 per validation group, averaged within each source set and then over the sets (so a set cut
into many small groups weighs as much as one cut into few). The base encoder's label-embedding baseline on the same
groups is computed once and reported beside every figure: it is the bar a trained model has to clear.

A few hundred validation texts tell checkpoints apart only to a point or two, and a checkpoint picked for a gain
within that noise is as likely to be worse on the next label set as better. So each validation also reports how
sure the gain is: the share of paired bootstrap resamples of the validation texts on which the checkpoint beats the
best so far (and the start). With `confidence`, a checkpoint replaces the best only when that share reaches it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from .evaluate import classification_metrics, decisions, embedding_baseline, gold_matrix, shared_labels
from .holdout import group_set
from .trainio import save_model

RESAMPLES = 1000

Predictions = dict[str, np.ndarray]  # validation group -> (N, K) boolean decisions


def heldout_figure(results: dict[str, dict]) -> dict:
    """{"macro_f1": mean over sets, "sets": {set: mean over its groups}} from per-group metrics."""
    by_set = defaultdict(list)
    for group, metrics in results.items():
        by_set[group_set(group)].append(metrics["macro_f1"])
    sets = {name: float(np.mean(values)) for name, values in sorted(by_set.items())}
    return {"macro_f1": float(np.mean(list(sets.values()))) if sets else float("nan"), "sets": sets}


def _macro_f1(pred: np.ndarray, gold: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Macro-F1 (as scikit-learn's, 0 for a label neither predicted nor gold) on each row set of `rows` (R, N)."""
    picked, true = pred[rows], gold[rows]  # (R, N, K)
    tp = (picked & true).sum(1)
    wrong = (picked ^ true).sum(1)  # false positives + false negatives
    denominator = 2 * tp + wrong
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0).mean(1)


def prob_better(candidate: Predictions, reference: Predictions, gold: Predictions, resamples: int = RESAMPLES,
                seed: int = 0) -> float:
    """Share of paired bootstrap resamples of the validation texts (drawn within each group, the same texts for
    both models) on which `candidate`'s held-out figure is strictly above `reference`'s."""
    rng = np.random.default_rng(seed)
    by_set: dict[str, list[np.ndarray]] = defaultdict(list)  # per set: (candidate - reference) per group
    for group in sorted(gold):
        size = len(gold[group])
        rows = rng.integers(0, size, size=(resamples, size))
        by_set[group_set(group)].append(_macro_f1(candidate[group], gold[group], rows)
                                        - _macro_f1(reference[group], gold[group], rows))
    gap = np.mean([np.mean(gaps, axis=0) for gaps in by_set.values()], axis=0)  # the figure's gap per resample
    return float(np.mean(gap > 1e-12))


class Validator:
    """Scores a model zero-shot on the held-out groups; `base` holds the base encoder's figure on them."""

    def __init__(self, groups: dict[str, list[dict]], encoder: str, max_length: int, batch_size: int = 32,
                 base: dict | None = None):
        self.groups = groups
        self.max_length = max_length
        self.batch_size = batch_size
        self.gold = {name: gold_matrix(rows, shared_labels(rows, name)) for name, rows in groups.items()}
        # Lent to a two-tower model: its locked tower embeds each text once. Bound to that tower (another model,
        # even one loaded from the same weights, starts a new cache: nothing says its text tower is the same).
        self.text_cache: dict = {}
        self.cached_tower = None
        self.base = base if base is not None else heldout_figure(embedding_baseline(groups, set(), encoder))

    def run(self, model, tokenizer) -> tuple[dict, Predictions]:
        """(figure, each group's decisions)."""
        was_training = model.training
        cache = getattr(model, "text_encoder", None) is not None
        if cache:
            if self.cached_tower is not model.text_encoder:
                self.text_cache, self.cached_tower = {}, model.text_encoder
            model.text_cache = self.text_cache
        results, predictions = {}, {}
        try:
            for name, rows in self.groups.items():
                labels, predictions[name], gold = decisions(model, tokenizer, rows, name, self.batch_size,
                                                            self.max_length)
                results[name] = classification_metrics(predictions[name], gold, labels)
        finally:
            if cache:
                model.text_cache = None
        model.train(was_training)  # evaluation switches dropout off; the training loop expects it back
        return heldout_figure(results), predictions

    def __call__(self, model, tokenizer) -> dict:
        return self.run(model, tokenizer)[0]


class Selection:
    """Validates every `every` steps and keeps the best weights in `folder`: a strictly better figure replaces
    them (so among equals the earliest, least-moved checkpoint stays) when its bootstrap share of beating the best
    reaches `confidence` (0: any strictly better figure). `stop()` says when `patience` validations in a row
    brought nothing better. Its state travels in the stage's checkpoint, so a resumed run keeps its best.
    """

    def __init__(self, validator: Validator | None, folder: Path, every: int, patience: int = 0, log=print,
                 logger=None, state: dict | None = None, confidence: float = 0.0):
        self.validator = validator if every else None
        self.folder = Path(folder)
        self.every, self.patience, self.log, self.logger = every, patience, log, logger
        self.confidence = confidence
        self.state = state or {"best": None, "best_step": None, "stale": 0, "history": []}

    @property
    def active(self) -> bool:
        return self.validator is not None

    def due(self, step: int, total: int) -> bool:
        return self.active and (step % self.every == 0 or step == total)

    def check(self, step: int, model, tokenizer, extra: dict | None = None) -> dict:
        """Validate the model after `step` steps, keep it if it is the best so far; returns the figure."""
        figure, predictions = self.validator.run(model, tokenizer)
        base = self.validator.base["macro_f1"]
        best, best_step = self.state["best"], self.state["best_step"]
        sure = {}  # bootstrap shares of beating the best so far and the stage's start
        for key, reference in (("p_better_than_best", "best_predictions"),
                               ("p_better_than_start", "start_predictions")):
            if predictions is not None and self.state.get(reference) is not None:
                sure[key] = prob_better(predictions, _arrays(self.state[reference]), self.validator.gold)
        if predictions is not None and best is None:
            self.state["start_predictions"] = _tensors(predictions)
        improved = best is None or (figure["macro_f1"] > best
                                    and sure.get("p_better_than_best", 1.0) >= self.confidence)
        if improved:
            save_model(self.folder, model, tokenizer)
            self.state.update(best=figure["macro_f1"], best_step=step, stale=0,
                              best_interpolation=(extra or {}).get("interpolation"))
            if predictions is not None:
                self.state["best_predictions"] = _tensors(predictions)
        else:
            self.state["stale"] += 1
        self.state["history"].append({"step": step, "macro_f1": figure["macro_f1"], "sets": figure["sets"],
                                      **sure, **(extra or {})})
        if self.logger is not None:
            self.logger.log(step, {"heldout_macro_f1": figure["macro_f1"], "heldout_base": base, **sure,
                                   **(extra or {})})
        alpha = (extra or {}).get("interpolation")
        mixed = "" if alpha is None else f" mixed {alpha} with the pretrained weights"
        how_sure = ("" if "p_better_than_best" not in sure else
                    f"; beats step {best_step} in {sure['p_better_than_best']:.0%} of resamples")
        self.log(f"held-out labels after step {step}{mixed}: macro-F1 {figure['macro_f1']:.4f} "
                 f"(base encoder {base:.4f}{how_sure}; best {self.state['best']:.4f} at step "
                 f"{self.state['best_step']})")
        return figure

    def stop(self) -> bool:
        return bool(self.patience) and self.state["stale"] >= self.patience

    def summary(self) -> dict:
        """What the stage reports: the chosen step, its figure beside the base encoder's, the whole history."""
        if not self.active:
            return {}
        base = self.validator.base["macro_f1"]
        best = self.state["best"]
        # chosen_interpolation: the WiSE-FT weight of the chosen step's weights (None: not a mix)
        return {"heldout": {"chosen_step": self.state["best_step"], "macro_f1": best, "base_encoder": base,
                            "chosen_interpolation": self.state.get("best_interpolation"),
                            "at_or_above_base": best is not None and best >= base,
                            "history": self.state["history"]}}


def _tensors(predictions: Predictions) -> dict[str, torch.Tensor]:
    """Decisions as tensors: the checkpoint state loads with `torch.load(weights_only=True)`."""
    return {name: torch.from_numpy(pred.copy()) for name, pred in predictions.items()}


def _arrays(saved: dict[str, torch.Tensor]) -> Predictions:
    return {name: tensor.numpy() for name, tensor in saved.items()}
