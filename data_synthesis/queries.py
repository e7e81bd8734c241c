"""DUQGen-style synthetic queries: diverse documents in, filtered queries out.

1. k-means over the (normalised) corpus embeddings;
2. the query budget is split over clusters in proportion to their size (largest remainder), and documents are
   drawn uniformly inside each cluster, so every region of the corpus gets queries;
3. the teacher writes one query per document (a few judged (document, query) pairs of the source shown first);
4. a query is kept when its source document ranks in the pool retriever's top `keep_top_k` for it: a query the
   first stage cannot lead back to its document is too vague, or not about it.
Kept queries come back with pseudo-judgments {source document: 1}.
"""

from __future__ import annotations

import random

import numpy as np

from rerank_rl.data_synthesis import prompts
from rerank_rl.data_synthesis.teachers import Request, TeacherClient


def allocate(sizes: list[int], total: int) -> list[int]:
    """Split `total` over clusters in proportion to `sizes` (largest remainder), never above a cluster's size."""
    total = min(total, sum(sizes))
    if total <= 0 or not sizes:
        return [0] * len(sizes)
    exact = [total * s / sum(sizes) for s in sizes]
    counts = [min(int(x), s) for x, s in zip(exact, sizes)]
    order = sorted(range(len(sizes)), key=lambda c: (-(exact[c] - int(exact[c])), c))
    while sum(counts) < total:
        for c in order:
            if sum(counts) < total and counts[c] < sizes[c]:
                counts[c] += 1
    return counts


def sample_across_clusters(embeddings: np.ndarray, clusters: int, total: int, seed: int) -> list[tuple[int, int]]:
    """(document index, cluster) pairs drawn across k-means clusters in proportion to cluster size."""
    from sklearn.cluster import KMeans

    k = max(1, min(clusters, len(embeddings)))
    assign = KMeans(n_clusters=k, random_state=seed, n_init=3).fit_predict(embeddings)
    members = [np.flatnonzero(assign == c).tolist() for c in range(k)]
    rng = random.Random(seed)
    picked = []
    for c, n in enumerate(allocate([len(m) for m in members], total)):
        picked += [(i, c) for i in sorted(rng.sample(members[c], n))]
    return picked


def generate_queries(corpus: dict[str, str], doc_ids: list[str], embeddings: np.ndarray, retriever,
                     examples: list[tuple[str, str]], client: TeacherClient, cfg, seed: int = 0,
                     qid_prefix: str = ""):
    """Returns (queries, qrels, rows, stats): kept synthetic queries with pseudo-qrels, one row per attempt.
    Query ids are `<qid_prefix>syn<seed>-<attempt>`."""
    picked = sample_across_clusters(embeddings, cfg.clusters, cfg.num_queries, seed)
    rng = random.Random(seed)
    shots = rng.sample(examples, min(cfg.few_shot, len(examples)))
    requests = [Request(prompts.query_messages(corpus[doc_ids[i]], shots, cfg.max_chars), cfg.max_new_tokens,
                        cfg.temperature, prefill=prompts.QUERY_PREFILL) for i, _ in picked]
    outcomes = client.ask(requests, "query", prompts.read_query)
    good = [j for j, o in enumerate(outcomes) if o.status == "ok"]
    found = retriever.search([outcomes[j].value for j in good], cfg.keep_top_k) if good else []
    rank_of = {}
    for j, hits in zip(good, found):
        source = doc_ids[picked[j][0]]
        rank_of[j] = next((r for r, (d, _) in enumerate(hits, start=1) if d == source), -1)
    queries, qrels, rows = {}, {}, []
    version = prompts.PROMPT_VERSION
    for j, ((i, cluster), outcome) in enumerate(zip(picked, outcomes)):
        kept = rank_of.get(j, -1) > 0
        qid = f"{qid_prefix}syn{seed}-{j}"
        if kept:
            queries[qid] = outcome.value
            qrels[qid] = {doc_ids[i]: 1}
        rows.append({"qid": qid, "query": outcome.value or "", "raw": outcome.text or "", "status": outcome.status,
                     "source_doc_id": doc_ids[i], "cluster": int(cluster), "source_rank": int(rank_of.get(j, -1)),
                     "kept": kept, "teacher": client.identity, "prompt_version": version, "seed": seed})
    stats = {
        "documents_sampled": len(picked),
        "clusters": len({c for _, c in picked}),
        "generated": len(good),
        "unparsed_or_failed": len(picked) - len(good),
        "kept": len(queries),
        "filtered_out": len(good) - len(queries),
        "keep_rate": len(queries) / len(picked) if picked else 0.0,
        "keep_top_k": cfg.keep_top_k,
    }
    return queries, qrels, rows, stats
