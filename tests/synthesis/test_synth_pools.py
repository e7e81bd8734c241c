"""Candidate pools: BM25 on SciFact, hybrid fusion by hand, pool sampling, pools as ranking examples."""

from __future__ import annotations

import random

import pytest

from rerank_rl.data_synthesis.config import PoolsConfig
from rerank_rl.data_synthesis.pools import BM25Index, DenseIndex, HybridIndex, build_pools, fuse_hits, sample_pool
from rerank_rl.data_synthesis.schema import ranking_dataset
from rerank_rl.rewards.metrics import evaluate_run


@pytest.mark.data
def test_bm25_recall_at_100_on_scifact_test(shared_data):
    from rerank_rl.data_synthesis.scifact import read_scifact_corpus, read_scifact_test

    folder = shared_data / "beir_scifact"
    corpus = read_scifact_corpus(folder)
    queries, qrels = read_scifact_test(folder)
    assert len(corpus) == 5183 and len(queries) == 300
    cfg = PoolsConfig()
    index = BM25Index(corpus, cfg.bm25_k1, cfg.bm25_b, cfg.stopwords, cfg.token_pattern)
    qids = list(queries)
    hits = index.search([queries[q] for q in qids], 100)
    run = {q: [d for d, _ in h] for q, h in zip(qids, hits)}
    metrics = evaluate_run(run, qrels, ["recall@100", "ndcg@10"])
    # SOURCE.txt: Anserini-style BM25 (k1 0.9, b 0.4) gives R@100 0.886, nDCG@10 0.660 on these claims
    assert metrics["recall@100"] == pytest.approx(0.886, abs=0.01)
    assert metrics["ndcg@10"] == pytest.approx(0.66, abs=0.015)


def test_sample_pool_takes_top_k_then_seeded_deep_sample():
    positions = sample_pool(300, top_k=10, sample=40, sample_from=11, sample_to=200, rng=random.Random(1))
    assert positions[:10] == list(range(10))
    deep = positions[10:]
    assert len(deep) == 40 and len(set(deep)) == 40 and deep == sorted(deep)
    assert all(10 <= p <= 199 for p in deep)  # 0-based positions of ranks 11..200
    again = sample_pool(300, 10, 40, 11, 200, random.Random(1))
    assert positions == again
    assert positions != sample_pool(300, 10, 40, 11, 200, random.Random(2))


def test_sample_pool_clips_to_what_was_retrieved_and_never_overlaps_top_k():
    assert sample_pool(30, 10, 40, 11, 200, random.Random(0)) == list(range(30))  # short list: all of it
    assert sample_pool(5, 10, 40, 11, 200, random.Random(0)) == list(range(5))
    overlap = sample_pool(100, 10, 5, 3, 20, random.Random(0))  # range starting inside the top-k
    assert overlap[:10] == list(range(10)) and all(10 <= p < 20 for p in overlap[10:])


def test_hybrid_fusion_by_hand():
    bm25 = [("a", 10.0), ("b", 6.0), ("c", 2.0)]  # minmax: a 1, b 0.5, c 0
    dense = [("b", 0.9), ("d", 0.5), ("a", 0.1)]  # minmax: b 1, d 0.5, a 0
    fused = dict(fuse_hits(bm25, dense, 0.5))
    assert fused == pytest.approx({"a": 0.5, "b": 0.75, "c": 0.0, "d": 0.25})
    assert [d for d, _ in fuse_hits(bm25, dense, 0.5)] == ["b", "a", "d", "c"]
    assert dict(fuse_hits(bm25, dense, 1.0)) == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0, "d": 0.0})


class _Fixed:
    """A retriever returning a fixed ranking for every query."""

    def __init__(self, ranked):
        self.ranked = ranked

    def search(self, queries, k):
        return [self.ranked[:k] for _ in queries]


def test_build_pools_gives_schema_examples_with_gold_labels():
    corpus = {f"d{i}": f"text {i}" for i in range(300)}
    ranked = [(f"d{i}", 300.0 - i) for i in range(300)]
    cfg = PoolsConfig(retriever="bm25")
    qrels = {"q1": {"d3": 2, "d150": 1, "d299": 1, "d5": 0}}
    pools = build_pools(_Fixed(ranked), {"q1": "one", "q2": "two"}, qrels, corpus, cfg, seed=7)
    ds = ranking_dataset(pools)  # validates the schema
    assert len(ds) == 2
    ex = pools[0]
    assert len(ex["doc_ids"]) == 50 and ex["doc_ids"][:10] == [f"d{i}" for i in range(10)]
    assert ex["first_stage_scores"] == sorted(ex["first_stage_scores"], reverse=True)
    assert ex["labels"][3] == 2 and ex["labels"][5] == 0
    assert "d299" not in ex["doc_ids"]  # rank 300 is beyond sample_to
    # queries draw independent samples (seeded per query id), so adding a query leaves the others unchanged
    alone = build_pools(_Fixed(ranked), {"q1": "one"}, qrels, corpus, cfg, seed=7)
    assert alone[0]["doc_ids"] == ex["doc_ids"]


def test_include_positives_swaps_out_deepest_sampled_documents():
    corpus = {f"d{i}": f"text {i}" for i in range(300)}
    ranked = [(f"d{i}", 300.0 - i) for i in range(250)]  # d250..d299 never retrieved
    cfg = PoolsConfig(retriever="bm25", top_k=5, sample=5, sample_from=6, sample_to=50, include_positives=True)
    qrels = {"q": {"d120": 1, "d280": 1}}
    ex = build_pools(_Fixed(ranked), {"q": "x"}, qrels, corpus, cfg, seed=0)[0]
    assert len(ex["doc_ids"]) == 10 and ex["doc_ids"][:5] == [f"d{i}" for i in range(5)]
    assert {"d120", "d280"} <= set(ex["doc_ids"])
    assert ex["doc_ids"][-1] == "d280" and ex["labels"][-1] == 1  # never retrieved: sorts last
    assert ex["first_stage_scores"] == sorted(ex["first_stage_scores"], reverse=True)


def test_dense_and_hybrid_indexes_on_a_toy_corpus(tmp_path):
    corpus = {
        "cat": "The cat sat on the warm mat and purred.",
        "dog": "A dog barked at the mailman all morning.",
        "rocket": "The rocket engine burns liquid hydrogen and oxygen.",
        "bread": "Sourdough bread rises slowly thanks to wild yeast.",
    }
    dense = DenseIndex(corpus, "minilm", cache_dir=tmp_path)
    assert dense.embeddings.shape == (4, 384)
    assert dense.search(["feline resting on a rug"], 1)[0][0][0] == "cat"
    assert list(tmp_path.glob("embeddings/*.npy")), "corpus embeddings are cached"
    again = DenseIndex(corpus, "minilm", cache_dir=tmp_path)
    assert (again.embeddings == dense.embeddings).all()
    hybrid = HybridIndex(BM25Index(corpus), dense, 0.5, fusion_depth=4)
    top = hybrid.search(["hydrogen rocket propulsion"], 4)[0]
    assert top[0][0] == "rocket" and len(top) == 4 and top[0][1] == pytest.approx(1.0)
