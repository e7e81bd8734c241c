"""Wider label sets for the zero-shot classifier, built from the data at hand.

Ranking data as classification: a passage (or abstract) is the text, the query (or claim) it answers is its gold
"label", and the training sampler offers other queries of the same corpus as distractor labels. This brings
hundreds of free-text label strings of every topic, where the classification sets bring a few dozen names.

    trec_dl_queries:dl21   DL21 passages judged relevant (NIST grade >= 2) to a query
    trec_dl_queries:dl22   DL22 has no judgments: each query's BM25 top-2 passages (noisy positives)
    scifact_claims         SciFact train claims and the abstracts they cite
    msmarco_queries        MS MARCO triples: each query and its positive passage

Label variants: a classification label shown as a template phrase or with a short description, so that training
does not tie a class to one spelling of its name.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from rerank_rl.data_synthesis.readers import read_qrels, read_rank_llm, read_triples
from rerank_rl.data_synthesis.scifact import read_scifact_corpus, read_scifact_train
from rerank_rl.rl.errors import UserError

MAX_CHARS = 600  # texts are cut here: the classifier reads ~100 tokens after its labels anyway
RELEVANT = 2  # TREC DL grade counted as an answer (trec_eval -l 2)
FIRST_STAGE_TOP = 2  # DL22 positives: the first stage's top passages per query

Pair = tuple[str, str]  # (query, passage)


def _trec_dl(folder: Path, split: str) -> list[Pair]:
    split = split or "dl21"
    pools = read_rank_llm(folder / "BM25" / f"retrieve_results_{split}.json")
    qrels_path = folder / "qrels" / f"qrels.{split}-passage.txt"
    if not qrels_path.exists():  # unjudged pools (DL22): the first stage's top passages
        return [(ex["query"], text) for ex in pools for text in ex["doc_texts"][:FIRST_STAGE_TOP]]
    qrels = read_qrels(qrels_path)
    return [(ex["query"], text) for ex in pools for doc, text in zip(ex["doc_ids"], ex["doc_texts"])
            if qrels.get(ex["qid"], {}).get(doc, 0) >= RELEVANT]


def _scifact(folder: Path, _split: str) -> list[Pair]:
    corpus = read_scifact_corpus(folder)
    claims, qrels = read_scifact_train(folder)
    return [(claims[qid], corpus[doc]) for qid, docs in qrels.items() for doc in docs if doc in corpus]


def _triples(folder: Path, _split: str) -> list[Pair]:
    return [(query, positive) for query, positive, _ in read_triples(folder / "raw.tsv")]


QUERY_SETS: dict[str, tuple[str, Callable[[Path, str], list[Pair]]]] = {
    "trec_dl_queries": ("trec_dl", _trec_dl),
    "scifact_claims": ("beir_scifact", _scifact),
    "msmarco_queries": ("msmarco_train_triples_splade_toy", _triples),
}


def read_query_labels(name: str, split: str, root: str | Path) -> list[dict]:
    """Classification examples of a ranking corpus: one per passage, whose gold labels are the queries it answers
    (a passage that answers two queries is one example with two gold labels)."""
    folder_name, reader = QUERY_SETS[name]
    folder = Path(root) / folder_name
    if not folder.is_dir():
        raise UserError(f"{folder}: no such data folder (data root {root})")
    by_text: dict[str, dict[str, None]] = {}
    for query, passage in reader(folder, split):
        query, passage = " ".join(query.split()), " ".join(passage.split())[:MAX_CHARS]
        if query and passage:
            by_text.setdefault(passage, {})[query] = None
    if not by_text:
        raise UserError(f"{name}{':' + split if split else ''}: no (query, passage) pairs found under {folder}")
    return [{"text": text, "label_names": list(queries), "gold_labels": list(queries)}
            for text, queries in by_text.items()]


# Short descriptions for the training sets' own labels (never for evaluation sets: that would tune to them).
DESCRIPTIONS = {
    "sadness": "feeling sad, unhappy or grieving",
    "joy": "feeling happy, glad or delighted",
    "love": "feeling affection, tenderness or fondness",
    "anger": "feeling angry, annoyed or outraged",
    "fear": "feeling afraid, anxious or worried",
    "surprise": "feeling surprised, amazed or astonished",
    "negative": "an unfavourable, critical opinion",
    "positive": "a favourable, approving opinion",
}
TEMPLATES = ("about {}", "{} (category)", "this text is about {}", "topic: {}", "{}-related", "label: {}")


def label_variant(label: str, rng: random.Random) -> str:
    """Another way to write `label`: a template phrase, or `label: description` where one is known."""
    choices = [template.format(label) for template in TEMPLATES]
    if label.casefold() in DESCRIPTIONS:
        description = DESCRIPTIONS[label.casefold()]
        choices += [f"{label}: {description}", description]
    return rng.choice(choices)
