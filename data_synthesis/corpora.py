"""A collection for synthesis: corpus, queries and judgments, read with the project's readers."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from rerank_rl.data_synthesis import readers, scifact
from rerank_rl.rl.errors import UserError


@dataclass
class Collection:
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    name: str = ""
    # candidate lists that came with the source (kind rank_llm): {qid: [(doc id, first-stage score)], best first}
    hits: dict[str, list[tuple[str, float]]] | None = None


def _read_corpus(path: Path) -> dict[str, str]:
    """BEIR corpus.jsonl or a `docid<TAB>text` TSV."""
    if path.suffix in (".jsonl", ".json") or path.name.endswith(".jsonl.gz"):
        corpus = {}
        for lineno, obj in readers.read_jsonl(path):
            if "_id" not in obj:
                raise UserError(f"{path}:{lineno}: missing '_id'")
            corpus[str(obj["_id"])] = " ".join(p for p in (obj.get("title", ""), obj.get("text", "")) if p).strip()
        return corpus
    return readers.read_topics(path)  # same two-column TSV shape


def _read_candidate_lists(path: Path, qrels_path: str):
    """A rank_llm JSON as (corpus of its passages, queries, qrels, candidate lists)."""
    if path.is_dir():
        raise UserError(f"sources.path: kind 'rank_llm' reads a retrieve_results JSON file; {path} is a folder")
    qrels = readers.read_qrels(qrels_path) if qrels_path else {}
    examples = readers.read_rank_llm(path)
    if not examples:
        raise UserError(f"{path}: no query with candidates (every entry's 'hits' is empty)")
    corpus: dict[str, str] = {}
    for ex in examples:
        for d, text in zip(ex["doc_ids"], ex["doc_texts"]):
            corpus.setdefault(d, text)
    hits = {ex["qid"]: list(zip(ex["doc_ids"], ex["first_stage_scores"])) for ex in examples}
    return corpus, {ex["qid"]: ex["query"] for ex in examples}, qrels, hits


def load_collection(cfg, seed: int = 0) -> Collection:
    """Read the configured source; keep judged queries only (if asked) and a seeded sample of `max_queries`."""
    path = Path(cfg.path).expanduser() if cfg.path else None
    hits = None
    if cfg.kind == "rank_llm":
        corpus, queries, qrels, hits = _read_candidate_lists(path, cfg.qrels)
    elif cfg.kind == "scifact":
        corpus = scifact.read_scifact_corpus(path)
        if cfg.split == "train":
            queries, qrels = scifact.read_scifact_train(path)
        elif cfg.split == "test":
            queries, qrels = scifact.read_scifact_test(path)
        else:
            raise UserError(f"sources.split: SciFact has 'train' and 'test', got {cfg.split!r}")
    elif cfg.kind == "beir":
        corpus, queries, qrels = readers.read_beir(path, cfg.split)
    else:
        corpus = _read_corpus(Path(cfg.corpus).expanduser())
        queries = readers.read_topics(cfg.topics)
        qrels = readers.read_qrels(cfg.qrels) if cfg.qrels else {}
    if cfg.qrels and cfg.kind not in ("trec", "rank_llm"):
        qrels = readers.read_qrels(cfg.qrels)
    if cfg.judged_only:
        queries = {q: t for q, t in queries.items() if any(r > 0 for r in qrels.get(q, {}).values())}
    if not queries:
        hint = " (set judged_only: false to pool unjudged queries)" if cfg.judged_only else ""
        raise UserError(f"sources: no {'judged ' if cfg.judged_only else ''}queries found in "
                        f"{cfg.path or cfg.topics}{hint}")
    if cfg.max_queries and cfg.max_queries < len(queries):
        keep = set(random.Random(seed).sample(sorted(queries), cfg.max_queries))
        queries = {q: t for q, t in queries.items() if q in keep}
    if cfg.qid_prefix:
        queries, qrels = ({cfg.qid_prefix + q: v for q, v in d.items()} for d in (queries, qrels))
        hits = {cfg.qid_prefix + q: v for q, v in hits.items()} if hits is not None else None
    name = f"rank_llm:{path.name}" if cfg.kind == "rank_llm" else f"{cfg.kind}:{cfg.split}"
    return Collection(corpus=corpus, queries=queries, qrels=qrels, name=name, hits=hits)
