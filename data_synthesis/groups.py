"""Multi-scale group sampling: cut candidate pools into training groups of varying size (GroupRank samples
sub-lists of 5..20 from a ~50-document pool), so the model learns to score groups of any size it will meet.

What a group holds decides what training can teach. Pools are mostly irrelevant passages (two thirds of the DL21
top-30 are grade 0), so plain random subsets teach the majority answer. Here each group is built around an
*anchor*, a passage graded above the pool's lowest grade, chosen uniformly among those (not always the best: then
a grade-1 passage is sometimes the best of its group, and "exactly one top score per group" is not a rule the
model can learn instead of reading). A share of groups (`1 - mixed_fraction`) is drawn without an anchor, so the
model also meets groups with nothing relevant in them, as evaluation windows do.

Groups of one passage (single-passage windows) cannot mix grades inside themselves, so a query's one-passage groups
mix them together, stratified by grade: one passage of each grade the pool has, best grade first, then the next
round, without repeats. Every query's prompts then hold its adjacent-grade pairs (the hard negatives: a passage
that repeats the query's words beside the one that answers it), which is what the ranking term across a query's
prompts learns from; uniform draws left them out of about half the queries.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

# Per-passage columns carried from a pool into its groups when present (teacher_scores: synthesis teachers).
ALIGNED = ("doc_ids", "doc_texts", "first_stage_scores", "labels", "teacher_scores")


def sample_groups(examples: Sequence[dict], sizes: Sequence[int], groups_per_query: int, seed: int = 0,
                  mixed_fraction: float = 1.0) -> list[dict]:
    """Groups as ranking examples. Each group is a shuffled subset of one query's candidates; with probability
    `mixed_fraction` it holds an anchor (a candidate above the pool's lowest grade, when the pool has one).
    The group keeps its source query in `source_qid` and gets a unique `qid` (`<qid>#<k>`)."""
    if not 0.0 <= mixed_fraction <= 1.0:
        raise ValueError(f"mixed_fraction must be within [0, 1], got {mixed_fraction}")
    rng = random.Random(seed)
    groups = []
    for ex in examples:
        n = len(ex["doc_ids"])
        if n < 2:
            continue
        lowest = min(ex["labels"])
        above = [i for i in range(n) if ex["labels"][i] > lowest]
        singles = None  # this query's one-passage draws, made at its first one-passage group
        for k in range(groups_per_query):
            size = min(rng.choice(list(sizes)), n)
            if size == 1:
                if singles is None:
                    singles = iter(by_grade_rounds(ex["labels"], rng) if rng.random() < mixed_fraction
                                   else rng.sample(range(n), n))
                members = [next(singles, None)]
                if members[0] is None:  # more one-passage groups than passages: start another round
                    singles = iter(by_grade_rounds(ex["labels"], rng))
                    members = [next(singles)]
            elif above and rng.random() < mixed_fraction:
                anchor = rng.choice(above)
                members = rng.sample([i for i in range(n) if i != anchor], size - 1) + [anchor]
                rng.shuffle(members)
            else:
                members = rng.sample(range(n), size)
            group = {"qid": f"{ex['qid']}#{k}", "source_qid": ex["qid"], "query": ex["query"]}
            for key in ALIGNED:
                if key in ex and ex[key] is not None:
                    group[key] = [ex[key][i] for i in members]
            group["first_stage_scores"] = [float(s) for s in group["first_stage_scores"]]
            group["labels"] = [int(g) for g in group["labels"]]
            groups.append(group)
    return groups


def by_grade_rounds(labels: Sequence[int], rng: random.Random) -> list[int]:
    """Passage indices in rounds of one per grade, best grade first within a round, shuffled within each grade."""
    pools: dict[int, list[int]] = {}
    for i, grade in enumerate(labels):
        pools.setdefault(grade, []).append(i)
    for members in pools.values():
        rng.shuffle(members)
    order, grades = [], sorted(pools, reverse=True)
    for round_ in range(max(len(m) for m in pools.values())):
        order += [pools[g][round_] for g in grades if round_ < len(pools[g])]
    return order


def grade_mix(groups: Sequence[dict]) -> dict:
    """How grades are spread over sampled groups: passages per grade, and the share of groups whose passages
    all share one grade (those teach no ordering)."""
    counts: dict[str, int] = {}
    flat = 0
    for g in groups:
        for label in g["labels"]:
            counts[str(label)] = counts.get(str(label), 0) + 1
        flat += len(set(g["labels"])) == 1
    return {"passages_per_grade": dict(sorted(counts.items())), "single_grade_groups": flat,
            "groups": len(groups)}
