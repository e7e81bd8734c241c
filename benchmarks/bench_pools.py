"""First-stage quality and speed of the synthesis pools on SciFact's 300 BEIR test claims (5,183 abstracts).

Prints Recall@100 / nDCG@10 for BM25, dense (MiniLM) and hybrid (0.5*minmax BM25 + 0.5*minmax dense), the share of
judged positives that land in GroupRank-style pools (top-10 + 40 sampled from ranks 11-200), and timings.

    .venv/bin/python benchmarks/bench_pools.py [--data ../shared/data/beir_scifact] [--json]

Corpus embeddings are cached in <model cache>/synthesis/embeddings, so only the first run pays for encoding.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rerank_rl.data_synthesis.config import PoolsConfig, TeacherConfig
from rerank_rl.data_synthesis.pools import BM25Index, DenseIndex, HybridIndex, build_pools
from rerank_rl.data_synthesis.scifact import read_scifact_corpus, read_scifact_test
from rerank_rl.data_synthesis.teachers import synthesis_cache_dir
from rerank_rl.rewards.metrics import evaluate_run

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "beir_scifact"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    corpus = read_scifact_corpus(args.data)
    queries, qrels = read_scifact_test(args.data)
    qids = list(queries)
    texts = [queries[q] for q in qids]
    cfg = PoolsConfig()
    results, timings = {}, {}

    start = time.time()
    bm25 = BM25Index(corpus, cfg.bm25_k1, cfg.bm25_b, cfg.stopwords, cfg.token_pattern)
    timings["bm25_index_s"] = time.time() - start
    start = time.time()
    dense = DenseIndex(corpus, cfg.encoder, cfg.encoder_batch_size, cfg.max_seq_length,
                       synthesis_cache_dir(TeacherConfig()))
    timings["dense_index_s (cached after the first run)"] = time.time() - start
    hybrid = HybridIndex(bm25, dense, cfg.bm25_weight, cfg.fusion_depth)

    runs = {}
    for name, index in (("bm25", bm25), ("dense", dense), ("hybrid", hybrid)):
        start = time.time()
        hits = index.search(texts, 200)
        timings[f"{name}_search_300_queries_s"] = time.time() - start
        runs[name] = dict(zip(qids, hits))
        ranked = {q: [d for d, _ in h] for q, h in runs[name].items()}
        metrics = evaluate_run(ranked, qrels, ["recall@100", "recall@200", "ndcg@10"])
        results[name] = {k: round(v, 4) for k, v in metrics.items() if k != "queries"}

    for name in ("bm25", "hybrid"):
        pools = build_pools(None, queries, qrels, corpus, cfg, seed=0, hits=runs[name])
        found = sum(len({d for d, r in qrels[q].items() if r > 0} & set(p["doc_ids"])) for q, p in zip(qids, pools))
        total = sum(sum(r > 0 for r in qrels[q].values()) for q in qids)
        results[name]["positives_in_grouprank_pools"] = round(found / total, 4)

    out = {"data": "SciFact BEIR test, 300 claims, 5183 docs", "pools": "top-10 + 40 sampled from ranks 11-200",
           "results": results, "timings": {k: round(v, 2) for k, v in timings.items()}}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['data']}; pools = {out['pools']}")
    print(f"{'retriever':<8} {'R@100':>7} {'R@200':>7} {'nDCG@10':>8} {'pool recall':>12}")
    for name, m in results.items():
        pool = m.get("positives_in_grouprank_pools")
        print(f"{name:<8} {m['recall@100']:>7.4f} {m['recall@200']:>7.4f} {m['ndcg@10']:>8.4f} "
              f"{'' if pool is None else f'{pool:.4f}':>12}")
    for key, value in out["timings"].items():
        print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
