"""Classification rewards: per-example F1, accuracy, recall and precision of a predicted label set.

The array functions take boolean decision matrices `pred`, `gold` of shape (B, L) (one row per example, one column
per candidate label) and an optional `mask` (B, L) marking the real columns of padded rows, and return one value per
example, which is what a policy-gradient update needs (the classifier PPO uses them directly). Conventions, so that
an example with nothing to find is not punished: F1, recall and precision are 1 when their denominator is 0.

* `f1_micro`: 2TP / (2TP + FP + FN) over the example's decisions (sklearn's `average="samples"`).
* `f1_macro`: mean of the F1 of the two decision classes within the example, "label applies" and "label does not
  apply" (the second is 2TN / (2TN + FP + FN)), so correct rejections count as much as correct picks.
* `accuracy`: share of correct decisions (Hamming accuracy); `exact_match`: 1 when every decision is correct.
* `recall`: TP / (TP + FN); `precision`: TP / (TP + FP).

Registry rewards (`label_f1_micro`, `label_f1_macro`, `label_accuracy`, `label_exact_match`, `label_recall`,
`label_precision`) parse a label set from the completion (`parsers.parse_labels`: JSON list or comma-separated,
inside `<answer>` when present) and read the columns
* `gold_labels`: the gold label set (a list of strings, or one string); None -> reward None;
* `label_options`: optional, every candidate label of the example, so that correct rejections count (f1_macro,
  accuracy); without it the columns are the predicted and gold labels only.
Labels match case-insensitively after stripping. An unparsable completion predicts the empty set. Range [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .contract import FORMAT_OK, Reward, RewardOutput, column
from .parsers import parse_labels
from .registry import register_reward

__all__ = ["f1_micro", "f1_macro", "accuracy", "exact_match", "recall", "precision", "label_matrices"]


def _counts(pred, gold, mask) -> tuple[np.ndarray, ...]:
    pred, gold = np.asarray(pred, dtype=bool), np.asarray(gold, dtype=bool)
    if pred.shape != gold.shape or pred.ndim != 2:
        raise ValueError(f"pred and gold must be (B, L) of the same shape, got {pred.shape} and {gold.shape}")
    mask = np.ones_like(pred) if mask is None else np.asarray(mask, dtype=bool)
    tp = (pred & gold & mask).sum(axis=1)
    fp = (pred & ~gold & mask).sum(axis=1)
    fn = (~pred & gold & mask).sum(axis=1)
    tn = (~pred & ~gold & mask).sum(axis=1)
    return tp.astype(np.float64), fp.astype(np.float64), fn.astype(np.float64), tn.astype(np.float64)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.ones_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def f1_micro(pred: np.ndarray, gold: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-example F1 of the label decisions; 1 when nothing is gold and nothing predicted."""
    tp, fp, fn, _ = _counts(pred, gold, mask)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def f1_macro(pred: np.ndarray, gold: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-example mean of the F1 of the "applies" and "does not apply" decision classes."""
    tp, fp, fn, tn = _counts(pred, gold, mask)
    return 0.5 * (_ratio(2 * tp, 2 * tp + fp + fn) + _ratio(2 * tn, 2 * tn + fp + fn))


def accuracy(pred: np.ndarray, gold: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-example share of correct label decisions (1 for an example without labels)."""
    tp, fp, fn, tn = _counts(pred, gold, mask)
    return _ratio(tp + tn, tp + fp + fn + tn)


def exact_match(pred: np.ndarray, gold: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """1 where every label decision of the example is correct, else 0."""
    _, fp, fn, _ = _counts(pred, gold, mask)
    return ((fp + fn) == 0).astype(np.float64)


def recall(pred: np.ndarray, gold: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-example share of gold labels predicted; 1 when the example has no gold label."""
    tp, _, fn, _ = _counts(pred, gold, mask)
    return _ratio(tp, tp + fn)


def precision(pred: np.ndarray, gold: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-example share of predicted labels that are gold; 1 when nothing is predicted."""
    tp, fp, _, _ = _counts(pred, gold, mask)
    return _ratio(tp, tp + fp)


def _as_set(labels) -> list[str]:
    if labels is None:
        return []
    if isinstance(labels, str):
        labels = [labels]
    return [str(label).strip() for label in labels if str(label).strip()]


def label_matrices(
    predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], options: Sequence[Sequence[str] | None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pred, gold, mask) boolean (B, L) matrices over each example's labels: its options ∪ gold ∪ predicted."""
    vocabularies = []
    for pred_row, gold_row, option_row in zip(predicted, gold, options):
        names = [*_as_set(option_row), *_as_set(gold_row), *_as_set(pred_row)]
        vocabularies.append({key: i for i, key in enumerate(dict.fromkeys(n.casefold() for n in names))})
    width = max((len(v) for v in vocabularies), default=0)
    pred_m, gold_m, mask = (np.zeros((len(vocabularies), width), dtype=bool) for _ in range(3))
    for i, vocabulary in enumerate(vocabularies):
        mask[i, : len(vocabulary)] = True
        for label in _as_set(predicted[i]):
            pred_m[i, vocabulary[label.casefold()]] = True
        for label in _as_set(gold[i]):
            gold_m[i, vocabulary[label.casefold()]] = True
    return pred_m, gold_m, mask


class _LabelSetReward(Reward):
    """Scores the completion's label set against `gold_labels` with one of the array functions above."""

    low, high = 0.0, 1.0
    answer_format = "labels"  # no hacking probes for label sets yet (rewards/probes.py)
    measure: Callable[..., np.ndarray] = staticmethod(f1_micro)
    default_name = "label_f1_micro"

    def __init__(self, tags: Sequence[str] = ("answer",), name: str | None = None):
        self.tags = tuple(tags)
        self.name = name or self.default_name

    def compute(self, texts, columns):
        size = len(texts)
        gold = column(columns, "gold_labels", size, self.name)
        options = column(columns, "label_options", size, self.name, required=False)
        rows = [r for r in range(size) if gold[r] is not None]
        parsed = [parse_labels(texts[r], self.tags) for r in rows]
        predicted = [p.value if p.ok else [] for p in parsed]
        pred_m, gold_m, mask = label_matrices(predicted, [gold[r] for r in rows], [options[r] for r in rows])
        values = self.measure(pred_m, gold_m, mask) if rows else []
        totals: list[float | None] = [None] * size
        format_ok: list[float | None] = [None] * size
        for r, value, p in zip(rows, values, parsed):
            totals[r], format_ok[r] = float(value), float(p.format_ok)
        return RewardOutput(totals, {FORMAT_OK: format_ok})


@register_reward("label_f1_micro")
class LabelF1Micro(_LabelSetReward):
    measure, default_name = staticmethod(f1_micro), "label_f1_micro"


@register_reward("label_f1_macro")
class LabelF1Macro(_LabelSetReward):
    measure, default_name = staticmethod(f1_macro), "label_f1_macro"


@register_reward("label_accuracy")
class LabelAccuracy(_LabelSetReward):
    measure, default_name = staticmethod(accuracy), "label_accuracy"


@register_reward("label_exact_match")
class LabelExactMatch(_LabelSetReward):
    measure, default_name = staticmethod(exact_match), "label_exact_match"


@register_reward("label_recall")
class LabelRecall(_LabelSetReward):
    measure, default_name = staticmethod(recall), "label_recall"


@register_reward("label_precision")
class LabelPrecision(_LabelSetReward):
    measure, default_name = staticmethod(precision), "label_precision"
