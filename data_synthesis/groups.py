"""Multi-scale group sampling: cut candidate pools into training groups of varying size (GroupRank samples
sub-lists of 5..20 from a ~50-document pool), so the model learns to score groups of any size it will meet."""

from __future__ import annotations

import random
from collections.abc import Sequence


def sample_groups(examples: Sequence[dict], sizes: Sequence[int], groups_per_query: int, seed: int = 0,
                  require_relevant: bool = True) -> list[dict]:
    """Groups as ranking examples. Each group is a shuffled subset of one query's candidates; with
    `require_relevant` it holds the query's best-graded candidate, so every group has something to find.
    The group keeps its source query in `source_qid` and gets a unique `qid` (`<qid>#<k>`)."""
    rng = random.Random(seed)
    groups = []
    for ex in examples:
        n = len(ex["doc_ids"])
        if n < 2:
            continue
        best = max(range(n), key=lambda i: ex["labels"][i])
        for k in range(groups_per_query):
            size = min(rng.choice(list(sizes)), n)
            pool = [i for i in range(n) if not (require_relevant and i == best)]
            members = rng.sample(pool, size - 1 if require_relevant else size)
            if require_relevant:
                members.append(best)
            rng.shuffle(members)
            groups.append({
                "qid": f"{ex['qid']}#{k}",
                "source_qid": ex["qid"],
                "query": ex["query"],
                "doc_ids": [ex["doc_ids"][i] for i in members],
                "doc_texts": [ex["doc_texts"][i] for i in members],
                "first_stage_scores": [float(ex["first_stage_scores"][i]) for i in members],
                "labels": [int(ex["labels"][i]) for i in members],
            })
    return groups
