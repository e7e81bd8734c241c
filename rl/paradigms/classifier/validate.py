"""Zero-shot validation on held-out labels during training, and the choice of a stage's checkpoint by it.

The figure is macro-F1 per validation group, averaged within each source set and then over the sets (so a set cut
into many small groups weighs as much as one cut into few). The base encoder's label-embedding baseline on the same
groups is computed once and reported beside every figure: it is the bar a trained model has to clear.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from .evaluate import embedding_baseline, evaluate_model
from .holdout import group_set
from .trainio import save_model


def heldout_figure(results: dict[str, dict]) -> dict:
    """{"macro_f1": mean over sets, "sets": {set: mean over its groups}} from per-group metrics."""
    by_set = defaultdict(list)
    for group, metrics in results.items():
        by_set[group_set(group)].append(metrics["macro_f1"])
    sets = {name: float(np.mean(values)) for name, values in sorted(by_set.items())}
    return {"macro_f1": float(np.mean(list(sets.values()))) if sets else float("nan"), "sets": sets}


class Validator:
    """Scores a model zero-shot on the held-out groups; `base` holds the base encoder's figure on them."""

    def __init__(self, groups: dict[str, list[dict]], encoder: str, max_length: int, batch_size: int = 32,
                 base: dict | None = None):
        self.groups = groups
        self.max_length = max_length
        self.batch_size = batch_size
        self.base = base if base is not None else heldout_figure(embedding_baseline(groups, set(), encoder))

    def __call__(self, model, tokenizer) -> dict:
        was_training = model.training
        results = evaluate_model(model, tokenizer, self.groups, set(), self.batch_size, self.max_length)
        model.train(was_training)  # evaluation switches dropout off; the training loop expects it back
        return heldout_figure(results)


class Selection:
    """Validates every `every` steps and keeps the best weights in `folder` (a strictly better figure replaces
    them, so among equals the earliest, least-moved checkpoint stays). `stop()` says when `patience` validations
    in a row brought nothing better. Its state travels in the stage's checkpoint, so a resumed run keeps its best.
    """

    def __init__(self, validator: Validator | None, folder: Path, every: int, patience: int = 0, log=print,
                 logger=None, state: dict | None = None):
        self.validator = validator if every else None
        self.folder = Path(folder)
        self.every, self.patience, self.log, self.logger = every, patience, log, logger
        self.state = state or {"best": None, "best_step": None, "stale": 0, "history": []}

    @property
    def active(self) -> bool:
        return self.validator is not None

    def due(self, step: int, total: int) -> bool:
        return self.active and (step % self.every == 0 or step == total)

    def check(self, step: int, model, tokenizer, extra: dict | None = None) -> dict:
        """Validate the model after `step` steps, keep it if it is the best so far; returns the figure."""
        figure = self.validator(model, tokenizer)
        base = self.validator.base["macro_f1"]
        best = self.state["best"]
        improved = best is None or figure["macro_f1"] > best
        if improved:
            save_model(self.folder, model, tokenizer)
            self.state.update(best=figure["macro_f1"], best_step=step, stale=0,
                              best_interpolation=(extra or {}).get("interpolation"))
        else:
            self.state["stale"] += 1
        self.state["history"].append({"step": step, "macro_f1": figure["macro_f1"], "sets": figure["sets"],
                                      **(extra or {})})
        if self.logger is not None:
            self.logger.log(step, {"heldout_macro_f1": figure["macro_f1"], "heldout_base": base, **(extra or {})})
        alpha = (extra or {}).get("interpolation")
        mixed = "" if alpha is None else f" mixed {alpha} with the pretrained weights"
        self.log(f"held-out labels after step {step}{mixed}: macro-F1 {figure['macro_f1']:.4f} "
                 f"(base encoder {base:.4f}; best {self.state['best']:.4f} at step {self.state['best_step']})")
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
