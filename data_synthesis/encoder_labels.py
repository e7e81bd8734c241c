"""The encoder teacher (`labels.teacher: encoder`): labels candidate pools without an LLM, from a bi-encoder and
the first stage, so that unjudged pools (TREC DL22, synthetic queries) get graded labels and 0-10 scores.

Score. In a query's pool, c(d) = cosine(query, passage) under the sentence-transformers encoder `labels.encoder.model`
and f(d) = the pool's first-stage score; each is z-scored within the pool (population deviation; a constant list
gives zeros) and fused:  s(d) = w * z(c)(d) + (1 - w) * z(f)(d),  w = labels.encoder.weight (default 0.7).
benchmarks/bench_teacher.py prints what each part scores on TREC DL19 / DL21.

Teacher grades. The 1-based rank r(d) of s(d) in the pool gives the grade as for the LLM teacher: the number of
`labels.rank_cuts` c with r(d) <= c (cuts [2, 5, 15]: ranks 1-2 get 3, 3-5 get 2, 6-15 get 1, deeper 0). A pool
without judgments thus always has top grades, which reward functions reading `labels` need.

Qrels. `labels.target` combines them exactly as for the LLM teacher (labels.final_labels): `merge` (default) keeps
a judged document's qrels grade, rescaled to 0..len(rank_cuts) against the source's highest grade (SciFact's 1
becomes 3, DL's 0-3 stay), and gives every unjudged document its teacher grade; `gold` keeps the qrels only;
`teacher` ignores them. A judged grade always wins, a judged 0 included.

teacher_scores (0-10, float). A rendering of the final `labels`, ordered inside each grade by s(d): 0..10 is cut
into top + 1 equal bands (top = len(rank_cuts), or the source's highest qrels grade for target `gold`), grade g
owning (10 g/(top+1), 10 (g+1)/(top+1)]. The k documents of grade g, best fused score first, take the band's top and
then steps of band/k: the j-th (0-based) gets lo + band * (k - j) / k. So a higher grade always scores higher, the
best document of a pool holding the top grade scores 10, and an unjudged 100-document pool reads 10, 8.75 | 7.5,
6.7, 5.8 | 5.0 ... 2.75 | 2.5 ... 0.03: spread over 0-10 but skewed like real relevance, not uniform in rank.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rerank_rl.data_synthesis.cache import EmbeddingCache, request_key
from rerank_rl.data_synthesis.labels import final_labels, fractional_ranks, max_grade
from rerank_rl.rl.errors import UserError

_ENCODE_CHUNK = 1024  # texts encoded between cache writes: a killed run keeps what it paid for


def zscores(values: Sequence[float]) -> np.ndarray:
    """(x - mean) / std over the list (population std); all zeros when the values do not vary."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return x
    std = x.std()
    return (x - x.mean()) / std if std > 1e-12 else np.zeros_like(x)


def fuse_scores(encoder: Sequence[float], first_stage: Sequence[float], weight: float) -> np.ndarray:
    """weight * z(encoder) + (1 - weight) * z(first_stage), z-scored within the list."""
    if len(encoder) != len(first_stage):
        raise ValueError(f"{len(encoder)} encoder scores but {len(first_stage)} first-stage scores")
    return weight * zscores(encoder) + (1 - weight) * zscores(first_stage)


def rank_grades(scores: Sequence[float], cuts: Sequence[float]) -> list[int]:
    """Grade = how many cuts the score's 1-based rank (ties share their mean position) is within."""
    return [sum(r <= c + 1e-9 for c in cuts) for r in fractional_ranks(list(scores))]


def spread_scores(labels: Sequence[int], fused: Sequence[float], top: int) -> list[float]:
    """0-10 scores: one band of 10/(top+1) per grade, places inside a band by fused score (see the module doc)."""
    band = 10.0 / (top + 1)
    out = [0.0] * len(labels)
    for grade in set(labels):
        members = sorted((i for i, g in enumerate(labels) if g == grade), key=lambda i: (-fused[i], i))
        low = band * min(max(grade, 0), top)
        for j, i in enumerate(members):
            out[i] = round(low + band * (len(members) - j) / len(members), 4)
    return out


def resolve_encoder(name: str) -> str:
    """The encoder's local path, or a one-line error naming `labels.encoder.model`."""
    from rerank_rl.rl.models import resolve_model

    try:
        return resolve_model(name)
    except UserError as err:
        raise UserError(f"labels.encoder.model: {err}") from None


