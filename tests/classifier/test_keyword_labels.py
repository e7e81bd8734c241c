"""Masked-keyword cloze examples: the keyword is a content word of the text, removed with its inflections, and the
example offers it as the gold label; bad corpora fail with a message naming the spec."""

import pytest

from rerank_rl.data_synthesis.classification import read_named
from rerank_rl.data_synthesis.keyword_labels import keyword_examples, mask_word
from rerank_rl.rl.errors import UserError


def test_mask_word_removes_the_word_and_its_inflections_only():
    text = "Fleas bite; a flea's eggs hatch. The FLEA fled to the flea-market, unlike the refleas."
    assert mask_word(text, "flea") == "bite; a eggs hatch. The fled to the -market, unlike the refleas."


def _corpus():
    # Each topic word (and its plural) is in 5 of 200 texts: between MIN_DF and MAX_DF, where every filler word is
    # in more than 5% of the texts and so is never a keyword.
    topics = ["volcano", "violin", "glacier", "dolphin"]
    texts = []
    for topic in topics:
        for i in range(5):
            texts.append(f"The {topic}s we studied number {i} were remarkable and the {topic} was well documented")
    filler = [f"plain words about nothing in particular item {i}" for i in range(180)]
    return texts + filler


def test_keyword_is_the_telling_word_and_the_text_no_longer_says_it():
    rows = keyword_examples(_corpus())
    by_label = {}
    for row in rows:
        assert row["label_names"] == row["gold_labels"] and len(row["gold_labels"]) == 1
        by_label.setdefault(row["gold_labels"][0], []).append(row["text"])
    assert set(by_label) == {"volcano", "violin", "glacier", "dolphin"}  # filler words are too common
    for keyword, texts in by_label.items():
        assert len(texts) == 5
        assert all(keyword not in text.lower() for text in texts)
        assert all(text.startswith("The we studied number") for text in texts)


def test_too_short_after_masking_or_no_keyword_is_dropped():
    texts = ["zebra zebra zebras"] * 5 + [f"common words only here {i}" for i in range(200)]
    assert keyword_examples(texts) == []  # the zebra texts say nothing once masked; the rest have no keyword
    assert keyword_examples(["a", "b"]) == []


def test_named_spec_reads_a_corpus_and_errors_name_the_spec(shared_data, tmp_path):
    rows = read_named("masked_keywords:trec_dl:dl19", shared_data)
    assert len(rows) > 3000 and len({row["gold_labels"][0] for row in rows}) > 1000
    assert all(row["gold_labels"][0] not in row["text"].lower().split() for row in rows)
    with pytest.raises(UserError, match="masked_keywords needs a corpus"):
        read_named("masked_keywords", shared_data)
    small = tmp_path / "few.txt"
    small.write_text("one line\nanother line\n")
    with pytest.raises(UserError, match=r"masked_keywords:.*few.txt: no text has a keyword"):
        read_named(f"masked_keywords:{small}", shared_data)
