"""List rewards: plain nDCG@k / MRR@k / Recall@k / RBO of a parsed ranking, ReasonRank, REARANK and MM-R5.

Columns (one value per completion, as TRL passes them):

* `labels`  graded gold of the candidates in prompt order (`[i]` in a completion is the i-th candidate). nDCG uses
            them as linear gains (negatives count 0); binary measures count `label >= relevant_at` as relevant.
            A row whose `labels` is None gets None (the reward does not apply to it).
* `doc_ids` optional, candidate ids in prompt order; only its length is checked against `labels`.
* `gold_ranking` optional, 1-based ids best first: the reference list for RBO (default: candidates sorted by label,
            ties in prompt order).

A parsed ranking is completed the usual way (RankGPT): repeated ids keep their first position, out-of-range ids are
dropped, candidates the answer left out follow in prompt order. Every batch-level metric is computed on padded
arrays in one numpy call (`ListBatch`), not one completion at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from .contract import FORMAT_OK, Reward, RewardOutput, column
from .metrics import mrr_at_k, ndcg_at_k, rbo, recall_at_k
from .parsers import Parsed, parse_permutation, parse_scores
from .registry import register_reward

__all__ = ["ListBatch", "NDCG", "MRR", "Recall", "RBO", "ReasonRank", "Rearank", "MMR5", "MMR5AnswerOnly"]

TIES = ("prompt", "pessimistic")


@dataclass
class ListBatch:
    """The completions of one call that carry labels, as padded arrays: `labels` (B, N) with -inf padding."""

    rows: list[int]
    labels: np.ndarray
    lengths: np.ndarray

    @classmethod
    def from_columns(cls, columns: dict[str, Any], size: int, reward: str) -> ListBatch:
        raw = column(columns, "labels", size, reward)
        doc_ids = column(columns, "doc_ids", size, reward, required=False)
        rows = [row for row, labels in enumerate(raw) if labels is not None]
        lists = [raw[row] for row in rows]
        lengths = np.array([len(labels) for labels in lists], dtype=np.int64)
        for row, n in zip(rows, lengths):
            if doc_ids[row] is not None and len(doc_ids[row]) != n:
                raise ValueError(f"reward {reward!r}: row {row} has {len(doc_ids[row])} doc_ids but {n} labels")
        width = int(lengths.max()) if len(rows) else 0
        try:
            if len(rows) and (lengths == width).all():
                labels = np.array(lists, dtype=np.float64).reshape(len(rows), width)
            else:
                labels = np.full((len(rows), width), -np.inf)
                for i, values in enumerate(lists):
                    labels[i, : len(values)] = values
        except (TypeError, ValueError):
            raise ValueError(f"reward {reward!r}: column 'labels' must hold one list of numbers per row") from None
        labels[np.isnan(labels) | (labels == np.inf)] = 0.0
        return cls(rows, labels, lengths)

    @property
    def width(self) -> int:
        return self.labels.shape[1]

    def relevant(self, relevant_at: float) -> np.ndarray:
        return self.labels >= relevant_at

    def score_matrix(self, scores: list[dict[int, float] | None], missing: float) -> tuple[np.ndarray, np.ndarray]:
        """(B, N) predicted scores (`missing` where the answer gave none, -inf on padding) and a (B,) mask of rows
        whose answer scored at least one in-range id. Built without a Python loop over the ids."""
        matrix = np.where(np.arange(self.width) < self.lengths[:, None], missing, -np.inf)
        counts = np.array([len(found) if found else 0 for found in scores], dtype=np.int64)
        total = int(counts.sum())
        docs = np.fromiter(chain.from_iterable(f.keys() for f in scores if f), dtype=np.int64, count=total)
        values = np.fromiter(chain.from_iterable(f.values() for f in scores if f), dtype=np.float64, count=total)
        rows = np.repeat(np.arange(len(scores)), counts)
        keep = (docs >= 1) & (docs <= self.lengths[rows])
        matrix[rows[keep], docs[keep] - 1] = values[keep]
        return matrix, np.bincount(rows[keep], minlength=len(scores)) > 0

    def order_from_scores(self, matrix: np.ndarray, ties: str) -> np.ndarray:
        """Row-wise candidate order by predicted score (best first); padding always last."""
        index = np.broadcast_to(np.arange(self.width), self.labels.shape)
        tiebreak = self.labels if ties == "pessimistic" else np.zeros(self.labels.shape)
        return np.lexsort((index, tiebreak, -matrix), axis=-1)

    def order_from_ids(self, id_lists: list[Sequence[int] | None]) -> np.ndarray:
        """Row-wise order from 1-based ids: repeats and out-of-range ids dropped, the rest in prompt order."""
        order = np.tile(np.arange(self.width), (len(self.rows), 1))
        if not any(id_lists):
            return order
        for i, (ids, n) in enumerate(zip(id_lists, self.lengths)):
            if not ids:
                continue
            ranked = [j - 1 for j in dict.fromkeys(ids or ()) if 1 <= j <= n]
            taken = set(ranked)
            order[i, :n] = ranked + [j for j in range(n) if j not in taken]
        return order

    def ndcg(self, order: np.ndarray, k: int) -> np.ndarray:
        return ndcg_at_k(np.take_along_axis(self.labels, order, axis=1), self.labels, k)

    def recall(self, order: np.ndarray, k: int, relevant_at: float) -> np.ndarray:
        rel = self.relevant(relevant_at)
        return recall_at_k(np.take_along_axis(rel, order, axis=1), rel.sum(axis=1), k)

    def mrr(self, order: np.ndarray, k: int, relevant_at: float) -> np.ndarray:
        return mrr_at_k(np.take_along_axis(self.relevant(relevant_at), order, axis=1), k)

    def gold_lists(self, columns: dict[str, Any], size: int, reward: str) -> list[list[int]]:
        """Reference ranking per row (1-based ids): the `gold_ranking` column, else labels descending."""
        given = column(columns, "gold_ranking", size, reward, required=False)
        out = []
        for i, row in enumerate(self.rows):
            n = int(self.lengths[i])
            if given[row] is not None:
                out.append([int(j) for j in given[row]])
            else:
                out.append([int(j) + 1 for j in np.argsort(-self.labels[i, :n], kind="stable")])
        return out

    def scatter(self, size: int, values: np.ndarray | Sequence) -> list[float | None]:
        """Per-completion list with `values` at the labelled rows and None elsewhere."""
        if isinstance(values, np.ndarray) and values.dtype.kind == "f" and len(self.rows) == size:
            return values.tolist()  # every row labelled (rows are then 0..size-1 in order): one C call
        out: list[float | None] = [None] * size
        for row, value in zip(self.rows, values):
            out[row] = None if value is None else float(value)
        return out


def _check_ties(ties: str) -> str:
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    return ties


def parse_rankings(texts: list[str], answer: str, tags: Sequence[str]) -> list[Parsed]:
    """Parse each text as groupwise scores (`answer="scores"`), a permutation (`"permutation"`) or, with
    `"auto"`, scores when a score object parses and a permutation otherwise."""
    if answer not in ("auto", "scores", "permutation"):
        raise ValueError(f"answer must be 'auto', 'scores' or 'permutation', got {answer!r}")
    out = []
    for text in texts:
        parsed = parse_scores(text, tags) if answer != "permutation" else Parsed()
        if not parsed.ok and answer != "scores":
            parsed = parse_permutation(text, tags)
        out.append(parsed)
    return out


class _ListMetric(Reward):
    """A ranking metric of the parsed answer, in [0, 1]; an answer with no usable in-range id scores 0."""

    label = "metric"

    @property
    def answer_format(self) -> str:
        return "permutation" if self.answer == "permutation" else "scores"

    def __init__(
        self,
        k: int = 10,
        answer: str = "auto",
        relevant_at: float = 1,
        ties: str = "prompt",
        missing_score: float = 0.0,
        tags: Sequence[str] = ("answer",),
        name: str | None = None,
    ):
        if int(k) < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.k, self.answer, self.relevant_at = int(k), answer, relevant_at
        self.ties, self.missing_score, self.tags = _check_ties(ties), float(missing_score), tuple(tags)
        self.name = name or f"{self.label}@{self.k}"
        parse_rankings([], answer, self.tags)  # validates `answer`

    def orders(self, batch: ListBatch, texts: list[str]) -> tuple[np.ndarray, np.ndarray, list[Parsed]]:
        parsed = parse_rankings([texts[r] for r in batch.rows], self.answer, self.tags)
        scores = [p.value if p.ok and isinstance(p.value, dict) else None for p in parsed]
        id_lists = [p.value if p.ok and isinstance(p.value, list) else None for p in parsed]
        matrix, scored = batch.score_matrix(scores, self.missing_score)
        by_scores = batch.order_from_scores(matrix, self.ties)
        by_ids = batch.order_from_ids(id_lists)
        use_scores = np.array([s is not None for s in scores], dtype=bool)[:, None]
        usable = scored
        if any(id_lists):
            listed = [bool(ids) and any(1 <= j <= n for j in ids) for ids, n in zip(id_lists, batch.lengths)]
            usable = scored | np.array(listed, dtype=bool)
        return np.where(use_scores, by_scores, by_ids), usable, parsed

    def metric(self, batch: ListBatch, order: np.ndarray, columns: dict[str, Any], size: int) -> np.ndarray:
        raise NotImplementedError

    def compute(self, texts: list[str], columns: dict[str, Any]) -> RewardOutput:
        batch = ListBatch.from_columns(columns, len(texts), self.name)
        order, usable, parsed = self.orders(batch, texts)
        values = np.where(usable, self.metric(batch, order, columns, len(texts)), 0.0) if batch.rows else []
        format_ok = np.array([p.format_ok for p in parsed], dtype=np.float64)
        return RewardOutput(batch.scatter(len(texts), values), {FORMAT_OK: batch.scatter(len(texts), format_ok)})


@register_reward("ndcg")
class NDCG(_ListMetric):
    """nDCG@k (graded gains) of the parsed ranking; spec `ndcg@K`."""

    label = "ndcg"

    def metric(self, batch, order, columns, size):
        return batch.ndcg(order, self.k)


@register_reward("mrr")
class MRR(_ListMetric):
    """Reciprocal rank of the first relevant candidate within the top k; spec `mrr@K`."""

    label = "mrr"

    def metric(self, batch, order, columns, size):
        return batch.mrr(order, self.k, self.relevant_at)


@register_reward("recall")
class Recall(_ListMetric):
    """Share of the relevant candidates placed in the top k; spec `recall@K`."""

    label = "recall"

    def metric(self, batch, order, columns, size):
        return batch.recall(order, self.k, self.relevant_at)


@register_reward("rbo")
class RBO(_ListMetric):
    """Rank-biased overlap (RBO_ext, persistence p) between the completed ranking and the reference ranking."""

    label = "rbo"

    def __init__(self, p: float = 0.9, name: str | None = None, **options):
        if not 0 < p < 1:
            raise ValueError(f"rbo persistence p must be in (0, 1), got {p!r}")
        super().__init__(name=name or "rbo", **options)
        self.p = p

    def metric(self, batch, order, columns, size):
        gold = batch.gold_lists(columns, size, self.name)
        return np.array(
            [rbo([int(j) + 1 for j in order[i, :n]], gold[i], self.p) for i, n in enumerate(batch.lengths)]
        )


def _is_permutation(ids: Sequence[int] | None, n: int) -> bool:
    return ids is not None and sorted(ids) == list(range(1, n + 1))


@register_reward("reasonrank")
class ReasonRank(Reward):
    """ReasonRank: -1 without the tags; 0 when the answer is not exactly a permutation of the candidates;
    else nDCG@k + recall_weight·Recall@k + rbo_weight·RBO. Range [-1, 1 + recall_weight + rbo_weight]."""

    answer_format = "permutation"

    def __init__(
        self,
        k: int = 10,
        recall_weight: float = 0.2,
        rbo_weight: float = 0.1,
        rbo_p: float = 0.9,
        relevant_at: float = 1,
        no_tags_penalty: float = -1.0,
        tags: Sequence[str] = ("think", "answer"),
        name: str = "reasonrank",
    ):
        self.k, self.recall_weight, self.rbo_weight, self.rbo_p = int(k), recall_weight, rbo_weight, rbo_p
        self.relevant_at, self.no_tags_penalty, self.tags, self.name = relevant_at, no_tags_penalty, tuple(tags), name
        self.low, self.high = min(no_tags_penalty, 0.0), 1.0 + max(recall_weight, 0) + max(rbo_weight, 0)

    def compute(self, texts, columns):
        size = len(texts)
        batch = ListBatch.from_columns(columns, size, self.name)
        parsed = [parse_permutation(texts[r], self.tags) for r in batch.rows]
        order = batch.order_from_ids([p.value for p in parsed])
        ndcg, recall = batch.ndcg(order, self.k), batch.recall(order, self.k, self.relevant_at)
        gold = batch.gold_lists(columns, size, self.name)
        overlap = [rbo([int(j) + 1 for j in order[i, :n]], gold[i], self.rbo_p) for i, n in enumerate(batch.lengths)]
        totals, valid = [], []
        for i, (p, n) in enumerate(zip(parsed, batch.lengths)):
            valid.append(p.tags_ok and _is_permutation(p.value, int(n)))
            if not p.tags_ok:
                totals.append(self.no_tags_penalty)
            elif not valid[-1]:
                totals.append(0.0)
            else:
                totals.append(ndcg[i] + self.recall_weight * recall[i] + self.rbo_weight * overlap[i])
        measured = lambda values: [v if ok else None for v, ok in zip(values, valid)]  # noqa: E731
        return RewardOutput(
            batch.scatter(size, totals),
            {
                "ndcg": batch.scatter(size, measured(ndcg)),
                "recall": batch.scatter(size, measured(recall)),
                "rbo": batch.scatter(size, measured(overlap)),
                FORMAT_OK: batch.scatter(size, [float(p.format_ok and v) for p, v in zip(parsed, valid)]),
            },
        )


@register_reward("rearank")
class Rearank(Reward):
    """REARANK: 0.8·normalised nDCG@k gain over the prompt order + 0.1·tags + 0.1·valid permutation.

    The gain is (nDCG_rerank − nDCG_init) / (nDCG_ideal − nDCG_init); when the prompt order is already ideal
    (or nothing is relevant) the denominator is 0 and the plain difference nDCG_rerank − nDCG_init is used. The
    gain is clipped to [-1, 1], so the total lies in [-gain_weight, gain_weight + tags_weight + valid_weight]. An
    unparsable answer ranks as the prompt order (gain 0)."""

    answer_format = "permutation"

    def __init__(
        self,
        k: int = 10,
        gain_weight: float = 0.8,
        tags_weight: float = 0.1,
        valid_weight: float = 0.1,
        tags: Sequence[str] = ("think", "answer"),
        name: str = "rearank",
    ):
        self.k, self.gain_weight, self.tags_weight, self.valid_weight = int(k), gain_weight, tags_weight, valid_weight
        self.tags, self.name = tuple(tags), name
        self.low, self.high = -abs(gain_weight), abs(gain_weight) + abs(tags_weight) + abs(valid_weight)

    def compute(self, texts, columns):
        size = len(texts)
        batch = ListBatch.from_columns(columns, size, self.name)
        parsed = [parse_permutation(texts[r], self.tags) for r in batch.rows]
        reranked = batch.ndcg(batch.order_from_ids([p.value for p in parsed]), self.k)
        initial = batch.ndcg(batch.order_from_ids([None] * len(batch.rows)), self.k)
        ideal = batch.ndcg(np.argsort(-batch.labels, axis=1, kind="stable"), self.k)
        room = ideal - initial
        gain = np.where(room > 1e-12, (reranked - initial) / np.where(room > 1e-12, room, 1.0), reranked - initial)
        gain = np.clip(gain, -1.0, 1.0)
        tags = np.array([float(p.tags_ok) for p in parsed])
        valid = np.array([float(_is_permutation(p.value, int(n))) for p, n in zip(parsed, batch.lengths)])
        totals = self.gain_weight * gain + self.tags_weight * tags + self.valid_weight * valid
        return RewardOutput(
            batch.scatter(size, totals),
            {
                "ndcg_gain": batch.scatter(size, gain),
                "ndcg": batch.scatter(size, reranked),
                "tags": batch.scatter(size, tags),
                "valid": batch.scatter(size, valid),
                FORMAT_OK: batch.scatter(size, [float(p.format_ok and v) for p, v in zip(parsed, valid)]),
            },
        )


@register_reward("mm_r5")
class MMR5(Reward):
    """MM-R5 result + format reward over a ranked list of image ids `[id1, id2, ...]`; range [0, 2].

    result = Σ_{gold g in the answer} 1/rank(g)³ / Σ_{i=1..|gold|} 1/i³ (0 without gold or without a valid answer);
    format = valid · length · range, valid = tags present and ids parsed, length = (N − |len − N|)/N clipped at 0,
    range = share of ids in [1, N]. Ids are deduplicated first (first position kept), as the paper intends;
    out-of-range ids keep their place in the list. Gold = `label >= relevant_at`."""

    answer_format = "permutation"

    low, high = 0.0, 2.0

    def __init__(self, relevant_at: float = 1, tags: Sequence[str] = ("think", "answer"), name: str = "mm_r5"):
        self.relevant_at, self.tags, self.name = relevant_at, tuple(tags), name

    def compute(self, texts, columns):
        size = len(texts)
        batch = ListBatch.from_columns(columns, size, self.name)
        gold = batch.relevant(self.relevant_at)
        results, formats, clean = [], [], []
        for i, row in enumerate(batch.rows):
            n = int(batch.lengths[i])
            parsed = parse_permutation(texts[row], self.tags)
            valid = parsed.ok and parsed.tags_ok
            ids = list(dict.fromkeys(parsed.value)) if valid else []
            golden = {j + 1 for j in np.flatnonzero(gold[i, :n])}
            best = sum(1.0 / r**3 for r in range(1, len(golden) + 1))
            found = sum(1.0 / (rank**3) for rank, j in enumerate(ids, 1) if j in golden)
            results.append(found / best if best else 0.0)
            length = max(0.0, (n - abs(len(ids) - n)) / n) if n else 0.0
            in_range = sum(1 for j in ids if 1 <= j <= n) / len(ids) if ids else 0.0
            formats.append(float(valid) * length * in_range)
            clean.append(float(parsed.format_ok))
        totals = [r + f for r, f in zip(results, formats)]
        return RewardOutput(
            batch.scatter(size, totals),
            {
                "result": batch.scatter(size, results),
                "format": batch.scatter(size, formats),
                FORMAT_OK: batch.scatter(size, clean),
            },
        )


@register_reward("mm_r5_answer_only")
class MMR5AnswerOnly(MMR5):
    """MM-R5 for the no-reasoning variant: only `<answer>[...]</answer>` is required."""

    def __init__(self, relevant_at: float = 1, tags: Sequence[str] = ("answer",), name: str = "mm_r5_answer_only"):
        super().__init__(relevant_at, tags, name)
