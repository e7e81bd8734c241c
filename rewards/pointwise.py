"""ERank's pointwise rewards (no training code was released; constants here are ours, all configurable).

Each completion grades one (query, document) pair: `<think>…</think><answer>s</answer>` with an integer s in
[low, high] = [0, 10]. An output is *formatted* when the tags are right and the answer is such an integer.

Columns:

* `qid`           query id: the group key for r_RR and r_nDCG (all N documents × G rollouts of a query must be in
                  one call; TRL does this when a batch holds whole queries);
* `label`         graded relevance of this row's document; positive when `label >= relevant_at`; a row whose
                  label is None gets None;
* `ref_score`     r_RR only, optional: the reference (SFT) score t of this document (default `default_ref` = 0);
* `teacher_score` r_SE: the teacher's score for this pair (None -> reward None);
* `doc_id`        r_nDCG: which document the row grades (its rollouts share the id).

r_RR (`erank_rr`), over all formatted rollouts of a query sorted jointly by score (ties share the minimum rank):
  positive rollout            -> 1 / rank                                          in (0, 1]
  negative, score >= the lowest positive score (ranked above or level with a positive)
                              -> above_penalty (-1)
  negative below every positive (or the query has no formatted positive)
                              -> below_weight · max(0, 1 − ((s − t) / (high − low))²)   in [0, 0.5]
  unformatted                 -> unformatted_penalty (-1)
r_SE (`erank_se`): 1 − ((s − teacher) / (high − low))², clipped at 0; unformatted -> unformatted_penalty.
r_nDCG (`erank_ndcg`): nDCG@k of the query's documents ranked by their mean formatted score, with this rollout's
  score standing in for its own document (so rollouts of one document differ); equal scores rank the less relevant
  document first; documents with no formatted rollout score `low`. Unformatted -> unformatted_penalty.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .contract import FORMAT_OK, Reward, RewardOutput, column, group_rows
from .metrics import ndcg_at_k
from .parsers import Parsed, parse_grade
from .registry import register_reward

__all__ = ["ERankRR", "ERankRRAnswerOnly", "ERankSE", "ERankNDCG"]


class _Pointwise(Reward):
    answer_format = "grade"

    def __init__(self, low: int, high: int, unformatted_penalty: float, tags: Sequence[str], name: str):
        if high <= low:
            raise ValueError(f"score range needs low < high, got [{low}, {high}]")
        self.score_low, self.score_high, self.tags = int(low), int(high), tuple(tags)
        self.unformatted_penalty, self.name = unformatted_penalty, name

    def grades(self, texts: list[str]) -> tuple[list[Parsed], list[bool]]:
        parsed = [parse_grade(t, self.score_low, self.score_high, self.tags) for t in texts]
        return parsed, [p.ok and p.tags_ok for p in parsed]

    def closeness(self, score: float, target: float) -> float:
        return max(0.0, 1.0 - ((score - target) / (self.score_high - self.score_low)) ** 2)


@register_reward("erank_rr")
class ERankRR(_Pointwise):
    """ERank's r_RR (see module docstring). Components: reciprocal_rank, inversion, calibration, format_ok."""

    def __init__(
        self,
        relevant_at: float = 1,
        above_penalty: float = -1.0,
        unformatted_penalty: float = -1.0,
        below_weight: float = 0.5,
        default_ref: float = 0.0,
        low: int = 0,
        high: int = 10,
        tags: Sequence[str] = ("think", "answer"),
        name: str = "erank_rr",
    ):
        super().__init__(low, high, unformatted_penalty, tags, name)
        self.relevant_at, self.above_penalty = relevant_at, above_penalty
        self.below_weight, self.default_ref = below_weight, default_ref
        self.low = min(above_penalty, unformatted_penalty, 0.0, below_weight)
        self.high = max(1.0, below_weight)

    def compute(self, texts, columns):
        size = len(texts)
        qids = column(columns, "qid", size, self.name)
        labels = column(columns, "label", size, self.name)
        refs = column(columns, "ref_score", size, self.name, required=False)
        parsed, formatted = self.grades(texts)
        totals: list[float | None] = [None] * size
        parts = {key: [None] * size for key in ("reciprocal_rank", "inversion", "calibration")}
        for rows in group_rows(qids).values():
            rows = [r for r in rows if labels[r] is not None]
            graded = [r for r in rows if formatted[r]]
            scores = np.array([parsed[r].value for r in graded], dtype=np.float64)
            positive = {r: float(labels[r]) >= self.relevant_at for r in rows}
            lowest_positive = min((parsed[r].value for r in graded if positive[r]), default=np.inf)
            for r in rows:
                if not formatted[r]:
                    totals[r] = self.unformatted_penalty
                    continue
                s = parsed[r].value
                if positive[r]:
                    totals[r] = parts["reciprocal_rank"][r] = 1.0 / (1 + int(np.count_nonzero(scores > s)))
                elif s >= lowest_positive:
                    totals[r] = self.above_penalty
                    parts["inversion"][r] = 1.0
                else:
                    t = self.default_ref if refs[r] is None else float(refs[r])
                    parts["inversion"][r] = 0.0
                    parts["calibration"][r] = self.closeness(s, t)
                    totals[r] = self.below_weight * parts["calibration"][r]
        format_ok = [None if labels[r] is None else float(parsed[r].format_ok) for r in range(size)]
        return RewardOutput(totals, {**parts, FORMAT_OK: format_ok})


