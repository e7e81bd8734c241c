"""Teacher labels for candidate pools: pointwise grades + a listwise ranking, fused into graded labels.

Pointwise: each document is graded 0-10 `pointwise_samples` times; the kept grade is the sample closest to the
samples' mean (first such sample on a tie), as ERank does. Its rank position Lp(d) is the 1-based fractional rank
of that grade in the pool (tied grades share the mean of their positions; documents without any valid grade tie
below all graded ones).

Listwise: RankGPT-style sliding windows from the bottom of the first-stage order to the top (`listwise_window`,
`listwise_stride`); ids the teacher omitted keep their relative order after the ones it gave, a window that
fails leaves its order unchanged. Ll(d) is the 1-based position in the final order.

Fusion (GroupRank): S(d) = -beta*ln Lp(d) - (1-beta)*ln Ll(d). When one signal is missing for a whole pool, S uses
the other alone. Graded labels come from the geometric-mean rank G = exp(-S) = Lp^beta * Ll^(1-beta): the grade is
the number of `rank_cuts` c with G <= c, so with cuts [2, 5, 15] a document both teachers put first gets 3,
G in (2, 5] gets 2, (5, 15] gets 1, deeper 0. `pointwise_floor` zeroes documents the pointwise teacher graded
below it, so that a pool with nothing relevant need not have top grades.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from rerank_rl.data_synthesis import prompts
from rerank_rl.data_synthesis.teachers import Request, TeacherClient


def fractional_ranks(scores: Sequence[float | None]) -> list[float]:
    """1-based ranks, higher score first; ties share the mean of their positions; None ties below every score."""
    keyed = sorted(range(len(scores)), key=lambda i: (scores[i] is None, -(scores[i] or 0.0)))
    ranks = [0.0] * len(scores)
    start = 0
    while start < len(keyed):
        end = start
        key = scores[keyed[start]]
        while end + 1 < len(keyed) and scores[keyed[end + 1]] == key:
            end += 1
        for j in range(start, end + 1):
            ranks[keyed[j]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def order_ranks(order: Sequence[int], n: int) -> list[int]:
    """1-based position of each of n items in `order` (0-based ids); missing ids follow in their own order."""
    full = list(dict.fromkeys(i for i in order if 0 <= i < n))
    full += [i for i in range(n) if i not in set(full)]
    ranks = [0] * n
    for position, i in enumerate(full, start=1):
        ranks[i] = position
    return ranks


def fuse(lp: Sequence[float] | None, ll: Sequence[float] | None, beta: float = 0.5) -> list[float] | None:
    """S(d) = -beta*ln Lp(d) - (1-beta)*ln Ll(d); with one side None the other is used alone."""
    if lp is None and ll is None:
        return None
    if ll is None:
        return [-math.log(p) for p in lp]
    if lp is None:
        return [-math.log(q) for q in ll]
    return [-beta * math.log(p) - (1 - beta) * math.log(q) for p, q in zip(lp, ll)]


def grades_from_fused(fused: Sequence[float], cuts: Sequence[float]) -> list[int]:
    """Grade = how many cuts the geometric-mean rank exp(-S) is within."""
    return [sum(math.exp(-s) <= c + 1e-9 for c in cuts) for s in fused]


def closest_to_mean(samples: Sequence[int]) -> int | None:
    if not samples:
        return None
    mean = sum(samples) / len(samples)
    return min(samples, key=lambda s: abs(s - mean))  # min keeps the first on a tie


def window_starts(n: int, window: int, stride: int) -> list[int]:
    """Back-to-front window starts covering 0..n-1 (the last window always starts at 0)."""
    if n <= window:
        return [0]
    starts = list(range(n - window, -1, -stride))
    if starts[-1] != 0:
        starts.append(0)
    return starts


def _pointwise(examples, sizes, client: TeacherClient, cfg) -> list[list[int | None]]:
    jobs, requests = [], []
    for e, (ex, n) in enumerate(zip(examples, sizes)):
        for d in range(n):
            messages = prompts.pointwise_messages(ex["query"], ex["doc_texts"][d], cfg.max_chars)
            for k in range(cfg.pointwise_samples):
                jobs.append((e, d))
                requests.append(Request(messages, cfg.pointwise_max_new_tokens, cfg.pointwise_temperature, sample=k,
                                    prefill=prompts.POINTWISE_PREFILL))
    outcomes = client.ask(requests, "pointwise", prompts.read_grade)
    samples: dict[tuple[int, int], list[int]] = {}
    for job, outcome in zip(jobs, outcomes):
        if outcome.status == "ok":
            samples.setdefault(job, []).append(outcome.value)
    return [[closest_to_mean(samples.get((e, d), [])) for d in range(n)] for e, n in enumerate(sizes)]


def _listwise(examples, sizes, client: TeacherClient, cfg) -> tuple[list[list[int] | None], int]:
    orders = [list(range(n)) for n in sizes]
    plans = [window_starts(n, cfg.listwise_window, cfg.listwise_stride) for n in sizes]
    answered = [0] * len(examples)
    budget = cfg.listwise_max_new_tokens or 6 * cfg.listwise_window + 16
    failed_windows = 0
    for step in range(max(len(p) for p in plans) if plans else 0):
        active = [e for e, plan in enumerate(plans) if step < len(plan) and sizes[e] > 1]
        requests, checks, slices = [], [], []
        for e in active:
            start = plans[e][step]
            members = orders[e][start : start + cfg.listwise_window]
            passages = [examples[e]["doc_texts"][i] for i in members]
            messages = prompts.listwise_messages(examples[e]["query"], passages, cfg.max_chars)
            requests.append(Request(messages, budget, prefill=prompts.LISTWISE_PREFILL))
            checks.append(lambda text, m=len(members): prompts.read_permutation(text, m))
            slices.append((e, start, members))
        for (e, start, members), outcome in zip(slices, client.ask(requests, "listwise", checks)):
            if outcome.status != "ok":
                failed_windows += 1
                continue
            answered[e] += 1
            given = outcome.value
            rest = [p for p in range(len(members)) if p not in set(given)]
            orders[e][start : start + len(members)] = [members[p] for p in given + rest]
    return [o if answered[e] else None for e, o in enumerate(orders)], failed_windows


def _scaled_gold(grade: int, max_gold: int, top: int) -> int:
    return 0 if grade <= 0 else max(1, round(grade * top / max(1, max_gold)))


def max_grade(qrels: dict[str, dict[str, int]]) -> int:
    """The highest judged grade of a source (1 when it has none): what `merge` rescales to the top grade."""
    return max((r for judged in qrels.values() for r in judged.values()), default=1)


def final_labels(target: str, doc_ids: Sequence[str], gold: Sequence[int], teacher: Sequence[int | None],
                 judged: dict[str, int], max_gold: int, top: int) -> list[int]:
    """`labels` per LabelsConfig.target: gold = the pool's qrels grades; teacher = the teacher's grades (None -> 0);
    merge = a judged document keeps its qrels grade rescaled to 0..top (a positive stays >= 1), the others get the
    teacher's grade."""
    if target == "gold":
        return list(gold)
    if target == "teacher":
        return [t or 0 for t in teacher]
    return [_scaled_gold(judged[d], max_gold, top) if d in judged else (t or 0) for d, t in zip(doc_ids, teacher)]


