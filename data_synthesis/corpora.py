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


def load_collection(cfg, seed: int = 0) -> Collection:
    """Read the configured source; keep judged queries only (if asked) and a seeded sample of `max_queries`."""
    path = Path(cfg.path).expanduser() if cfg.path else None
    if cfg.kind == "scifact":
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
    if cfg.qrels and cfg.kind != "trec":
        qrels = readers.read_qrels(cfg.qrels)
    if cfg.judged_only:
        queries = {q: t for q, t in queries.items() if any(r > 0 for r in qrels.get(q, {}).values())}
    if not queries:
        raise UserError(f"sources: no {'judged ' if cfg.judged_only else ''}queries found in {cfg.path or cfg.topics}")
    if cfg.max_queries and cfg.max_queries < len(queries):
        keep = set(random.Random(seed).sample(sorted(queries), cfg.max_queries))
        queries = {q: t for q, t in queries.items() if q in keep}
    return Collection(corpus=corpus, queries=queries, qrels=qrels, name=f"{cfg.kind}:{cfg.split}")