class EncoderTeacher:
    """Query-passage cosines under one encoder; embeddings are cached on disk by (encoder, length, text)."""

    def __init__(self, cfg, cache_path: str | Path | None = None):
        self.cfg = cfg
        self.path = resolve_encoder(cfg.model)
        self.identity = f"encoder:{cfg.model}@{cfg.weight:g}"
        self._key_identity = f"{self.path}\0{cfg.max_seq_length}"
        self._model = None
        self.cache = EmbeddingCache(cache_path) if cache_path else None
        self.stats: Counter = Counter()

    def _encoder(self):
        if self._model is None:
            from rerank_rl.data_synthesis.pools import load_encoder

            try:
                self._model = load_encoder(self.path, self.cfg.max_seq_length)
            except Exception as err:  # a folder that is not a sentence-transformers model, a broken download
                reason = " ".join(str(err).split())[:200]
                raise UserError(f"labels.encoder.model: {self.cfg.model!r} does not load as a "
                                f"sentence-transformers encoder ({type(err).__name__}: {reason})") from None
        return self._model

    def embed(self, texts: Sequence[str], prefix: str = "") -> np.ndarray:
        """Normalised embeddings of `prefix + text`, one row per text (each distinct text encoded once)."""
        from rerank_rl.data_synthesis.pools import encode_texts

        unique = list(dict.fromkeys(texts))
        keys = [request_key(self._key_identity, [prefix + t], {}) for t in unique]
        found = self.cache.get_many(keys) if self.cache is not None else {}
        missing = [i for i, k in enumerate(keys) if k not in found]
        self.stats["embedding_cache_hits"] += len(unique) - len(missing)
        self.stats["texts_encoded"] += len(missing)
        for start in range(0, len(missing), _ENCODE_CHUNK):
            chunk = missing[start : start + _ENCODE_CHUNK]
            vectors = encode_texts(self._encoder(), [prefix + unique[i] for i in chunk], self.cfg.batch_size)
            new = [(keys[i], v) for i, v in zip(chunk, vectors)]
            if self.cache is not None:
                self.cache.put_many(new)
            found.update(new)
        if not unique:
            return np.zeros((0, 0), dtype=np.float32)
        row = {t: found[k] for t, k in zip(unique, keys)}
        return np.stack([row[t] for t in texts])

    def cosines(self, examples: Sequence[dict]) -> list[np.ndarray]:
        """cosine(query, passage) for every pool document, one array per example."""
        queries = self.embed([ex["query"] for ex in examples], self.cfg.query_prefix)
        passages = self.embed([t for ex in examples for t in ex["doc_texts"]], self.cfg.passage_prefix)
        out, start = [], 0
        for i, ex in enumerate(examples):
            n = len(ex["doc_texts"])
            out.append(passages[start : start + n] @ queries[i])
            start += n
        return out

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()


def label_pools_with_encoder(examples: list[dict], qrels: dict[str, dict[str, int]], cfg,
                             teacher: EncoderTeacher) -> dict:
    """Add encoder-teacher columns to each example (in place) and set `labels` per `cfg.target` (a LabelsConfig);
    returns label statistics. `qrels` are one source's judgments (their highest grade sets the rescaling).

    Columns: gold_labels (the pool's qrels grades), encoder_scores (cosines), fused_scores (s), teacher_labels
    (grades from s), labels, teacher_scores (0-10)."""
    for ex in examples:
        if not ex["doc_ids"]:
            raise UserError(f"pool of query {ex['qid']!r} has no documents: nothing for the encoder teacher to label")
    cuts, weight = cfg.rank_cuts, cfg.encoder.weight
    max_gold = max_grade(qrels)
    top = max_gold if cfg.target == "gold" else len(cuts)
    judged_docs = 0
    for ex, cosine in zip(examples, teacher.cosines(examples)):
        fused = fuse_scores(cosine, ex["first_stage_scores"], weight)
        teacher_grades = rank_grades(fused, cuts)
        judged = qrels.get(ex["qid"], {})
        gold = list(ex["labels"])
        labels = final_labels(cfg.target, ex["doc_ids"], gold, teacher_grades, judged, max_gold, len(cuts))
        judged_docs += sum(d in judged for d in ex["doc_ids"])
        ex.update(gold_labels=gold, encoder_scores=[float(c) for c in cosine], fused_scores=fused.tolist(),
                  teacher_labels=teacher_grades, labels=labels, teacher_scores=spread_scores(labels, fused, top))
    hist = Counter(g for ex in examples for g in ex["teacher_labels"])
    return {
        "teacher": teacher.identity,
        "pools_labeled": len(examples),
        "pools_without_teacher_labels": 0,
        "docs_scored": sum(len(ex["doc_ids"]) for ex in examples),
        "docs_judged": judged_docs,
        "teacher_label_distribution": {str(k): v for k, v in sorted(hist.items())},
        "target": cfg.target,
    }
