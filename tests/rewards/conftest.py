"""Fixtures for the reward tests: the shared real data (../shared/data) and a BM25 run over SciFact."""

from __future__ import annotations

import ast
import csv
import gzip
import io
import os
import tokenize
import zipfile
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data; skipped locally when absent, a failure under CI."""
    if not SHARED_DATA.is_dir():
        message = f"../shared/data not found: {SHARED_DATA}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA


def _abstract_text(raw: str) -> str:
    """SciFact abstracts are numpy-style list reprs without commas: join the string literals they hold."""
    tokens = tokenize.generate_tokens(io.StringIO(raw).readline)
    try:
        return " ".join(ast.literal_eval(tok.string) for tok in tokens if tok.type == tokenize.STRING)
    except (tokenize.TokenError, SyntaxError, ValueError):
        return raw


@pytest.fixture(scope="session")
def scifact_bm25(shared_data: Path) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]]]:
    """(run qid -> {doc id: BM25 score} over the top 100, qrels) for the 300 SciFact test claims, read from the zip."""
    bm25s = pytest.importorskip("bm25s")
    root = shared_data / "beir_scifact"
    with zipfile.ZipFile(root / "scifact.zip") as archive, archive.open("corpus_train.csv") as raw:
        rows = list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")))
    doc_ids = [row["doc_id"] for row in rows]
    texts = [f"{row['title']} {_abstract_text(row['abstract'])}" for row in rows]
    with gzip.open(root / "topics.beir-v1.0.0-scifact.test.tsv.gz", "rt", encoding="utf-8") as handle:
        topics = [line.rstrip("\n").split("\t", 1) for line in handle if line.strip()]
    qrels: dict[str, dict[str, int]] = {}
    for line in (root / "qrels.beir-v1.0.0-scifact.test.txt").read_text().splitlines():
        qid, _, doc, rel = line.split()
        qrels.setdefault(qid, {})[doc] = int(rel)

    retriever = bm25s.BM25(k1=0.9, b=0.4)
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    hits, scores = retriever.retrieve(
        bm25s.tokenize([text for _, text in topics], stopwords="en", show_progress=False),
        k=100,
        show_progress=False,
        n_threads=1,
    )
    run = {
        qid: {doc_ids[int(i)]: float(s) for i, s in zip(hits[row], scores[row])}
        for row, (qid, _) in enumerate(topics)
    }
    return run, qrels
