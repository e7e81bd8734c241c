"""Unlabeled texts as classification by cloze: a text with its most telling word removed, that word its gold label.

A zero-shot classifier must infer what a text is about from what it says, not from the label's own word in it.
Removing the word and asking for it among distractor words is that task, with a label taken from the data rather
than from a teacher, and thousands of distinct label strings of every topic (the datasets of hashtag emotions were
built the same way: the hashtag removed, kept as the label). The training sampler offers other texts' keywords as
distractors.

    masked_keywords:trec_dl:dl19    DL19 BM25 passages (any corpus `read_unlabeled` knows, or a text file)
    masked_keywords:beir_scifact    SciFact abstracts

The keyword of a text is its word with the highest tf-idf among words that are neither rare (fewer than
`MIN_DF` texts of the corpus) nor common (more than `MAX_DF` of them): a content word that names a topic rather
than a typo or a function word.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from rerank_rl.rl.errors import UserError

MIN_DF = 5
MAX_DF = 0.05
MAX_CHARS = 600  # as the ranking-data labels: the classifier reads the start of a text
MIN_WORDS = 5  # a text left with fewer words says too little to infer anything from
INFLECTIONS = ("s", "es", "d", "ed", "ing")


def mask_word(text: str, word: str) -> str:
    """`text` without any occurrence of `word` or its plain inflections (fleas, flea's, killed; any case), spaces
    tidied: a remaining "fleas" would let the label "flea" be matched by its spelling."""
    return " ".join(re.sub(rf"(?i)\b{re.escape(word)}(?:{'|'.join(INFLECTIONS)}|'s)?\b", " ", text).split())


def _base_form(word: str, text: str) -> str:
    """`word` without an inflection when the text also has the shorter form ("volcanos" beside "volcano"), so that
    masking the label's inflections removes both."""
    tokens = set(re.findall(r"[^\W\d_]+", text.lower()))
    for suffix in INFLECTIONS:
        if word.endswith(suffix) and word[: -len(suffix)] in tokens:
            return word[: -len(suffix)]
    return word


def keyword_examples(texts: list[str], min_df: int = MIN_DF, max_df: float = MAX_DF) -> list[dict]:
    """One example per text that has a keyword: the text with its keyword removed, the keyword its only label."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [" ".join(text.split())[:MAX_CHARS] for text in texts]
    vectorizer = TfidfVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_]{4,}\b", lowercase=True,
                                 min_df=min_df, max_df=max_df)
    try:
        weights = vectorizer.fit_transform(texts).tocsr()
    except ValueError:  # no word within the document-frequency bounds
        return []
    words = vectorizer.get_feature_names_out()
    rows = []
    for i, text in enumerate(texts):
        start, end = weights.indptr[i], weights.indptr[i + 1]
        if start == end:
            continue
        best = weights.indices[start + int(np.argmax(weights.data[start:end]))]
        keyword = _base_form(str(words[best]), text)
        masked = mask_word(text, keyword)
        if len(masked.split()) >= MIN_WORDS:
            rows.append({"text": masked, "label_names": [keyword], "gold_labels": [keyword]})
    return rows


def read_keyword_labels(corpus: str, root: str | Path) -> list[dict]:
    """`masked_keywords:CORPUS`: keyword cloze examples of an unlabeled corpus (`trec_dl:dl19`, `beir_scifact`, a
    text or JSONL file, as `read_unlabeled` reads them)."""
    from rerank_rl.data_synthesis.classification import read_unlabeled

    if not corpus:
        raise UserError("masked_keywords needs a corpus: masked_keywords:trec_dl:dl19, masked_keywords:beir_scifact, "
                        "or masked_keywords:PATH")
    rows = keyword_examples([row["text"] for row in read_unlabeled(corpus, root)])
    if not rows:
        raise UserError(f"masked_keywords:{corpus}: no text has a keyword (a word in at least {MIN_DF} texts and at "
                        f"most {MAX_DF:.0%} of them); the corpus is too small or too uniform")
    return rows
