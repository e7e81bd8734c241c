"""ViDoRe page-image retrieval sets (a BEIR-style `save_to_disk` export: queries/, corpus/, relevant_docs/ and images/)
as ranking examples for the multimodal paradigm.

A candidate's "text" is the absolute path of its page image: the ranking schema stays as it is, and a rank_llm
candidates file whose `content` fields are image paths serves `rerank-rl evaluate --paradigm multimodal` alike.
Every page of the corpus is a candidate of every query. The exports ship no retriever run, so the first stage is a
seeded shuffle of the corpus (its figures are chance level) with scores falling by rank.
"""

from __future__ import annotations

import random
from pathlib import Path

from rerank_rl.rl.errors import UserError

_COLUMNS = {"queries": ("query_id", "text"), "corpus": ("corpus_id", "image_path"),
            "relevant_docs": ("query_id", "corpus_ids", "scores")}


def _load(path: Path) -> dict:
    from datasets import load_from_disk

    if not (path / "dataset_dict.json").exists():
        raise UserError(f"{path}: not a ViDoRe export (no dataset_dict.json; expected queries/, corpus/, "
                        "relevant_docs/ saved with save_to_disk)")
    data = load_from_disk(str(path))
    for split, columns in _COLUMNS.items():
        if split not in data:
            raise UserError(f"{path}: no '{split}' split")
        missing = [c for c in columns if c not in data[split].column_names]
        if missing:
            raise UserError(f"{path}/{split}: missing column(s) {', '.join(missing)}")
    return data


def read_vidore(path: str | Path, depth: int = 0, seed: int = 0) -> list[dict]:
    """One example per query: its candidates are the corpus pages (at most `depth`, 0 = all) in a seeded shuffle,
    `doc_texts` their image paths, `labels` the relevance scores of `relevant_docs` (0 for the rest)."""
    path = Path(path).expanduser().resolve()
    data = _load(path)
    pages = {}
    for row in data["corpus"]:
        image = path / row["image_path"]
        if not image.exists():
            raise UserError(f"{path}/corpus: page {row['corpus_id']}'s image {image} not found")
        pages[str(row["corpus_id"])] = str(image)
    judged: dict[str, dict[str, int]] = {}
    for row in data["relevant_docs"]:
        if len(row["corpus_ids"]) != len(row["scores"]):
            raise UserError(f"{path}/relevant_docs: query {row['query_id']} has {len(row['corpus_ids'])} corpus_ids "
                            f"but {len(row['scores'])} scores")
        grades = judged.setdefault(str(row["query_id"]), {})
        grades.update({str(d): int(s) for d, s in zip(row["corpus_ids"], row["scores"])})
    examples = []
    for row in data["queries"]:
        qid = str(row["query_id"])
        ids = sorted(pages, key=lambda d: (len(d), d))
        random.Random(f"{seed}:{qid}").shuffle(ids)
        ids = ids[:depth] if depth else ids
        grades = judged.get(qid, {})
        examples.append({"qid": qid, "query": row["text"], "doc_ids": ids, "doc_texts": [pages[d] for d in ids],
                         "first_stage_scores": [float(len(ids) - r) for r in range(len(ids))],
                         "labels": [max(0, grades.get(d, 0)) for d in ids]})
    return examples