@register_reward("erank_se")
class ERankSE(_Pointwise):
    """ERank's r_SE: closeness of the grade to the teacher's score, in [unformatted_penalty, 1]."""

    def __init__(
        self,
        unformatted_penalty: float = -1.0,
        low: int = 0,
        high: int = 10,
        tags: Sequence[str] = ("think", "answer"),
        name: str = "erank_se",
    ):
        super().__init__(low, high, unformatted_penalty, tags, name)
        self.low, self.high = min(unformatted_penalty, 0.0), 1.0

    def compute(self, texts, columns):
        size = len(texts)
        teacher = column(columns, "teacher_score", size, self.name)
        parsed, formatted = self.grades(texts)
        totals: list[float | None] = []
        for p, ok, t in zip(parsed, formatted, teacher):
            if t is None:
                totals.append(None)
            else:
                totals.append(self.closeness(p.value, float(t)) if ok else self.unformatted_penalty)
        format_ok = [None if t is None else float(p.format_ok) for p, t in zip(parsed, teacher)]
        return RewardOutput(totals, {FORMAT_OK: format_ok})


@register_reward("erank_ndcg")
class ERankNDCG(_Pointwise):
    """ERank's r_nDCG: nDCG@k of the query's documents with this rollout's score in place of its document's mean."""

    def __init__(
        self,
        k: int = 10,
        unformatted_penalty: float = -1.0,
        low: int = 0,
        high: int = 10,
        tags: Sequence[str] = ("think", "answer"),
        name: str | None = None,
    ):
        super().__init__(low, high, unformatted_penalty, tags, name or f"erank_ndcg@{int(k)}")
        self.k = int(k)
        self.low, self.high = min(unformatted_penalty, 0.0), 1.0

    def compute(self, texts, columns):
        size = len(texts)
        qids = column(columns, "qid", size, self.name)
        labels = column(columns, "label", size, self.name)
        doc_ids = column(columns, "doc_id", size, self.name)
        parsed, formatted = self.grades(texts)
        totals: list[float | None] = [None] * size
        for rows in group_rows(qids).values():
            rows = [r for r in rows if labels[r] is not None]
            docs = list(dict.fromkeys(str(doc_ids[r]) for r in rows))
            position = {d: i for i, d in enumerate(docs)}
            gains = np.zeros(len(docs))
            sums, counts = np.zeros(len(docs)), np.zeros(len(docs))
            for r in rows:
                i = position[str(doc_ids[r])]
                gains[i] = max(gains[i], float(labels[r]))
                if formatted[r]:
                    sums[i] += parsed[r].value
                    counts[i] += 1
            means = np.where(counts > 0, sums / np.maximum(counts, 1), float(self.score_low))
            graded = [r for r in rows if formatted[r]]
            for r in rows:
                if not formatted[r]:
                    totals[r] = self.unformatted_penalty
            if not graded:
                continue
            scores = np.tile(means, (len(graded), 1))
            scores[np.arange(len(graded)), [position[str(doc_ids[r])] for r in graded]] = [
                parsed[r].value for r in graded
            ]
            index = np.broadcast_to(np.arange(len(docs)), scores.shape)
            order = np.lexsort((index, np.broadcast_to(gains, scores.shape), -scores), axis=-1)
            ideal = np.broadcast_to(gains, scores.shape)
            values = ndcg_at_k(np.take_along_axis(ideal, order, axis=1), ideal, self.k)
            for r, value in zip(graded, values):
                totals[r] = float(value)
        format_ok = [None if labels[r] is None else float(parsed[r].format_ok) for r in range(size)]
        return RewardOutput(totals, {FORMAT_OK: format_ok})


@register_reward("erank_rr_answer_only")
class ERankRRAnswerOnly(ERankRR):
    """r_RR for the no-reasoning variant: only `<answer>s</answer>` is required."""

    def __init__(self, tags: Sequence[str] = ("answer",), name: str = "erank_rr_answer_only", **options):
        super().__init__(tags=tags, name=name, **options)
