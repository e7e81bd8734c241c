"""Vectorised IR metrics with trec_eval semantics, run-level evaluation and TREC run I/O.

Rewards score thousands of completions per step, so every per-list metric here works on a padded batch
(`(B, L)` numpy arrays, one row per ranked list) instead of looping in Python. `evaluate_run` builds those
arrays from a run and qrels and reproduces `trec_eval -c -l{rel_level}`:

* averages over every query in the qrels; a judged query missing from the run scores 0 (`-c`);
  run queries without judgments are ignored;
* nDCG (`ndcg_cut`) uses the graded judgment as a linear gain with a log2(rank + 1) discount, independent of
  `rel_level`; negative judgments count as gain 0; the ideal ranking is built from all judgments of the query;
* binary measures (recall, MRR, MAP, precision) count `rel >= rel_level` as relevant;
* a document listed twice in a ranked list counts once, at its first position (trec_eval rejects such runs).

Scored runs are turned into ranked lists with `rank_from_scores`, which breaks ties the way trec_eval does.
TREC runs and qrels are read by `rerank_rl.data_synthesis.readers` (`read_trec_run`, `read_qrels`), which
report malformed lines as `file:line` errors; `write_trec_run` here writes runs those readers read back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "ndcg_at_k",
    "recall_at_k",
    "mrr_at_k",
    "precision_at_k",
    "average_precision",
    "rbo",
    "rank_from_scores",
    "evaluate_run",
    "write_trec_run",
]


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def ndcg_at_k(ranked_gains: np.ndarray, ideal_gains: np.ndarray, k: int) -> np.ndarray:
    """nDCG@k per row. `ranked_gains` (B, L): gain at each rank, 0-padded; `ideal_gains` (B, M): every judged
    gain of the query in any order, 0-padded. Rows whose ideal DCG is 0 score 0."""
    ranked = np.clip(np.asarray(ranked_gains, dtype=np.float64)[:, :k], 0.0, None)
    ideal = np.clip(np.asarray(ideal_gains, dtype=np.float64), 0.0, None)
    ideal = -np.sort(-ideal, axis=1)[:, :k]
    dcg = ranked @ _discounts(ranked.shape[1]) if ranked.shape[1] else np.zeros(ranked.shape[0])
    idcg = ideal @ _discounts(ideal.shape[1]) if ideal.shape[1] else np.zeros(ideal.shape[0])
    out = np.zeros_like(dcg)
    np.divide(dcg, idcg, out=out, where=idcg > 0)
    return out


def recall_at_k(ranked_rel: np.ndarray, num_relevant: np.ndarray, k: int) -> np.ndarray:
    """Share of the query's relevant documents found in the top k; 0 when the query has none."""
    hits = np.asarray(ranked_rel, dtype=bool)[:, :k].sum(axis=1).astype(np.float64)
    num = np.asarray(num_relevant, dtype=np.float64)
    out = np.zeros_like(hits)
    np.divide(hits, num, out=out, where=num > 0)
    return out


def precision_at_k(ranked_rel: np.ndarray, k: int) -> np.ndarray:
    """Relevant documents in the top k divided by k (trec_eval P_k: short lists are not rescaled)."""
    return np.asarray(ranked_rel, dtype=bool)[:, :k].sum(axis=1) / float(k)


def mrr_at_k(ranked_rel: np.ndarray, k: int) -> np.ndarray:
    """Reciprocal rank of the first relevant document within the top k, else 0."""
    rel = np.asarray(ranked_rel, dtype=bool)[:, :k]
    if rel.shape[1] == 0:
        return np.zeros(rel.shape[0])
    first = rel.argmax(axis=1)
    return np.where(rel.any(axis=1), 1.0 / (first + 1.0), 0.0)


def average_precision(ranked_rel: np.ndarray, num_relevant: np.ndarray) -> np.ndarray:
    """Average precision over the whole list (trec_eval `map`): unretrieved relevant documents count as 0."""
    rel = np.asarray(ranked_rel, dtype=bool)
    num = np.asarray(num_relevant, dtype=np.float64)
    if rel.shape[1] == 0:
        return np.zeros(rel.shape[0])
    prec = np.cumsum(rel, axis=1) / np.arange(1, rel.shape[1] + 1)
    total = (prec * rel).sum(axis=1)
    out = np.zeros_like(total)
    np.divide(total, num, out=out, where=num > 0)
    return out


def _dedupe(items: Sequence) -> list:
    seen: set = set()
    return [x for x in items if not (x in seen or seen.add(x))]


