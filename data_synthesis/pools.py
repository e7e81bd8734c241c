"""Candidate pools: BM25 (bm25s), dense (sentence-transformers) and hybrid first stages, and GroupRank-style pools
(the top-k plus a seeded sample of deeper ranks) emitted as ranking examples (data_synthesis.schema).

Hybrid scoring follows the usual list fusion: each retriever returns its top `fusion_depth`, scores are min-max
normalised within that list, and a document missing from one list gets 0 for that component (it scored at or below
that list's minimum). Corpus embeddings are cached on disk, keyed by encoder, sequence length and corpus content.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

Hits = list[tuple[str, float]]  # (doc id, score), best first


class BM25Index:
    def __init__(self, corpus: dict[str, str], k1: float = 0.9, b: float = 0.4, stopwords: str = "en",
                 token_pattern: str = r"(?u)\b\w+\b"):
        import bm25s

        self._bm25s = bm25s
        self.doc_ids = list(corpus)
        self._tok = {"stopwords": stopwords or None, "token_pattern": token_pattern, "show_progress": False}
        self.index = bm25s.BM25(k1=k1, b=b)
        self.index.index(bm25s.tokenize([corpus[d] for d in self.doc_ids], **self._tok), show_progress=False)

    def search(self, queries: Sequence[str], k: int) -> list[Hits]:
        k = min(k, len(self.doc_ids))
        tokens = self._bm25s.tokenize(list(queries), return_ids=False, **self._tok)
        out = []
        for toks in tokens:
            if not toks:  # nothing left after stopwords: BM25 has no opinion
                out.append([])
                continue
            idx, scores = self.index.retrieve([toks], k=k, show_progress=False, n_threads=1)
            out.append([(self.doc_ids[int(i)], float(s)) for i, s in zip(idx[0], scores[0]) if s > 0])
        return out


def _corpus_key(encoder: str, max_seq_length: int, doc_ids: list[str], texts: list[str]) -> str:
    h = hashlib.sha256(f"{encoder}\0{max_seq_length}".encode())
    for d, t in zip(doc_ids, texts):
        h.update(d.encode() + b"\0" + t.encode() + b"\1")
    return h.hexdigest()[:24]


def load_encoder(path: str, max_seq_length: int):
    """A sentence-transformers encoder on CPU from a resolved model path (rl.models.resolve_model)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu")
    model.max_seq_length = max_seq_length
    return model


