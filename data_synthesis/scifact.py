"""BEIR SciFact as staged in ../shared/data/beir_scifact (a zip of CSV exports plus anserini qrels/topics).

Quirk handled here: `abstract` in corpus_train.csv is a numpy-style list repr without commas
("['sent1' 'sent2'\\n 'sent3']"), so sentences are recovered as the string literals it contains.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import zipfile
from pathlib import Path

from rerank_rl.data_synthesis.readers import Qrels, read_csv_rows, read_qrels, read_topics
from rerank_rl.rl.errors import UserError

TEST_QRELS = "qrels.beir-v1.0.0-scifact.test.txt"
TEST_TOPICS = "topics.beir-v1.0.0-scifact.test.tsv.gz"


def _string_literals(text: str) -> list[str]:
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    return [ast.literal_eval(tok.string) for tok in tokens if tok.type == tokenize.STRING]


def _zip_rows(folder: Path, member: str):
    archive = folder / "scifact.zip"
    if not archive.exists():
        raise UserError(f"{archive}: no such file")
    handle = io.TextIOWrapper(zipfile.ZipFile(archive).open(member), encoding="utf-8")
    return read_csv_rows(f"{archive}!{member}", handle=handle)


def read_scifact_corpus(folder: str | Path) -> dict[str, str]:
    """doc_id -> 'title. abstract sentences'."""
    corpus = {}
    for lineno, row in _zip_rows(Path(folder), "corpus_train.csv"):
        try:
            sentences = _string_literals(row["abstract"])
        except (tokenize.TokenError, SyntaxError, ValueError) as err:
            raise UserError(f"{folder}/scifact.zip!corpus_train.csv:{lineno}: unreadable abstract ({err})") from None
        corpus[row["doc_id"]] = f"{row['title']}. {' '.join(sentences)}".strip()
    return corpus


def read_scifact_test(folder: str | Path) -> tuple[dict[str, str], Qrels]:
    """The 300 BEIR test claims and their qrels."""
    folder = Path(folder)
    return read_topics(folder / TEST_TOPICS), read_qrels(folder / TEST_QRELS)


def read_scifact_train(folder: str | Path) -> tuple[dict[str, str], Qrels]:
    """Train claims (809) with their cited documents as positives (919 pairs). Claim ids get a 'train-' prefix."""
    queries: dict[str, str] = {}
    qrels: Qrels = {}
    for _, row in _zip_rows(Path(folder), "claims_train.csv"):
        qid = f"train-{row['id']}"
        queries[qid] = row["claim"]
        for doc_id in re.findall(r"\d+", row.get("cited_doc_ids", "")):
            qrels.setdefault(qid, {})[doc_id] = 1
    return queries, {q: d for q, d in qrels.items() if d}