def rbo(ranking_a: Sequence, ranking_b: Sequence, p: float = 0.9) -> float:
    """Rank-biased overlap, extrapolated variant RBO_ext (Webber, Moffat & Zobel 2010, eq. 32), in [0, 1].

    RBO_ext assumes the agreement seen at the end of the shorter list continues, so identical lists score
    exactly 1 whatever their length. Repeated items count once (first position). Two empty lists score 1,
    one empty list against a non-empty one scores 0."""
    a, b = _dedupe(ranking_a), _dedupe(ranking_b)
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    s, l = len(short), len(long_)
    if l == 0:
        return 1.0
    if s == 0:
        return 0.0
    # X_d: overlap of the top-d prefixes; beyond depth s the short list stays at its full length.
    seen_short: set = set()
    seen_long: set = set()
    overlap = np.zeros(l + 1)
    x = 0
    for d in range(1, l + 1):
        item_l = long_[d - 1]
        if d <= s:
            item_s = short[d - 1]
            if item_s == item_l:
                x += 1
            else:
                x += (item_s in seen_long) + (item_l in seen_short)
            seen_short.add(item_s)
        else:
            x += item_l in seen_short
        seen_long.add(item_l)
        overlap[d] = x
    depths = np.arange(1, l + 1, dtype=np.float64)
    weights = p**depths
    x_s, x_l = overlap[s], overlap[l]
    total = np.sum(overlap[1:] / depths * weights)
    tail = depths[s:]
    total += np.sum(x_s * (tail - s) / (s * tail) * weights[s:])
    value = (1 - p) / p * total + ((x_l - x_s) / l + x_s / s) * p**l
    return float(min(1.0, max(0.0, value)))


def rank_from_scores(doc_scores: dict[str, float]) -> list[str]:
    """Doc ids best first, ordered as trec_eval orders a run: score descending, ties by doc id descending."""
    return [d for d, _ in sorted(doc_scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]


_METRIC = re.compile(r"^(ndcg|recall|mrr|precision)@(\d+)$")


def _parse_metric(name: str) -> tuple[str, int | None]:
    if name == "map":
        return "map", None
    match = _METRIC.match(name)
    if not match or int(match.group(2)) < 1:
        raise ValueError(
            f"unknown metric {name!r}: use ndcg@K, recall@K, mrr@K, precision@K or map (K a positive integer)"
        )
    return match.group(1), int(match.group(2))


def evaluate_run(
    run: dict[str, list[str]],
    qrels: dict[str, dict[str, int]],
    metrics: Sequence[str] = ("ndcg@10", "recall@100", "mrr@10", "map"),
    rel_level: int = 1,
    per_query: bool = False,
) -> dict:
    """Mean of each metric over all judged queries, like `trec_eval -c -l{rel_level}` (see module docstring).

    `run` maps qid -> doc ids best first; `qrels` maps qid -> {doc id: graded judgment}. Returns
    `{metric: mean, ..., "queries": n}` plus `"per_query": {qid: {metric: value}}` when asked."""
    parsed = [(name, *_parse_metric(name)) for name in metrics]
    qids = list(qrels)
    width = max((len(run.get(q, ())) for q in qids), default=0)
    depth = max((len(qrels[q]) for q in qids), default=0)
    # Judgment level per cell; -inf marks unjudged documents and padding (gain 0, never relevant).
    levels = np.full((len(qids), width), -np.inf)
    ideal = np.full((len(qids), depth), -np.inf)
    for row, qid in enumerate(qids):
        judged = qrels[qid]
        ranked = _dedupe(run.get(qid, ()))
        levels[row, : len(ranked)] = [judged.get(d, -np.inf) for d in ranked]
        ideal[row, : len(judged)] = list(judged.values())
    rel = levels >= rel_level
    num_rel = (ideal >= rel_level).sum(axis=1)

    values: dict[str, np.ndarray] = {}
    for name, kind, k in parsed:
        if kind == "ndcg":
            values[name] = ndcg_at_k(levels, ideal, k)
        elif kind == "recall":
            values[name] = recall_at_k(rel, num_rel, k)
        elif kind == "mrr":
            values[name] = mrr_at_k(rel, k)
        elif kind == "precision":
            values[name] = precision_at_k(rel, k)
        else:
            values[name] = average_precision(rel, num_rel)

    out: dict = {name: float(v.mean()) if len(qids) else 0.0 for name, v in values.items()}
    out["queries"] = len(qids)
    if per_query:
        out["per_query"] = {q: {name: float(values[name][i]) for name in values} for i, q in enumerate(qids)}
    return out


def write_trec_run(path: str | Path, run_scores: dict[str, list[tuple[str, float]]], tag: str) -> None:
    """Write `qid Q0 docid rank score tag` lines, ranks from 1, each query sorted by score descending
    (ties by doc id descending, so trec_eval reads back the same order)."""
    with open(path, "w", encoding="utf-8") as handle:
        for qid, pairs in run_scores.items():
            ordered = sorted(pairs, key=lambda kv: (kv[1], kv[0]), reverse=True)
            for rank, (doc, score) in enumerate(ordered, 1):
                handle.write(f"{qid} Q0 {doc} {rank} {float(score)!r} {tag}\n")