def encode_texts(model, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text."""
    return np.asarray(model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False), dtype=np.float32)


class DenseIndex:
    """Cosine similarity over normalised sentence-transformers embeddings (exact search; fine up to ~1M docs)."""

    def __init__(self, corpus: dict[str, str], encoder: str = "minilm", batch_size: int = 64,
                 max_seq_length: int = 256, cache_dir: str | Path | None = None):
        from rerank_rl.rl.models import resolve_model

        path = resolve_model(encoder)
        self.model = load_encoder(path, max_seq_length)
        self.batch_size = batch_size
        self.doc_ids = list(corpus)
        texts = [corpus[d] for d in self.doc_ids]
        cached = None
        if cache_dir:
            cached = Path(cache_dir) / "embeddings" / f"{_corpus_key(path, max_seq_length, self.doc_ids, texts)}.npy"
        if cached is not None and cached.exists():
            self.embeddings = np.load(cached)
        else:
            self.embeddings = self.encode(texts)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_suffix(".tmp.npy")
                np.save(tmp, self.embeddings)
                tmp.rename(cached)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return encode_texts(self.model, texts, self.batch_size)

    def search(self, queries: Sequence[str], k: int) -> list[Hits]:
        k = min(k, len(self.doc_ids))
        sims = self.encode(queries) @ self.embeddings.T
        out = []
        for row in sims:
            top = np.argpartition(-row, k - 1)[:k]
            top = top[np.argsort(-row[top], kind="stable")]
            out.append([(self.doc_ids[int(i)], float(row[i])) for i in top])
        return out


def _minmax(hits: Hits) -> dict[str, float]:
    if not hits:
        return {}
    scores = [s for _, s in hits]
    low, span = min(scores), max(scores) - min(scores)
    if span == 0:  # one hit, or all tied: they all sit at the list's top
        return {d: 1.0 for d, _ in hits}
    return {d: (s - low) / span for d, s in hits}


def fuse_hits(bm25: Hits, dense: Hits, bm25_weight: float = 0.5) -> Hits:
    """w * minmax(BM25) + (1 - w) * minmax(dense) over the union of both lists; a missing component counts 0."""
    nb, nd = _minmax(bm25), _minmax(dense)
    fused = {d: bm25_weight * nb.get(d, 0.0) + (1 - bm25_weight) * nd.get(d, 0.0) for d in {**nb, **nd}}
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


class HybridIndex:
    def __init__(self, bm25: BM25Index, dense: DenseIndex, bm25_weight: float = 0.5, fusion_depth: int = 1000):
        self.bm25, self.dense, self.weight, self.depth = bm25, dense, bm25_weight, fusion_depth
        self.doc_ids = bm25.doc_ids

    def search(self, queries: Sequence[str], k: int) -> list[Hits]:
        depth = max(k, self.depth)
        pairs = zip(self.bm25.search(queries, depth), self.dense.search(queries, depth))
        return [fuse_hits(b, d, self.weight)[:k] for b, d in pairs]


def build_retriever(cfg, corpus: dict[str, str], cache_dir: str | Path | None = None):
    """The first stage named by a PoolsConfig."""
    bm25 = dense = None
    if cfg.retriever in ("bm25", "hybrid"):
        bm25 = BM25Index(corpus, cfg.bm25_k1, cfg.bm25_b, cfg.stopwords, cfg.token_pattern)
    if cfg.retriever in ("dense", "hybrid"):
        dense = DenseIndex(corpus, cfg.encoder, cfg.encoder_batch_size, cfg.max_seq_length, cache_dir)
    if cfg.retriever == "bm25":
        return bm25
    if cfg.retriever == "dense":
        return dense
    return HybridIndex(bm25, dense, cfg.bm25_weight, cfg.fusion_depth)


def sample_pool(num_ranked: int, top_k: int, sample: int, sample_from: int, sample_to: int,
                rng: random.Random) -> list[int]:
    """0-based positions of a pool in rank order: ranks 1..top_k, plus `sample` positions drawn without
    replacement from ranks sample_from..sample_to (1-based, inclusive; clipped to what was retrieved and never
    overlapping the top-k). Fewer are drawn when the range is short."""
    head = list(range(min(top_k, num_ranked)))
    lo, hi = max(sample_from, top_k + 1), min(sample_to, num_ranked)
    deep = list(range(lo - 1, hi)) if hi >= lo else []
    return head + sorted(rng.sample(deep, min(sample, len(deep))))


def pool_depth(cfg) -> int:
    return max(cfg.top_k, cfg.sample_to if cfg.sample else cfg.top_k)


def build_pools(retriever, queries: dict[str, str], qrels: dict[str, dict[str, int]], corpus: dict[str, str],
                cfg, seed: int = 0, hits: dict[str, Hits] | None = None) -> list[dict]:
    """One ranking example per query: pool documents in first-stage order with their scores and gold labels
    (0 for unjudged). Each query's sample uses its own seeded generator, so adding queries never changes others."""
    qids = list(queries)
    if hits is None:
        found = retriever.search([queries[q] for q in qids], pool_depth(cfg))
        hits = dict(zip(qids, found))
    examples = []
    for qid in qids:
        ranked = hits[qid]
        rng = random.Random(f"{seed}:{qid}")
        chosen = [ranked[i] for i in sample_pool(len(ranked), cfg.top_k, cfg.sample, cfg.sample_from,
                                                  cfg.sample_to, rng)]
        judged = qrels.get(qid, {})
        if cfg.include_positives:
            chosen = _with_positives(chosen, ranked, judged, cfg.top_k, corpus)
        ids = [d for d, _ in chosen]
        examples.append({
            "qid": qid, "query": queries[qid], "doc_ids": ids, "doc_texts": [corpus[d] for d in ids],
            "first_stage_scores": [float(s) for _, s in chosen],
            "labels": [max(0, int(judged.get(d, 0))) for d in ids],
        })
    return examples


def _with_positives(chosen: Hits, ranked: Hits, judged: dict[str, int], top_k: int, corpus) -> Hits:
    """Swap judged positives the pool missed in for the deepest sampled documents (the top-k stays intact; a
    pool with nothing sampled grows instead)."""
    have = {d for d, _ in chosen}
    missing = [d for d, r in sorted(judged.items()) if r > 0 and d not in have and d in corpus]
    if not missing:
        return chosen
    removable = [i for i in range(len(chosen) - 1, top_k - 1, -1) if judged.get(chosen[i][0], 0) <= 0]
    drop = set(removable[: len(missing)])
    score_of = dict(ranked)
    floor = min((s for _, s in chosen), default=0.0)
    # a positive the retriever never returned sits just below everything it did return
    added = [(d, score_of.get(d, floor - 1e-6)) for d in missing]
    kept = [hit for i, hit in enumerate(chosen) if i not in drop]
    return sorted(kept + added, key=lambda kv: -kv[1])
