"""Fixtures for the reward tests. `shared_data` comes from tests/conftest.py; SciFact is read with the project's
own readers and retrieved with the same BM25 the data stage uses."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def scifact_bm25(shared_data: Path) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]]]:
    """(run qid -> {doc id: BM25 score} over the top 100, qrels) for the 300 SciFact test claims."""
    pytest.importorskip("bm25s")
    from rerank_rl.data_synthesis.scifact import read_scifact_corpus, read_scifact_test
    from rerank_rl.data_synthesis.sources import _bm25_pool

    folder = shared_data / "beir_scifact"
    topics, qrels = read_scifact_test(folder)
    examples = _bm25_pool(topics, read_scifact_corpus(folder), qrels, depth=100)
    run = {ex["qid"]: dict(zip(ex["doc_ids"], ex["first_stage_scores"])) for ex in examples}
    return run, qrels
