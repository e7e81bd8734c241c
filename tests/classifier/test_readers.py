"""Classification readers: the five shared sets parse into the schema with their quirks handled; malformed lines
fail with one line naming file and line."""

import json

import pytest

from rerank_rl.data_synthesis.classification import (
    read_ag_news, read_banking77, read_classification_file, read_emotion_dair, read_named, read_sst2,
    read_unlabeled, read_yin2019_emotion, sample,
)
from rerank_rl.data_synthesis.schema import classification_dataset
from rerank_rl.rl.errors import UserError


def test_shared_sets_counts_and_labels(shared_data):
    ag = read_ag_news(shared_data / "ag_news")
    assert len(ag) == 7600 and ag[0]["label_names"] == ["World", "Sports", "Business", "Sci/Tech"]
    assert ag[0]["gold_labels"] == ["Business"] and ag[0]["text"].startswith("Fears for T N pension after talks. ")
    assert "\\" not in ag[1]["text"] and "$10 million" in ag[1]["text"]  # backslash breaks, lost '&' of "&#36;"
    sst = read_sst2(shared_data / "sst2", "dev")
    assert len(sst) == 872 and sum(r["gold_labels"] == ["positive"] for r in sst) == 444
    banking = read_banking77(shared_data / "banking77", "test")
    assert len(banking) == 3080 and len(banking[0]["label_names"]) == 77
    assert banking[0]["gold_labels"] == ["card arrival"]
    emotion = read_emotion_dair(shared_data / "emotion_dair", "test")
    assert len(emotion) == 2000 and sum(r["gold_labels"] == ["joy"] for r in emotion) == 695
    yin = read_yin2019_emotion(shared_data / "yin2019_emotion")
    assert len(yin) == 16000 and yin[0]["label_names"][-1] == "no emotion" and "&amp;" not in yin[0]["text"]
    assert len(classification_dataset(emotion[:10])) == 10


def test_read_named_and_sample(shared_data):
    rows = read_named("banking77:test", shared_data)
    assert len(rows) == 3080
    picked = sample(rows, 5, seed=3)
    assert len(picked) == 5 and picked == sample(rows, 5, seed=3)
    with pytest.raises(UserError, match="unknown classification set 'imdb': neither a known set .* nor a file"):
        read_named("imdb", shared_data)


def test_read_named_takes_a_users_file(tmp_path):
    own = tmp_path / "topics.jsonl"
    own.write_text('{"text": "the striker scored twice", "label": "football"}\n'
                   '{"text": "rates rose again", "labels": ["economy", "banking"]}\n')
    rows = read_named(str(own), tmp_path / "no-data-root")
    assert [r["gold_labels"] for r in rows] == [["football"], ["economy", "banking"]]
    assert rows[0]["label_names"] == ["banking", "economy", "football"]
    own.write_text('{"text": "no label here"}\n')
    with pytest.raises(UserError, match=r"topics.jsonl:1: needs a text and a gold label"):
        read_named(str(own), tmp_path)


def test_malformed_lines_name_file_and_line(tmp_path):
    (tmp_path / "classes.txt").write_text("World\nSports\n")
    (tmp_path / "test.csv").write_text('"1","t","d"\n"5","t","d"\n')
    with pytest.raises(UserError, match=r"test.csv:2: class id 5 is outside 1..2"):
        read_ag_news(tmp_path)
    (tmp_path / "test.csv").write_text('"1","t","d"\n"2","only title"\n')
    with pytest.raises(UserError, match=r"test.csv:2: needs 3 fields"):
        read_ag_news(tmp_path)
    (tmp_path / "train.tsv").write_text("1\tgood\nx\tbad\n")
    with pytest.raises(UserError, match=r"train.tsv:2: label 'x' is not an integer"):
        read_sst2(tmp_path)
    (tmp_path / "train.tsv").write_text("1\tgood\nno tab here\n")
    with pytest.raises(UserError, match=r"train.tsv:2: needs 'label<TAB>text'"):
        read_sst2(tmp_path)
    (tmp_path / "train.txt").write_text("text;label_name\nfine;joy\nno separator\n")
    with pytest.raises(UserError, match=r"train.txt:3: needs 'text;label'"):
        read_emotion_dair(tmp_path)
    (tmp_path / "categories.json").write_text('["card_arrival"]')
    (tmp_path / "train.csv").write_text("text,category\nwhere is it,card_arrival\nhello,unknown_intent\n")
    with pytest.raises(UserError, match=r"train.csv:3: intent 'unknown_intent' is not in categories.json"):
        read_banking77(tmp_path)


def test_generic_files(tmp_path):
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text("\n".join(json.dumps(row) for row in ({"text": "goal!", "label": "sports"},
                                                          {"text": "x", "label": 1})) + "\n")
    rows = read_classification_file(jsonl, ["sports", "business"])
    assert [r["gold_labels"] for r in rows] == [["sports"], ["business"]]
    assert rows[0]["label_names"] == ["sports", "business"]
    with pytest.raises(UserError, match="integer label 1 needs --labels"):
        read_classification_file(jsonl)
    jsonl.write_text(json.dumps({"text": "goal!"}) + "\n")
    with pytest.raises(UserError, match=r"data.jsonl:1: needs a text and a gold label"):
        read_classification_file(jsonl)
    tsv = tmp_path / "data.tsv"
    tsv.write_text("0\tawful\n1\tgreat\n")
    assert read_classification_file(tsv, ["neg", "pos"])[1]["gold_labels"] == ["pos"]
    csv = tmp_path / "data.csv"
    csv.write_text("text,label\ngoal,sports\nrates,finance\n")
    with pytest.raises(UserError, match="'finance', which is not among the given labels"):
        read_classification_file(csv, ["sports", "business"])
    assert read_classification_file(csv)[0]["label_names"] == ["finance", "sports"]


def test_unlabeled_corpora_and_files(shared_data, tmp_path):
    dl19 = read_unlabeled("trec_dl:dl19", shared_data)
    both = read_unlabeled("trec_dl", shared_data)
    assert 3000 < len(dl19) <= 4300 and len(dl19) < len(both) <= 9600  # top-100 of 43 and 53 queries, deduplicated
    assert len({row["text"] for row in both}) == len(both)
    assert all(row["label_names"] == [] == row["gold_labels"] for row in both)
    assert len(read_unlabeled("beir_scifact", shared_data)) == 5183
    lines = tmp_path / "texts.txt"
    lines.write_text("first text\n\nsecond text\n")
    assert [row["text"] for row in read_unlabeled(str(lines), shared_data)] == ["first text", "second text"]
    jsonl = tmp_path / "texts.jsonl"
    jsonl.write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps({"title": "no text"}) + "\n")
    with pytest.raises(UserError, match=r"texts.jsonl:2: needs a non-empty 'text' field"):
        read_unlabeled(str(jsonl), shared_data)
    with pytest.raises(UserError, match="'imdb': neither a known corpus"):
        read_unlabeled("imdb", shared_data)