def label_pools(examples: list[dict], qrels: dict[str, dict[str, int]], client: TeacherClient, cfg) -> dict:
    """Add teacher columns to each example and set `labels` per `cfg.target`; returns label statistics.

    Columns added: gold_labels, pointwise_scores (kept 0-10 grade or None), listwise_ranks (Ll or None),
    fused_scores (S or None), teacher_labels (graded, None where the teacher gave nothing usable)."""
    sizes = [min(len(ex["doc_ids"]), cfg.max_docs) if cfg.max_docs else len(ex["doc_ids"]) for ex in examples]
    points = _pointwise(examples, sizes, client, cfg) if cfg.pointwise else [None] * len(examples)
    orders, failed_windows = _listwise(examples, sizes, client, cfg) if cfg.listwise else ([None] * len(examples), 0)
    top = len(cfg.rank_cuts)
    max_gold = max_grade(qrels)
    no_teacher = 0
    for ex, n, point, order in zip(examples, sizes, points, orders):
        total = len(ex["doc_ids"])
        graded = point is not None and any(p is not None for p in point)
        lp = fractional_ranks(point) if graded else None
        ll = order_ranks(order, n) if order is not None else None
        fused = fuse(lp, ll, cfg.beta)
        teacher: list[int | None] = [None] * total
        if fused is None:
            no_teacher += 1
        else:
            for d, grade in enumerate(grades_from_fused(fused, cfg.rank_cuts)):
                below = cfg.pointwise_floor and point is not None and (point[d] or 0) < cfg.pointwise_floor
                teacher[d] = 0 if below else grade
            teacher[n:] = [0] * (total - n)  # beyond max_docs: not shown to the teacher, counted irrelevant
        gold = list(ex["labels"])
        labels = gold if fused is None else final_labels(cfg.target, ex["doc_ids"], gold, teacher,
                                                         qrels.get(ex["qid"], {}), max_gold, top)
        pad = [None] * (total - n)
        ex.update(gold_labels=gold, teacher_labels=teacher, labels=labels,
                  pointwise_scores=(list(point) + pad) if point is not None else [None] * total,
                  listwise_ranks=(list(ll) + pad) if ll is not None else [None] * total,
                  fused_scores=(list(fused) + pad) if fused is not None else [None] * total)
    teacher_hist = Counter(t for ex in examples for t in ex["teacher_labels"] if t is not None)
    return {
        "pools_labeled": len(examples) - no_teacher,
        "pools_without_teacher_labels": no_teacher,
        "docs_shown_to_teacher": sum(sizes),
        "docs_without_pointwise_grade": sum(p is None for point in points if point is not None for p in point),
        "listwise_windows_failed": failed_windows,
        "teacher_label_distribution": {str(k): v for k, v in sorted(teacher_hist.items())},
        "target": cfg.target,
    }
