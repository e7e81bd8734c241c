"""Turn a recipe's `data:` source entry into ranking examples (schema of data_synthesis.schema)."""

from __future__ import annotations

from pathlib import Path

from rerank_rl.data_synthesis import builtin, readers, scifact
from rerank_rl.rl.errors import UserError


def _bm25_pool(queries: dict[str, str], corpus: dict[str, str], qrels, depth: int) -> list[dict]:
    """Candidates for queries over a corpus by BM25 (used for sources that ship no candidate lists)."""
    import bm25s

    doc_ids = list(corpus)
    retriever = bm25s.BM25(k1=0.9, b=0.4)
    retriever.index(bm25s.tokenize([corpus[d] for d in doc_ids], stopwords="en", show_progress=False),
                    show_progress=False)
    qids = list(queries)
    hits, scores = retriever.retrieve(bm25s.tokenize([queries[q] for q in qids], stopwords="en", show_progress=False),
                                      k=min(depth, len(doc_ids)), show_progress=False, n_threads=1)
    examples = []
    for row, qid in enumerate(qids):
        ids = [doc_ids[int(i)] for i in hits[row]]
        judged = qrels.get(qid, {})
        examples.append({"qid": qid, "query": queries[qid], "doc_ids": ids, "doc_texts": [corpus[d] for d in ids],
                         "first_stage_scores": [float(s) for s in scores[row]],
                         "labels": [max(0, judged.get(d, 0)) for d in ids]})
    return examples


def load_source(source) -> list[dict]:
    """Examples for one `SourceSection` (see rl/recipe.py), cut to `depth` candidates and `max_queries` queries."""
    fmt, path = source.format, Path(source.path).expanduser() if source.path else None
    qrels = readers.read_qrels(source.qrels) if source.qrels else {}
    if fmt == "builtin":
        examples = builtin.generate_examples(source.num_queries, candidates=source.depth, seed=source.seed,
                                             prefix=f"s{source.seed}q")
    elif fmt == "rank_llm":
        examples = readers.read_rank_llm(path, qrels=qrels, depth=source.depth)
    elif fmt == "trec_run":
        corpus, _, _ = readers.read_beir(Path(source.corpus).parent) if source.corpus else ({}, {}, {})
        examples = readers.read_run_with_texts(path, source.topics, corpus, qrels=qrels, depth=source.depth)
    elif fmt == "beir":
        corpus, queries, beir_qrels = readers.read_beir(path)
        examples = _bm25_pool(queries, corpus, qrels or beir_qrels, source.depth)
    elif fmt == "scifact_train":
        queries, train_qrels = scifact.read_scifact_train(path)
        examples = _bm25_pool(queries, scifact.read_scifact_corpus(path), train_qrels, source.depth)
    elif fmt == "triples":
        examples = readers.triples_as_examples(readers.read_triples(path))
    elif fmt == "vidore":  # page images: the multimodal paradigm
        from rerank_rl.data_synthesis.vidore import read_vidore

        examples = read_vidore(path, depth=source.depth, seed=source.seed)
    elif fmt == "dataset":
        from datasets import load_from_disk

        if not path.exists():
            raise UserError(f"{path}: no saved dataset there")
        examples = [dict(row) for row in load_from_disk(str(path))]
    else:  # the schema's Literal already rejects this; kept for direct callers
        raise UserError(f"unknown data format {fmt!r}")
    return examples[: source.max_queries] if source.max_queries else examples
