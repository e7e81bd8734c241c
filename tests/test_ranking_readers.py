"""Readers: real files parse into the schema; malformed files fail with one line naming file and line."""

import json

import pytest

from rerank_rl.data_synthesis.readers import (
    read_beir, read_qrels, read_rank_llm, read_trec_run, read_triples, triples_as_examples,
)
from rerank_rl.data_synthesis.schema import ranking_dataset
from rerank_rl.data_synthesis.scifact import read_scifact_corpus, read_scifact_test, read_scifact_train
from rerank_rl.rl.errors import UserError


def test_rank_llm_dl19_joins_qrels(shared_data):
    qrels = read_qrels(shared_data / "trec_dl/qrels/qrels.dl19-passage.txt")
    examples = read_rank_llm(shared_data / "trec_dl/BM25/retrieve_results_dl19.json", qrels=qrels, depth=20)
    assert len(examples) == 43 and all(len(ex["doc_ids"]) == 20 for ex in examples)
    first = examples[0]
    assert first["labels"] == [qrels[first["qid"]].get(d, 0) for d in first["doc_ids"]]
    assert first["first_stage_scores"] == sorted(first["first_stage_scores"], reverse=True)
    assert len(ranking_dataset(examples)) == 43


def test_scifact_counts(shared_data):
    folder = shared_data / "beir_scifact"
    corpus = read_scifact_corpus(folder)
    topics, qrels = read_scifact_test(folder)
    train_queries, train_qrels = read_scifact_train(folder)
    assert len(corpus) == 5183 and len(topics) == 300
    assert all(doc in corpus for docs in qrels.values() for doc in docs)
    assert sum(len(d) for d in train_qrels.values()) == 919 and len(train_queries) == 809
    assert "'" not in corpus[next(iter(qrels["1"]))][:3]  # the numpy list repr is gone


def test_triples_fix_mojibake(shared_data):
    triples = read_triples(shared_data / "msmarco_train_triples_splade_toy/raw.tsv")
    assert len(triples) == 100
    assert "don’t" in triples[0][1] and "â" not in triples[0][1]
    examples = triples_as_examples(triples)
    assert examples[0]["labels"] == [1, 0]


def test_truncated_json_names_file(tmp_path):
    bad = tmp_path / "cands.json"
    bad.write_text('[{"query": "q", "hits": [{"qid": 1, "docid": "a"')
    with pytest.raises(UserError, match=r"cands.json:1: invalid JSON"):
        read_rank_llm(bad)


def test_rank_llm_hit_without_content(tmp_path):
    bad = tmp_path / "cands.json"
    bad.write_text(json.dumps([{"query": "q", "hits": [{"qid": 1, "docid": "a", "score": 1.0}]}]))
    with pytest.raises(UserError, match="entry 0: every hit needs"):
        read_rank_llm(bad)


def test_qrels_with_three_fields(tmp_path):
    bad = tmp_path / "qrels.txt"
    bad.write_text("1 0 d1 1\n1 d2 1\n")
    with pytest.raises(UserError, match=r"qrels.txt:2: qrels line needs 4 fields"):
        read_qrels(bad)


def test_run_with_duplicate_doc(tmp_path):
    bad = tmp_path / "run.txt"
    bad.write_text("1 Q0 d1 1 3.0 x\n1 Q0 d2 2 2.0 x\n1 Q0 d1 3 1.0 x\n")
    with pytest.raises(UserError, match=r"run.txt:3: doc id 'd1' appears twice for query '1'"):
        read_trec_run(bad)


def test_beir_layout(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "title": "T", "text": "body"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "question"}\n')
    (tmp_path / "qrels/test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    corpus, queries, qrels = read_beir(tmp_path)
    assert corpus == {"d1": "T body"} and queries == {"q1": "question"} and qrels == {"q1": {"d1": 1}}
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1"}\n{"title": "no id"}\n')
    with pytest.raises(UserError, match=r"corpus.jsonl:2: missing '_id'"):
        read_beir(tmp_path)


def test_schema_rejects_misaligned_lists():
    row = {"qid": "1", "query": "q", "doc_ids": ["a", "b"], "doc_texts": ["x"], "first_stage_scores": [1, 0],
           "labels": [0, 1]}
    with pytest.raises(ValueError, match="'doc_texts' has 1 entries"):
        ranking_dataset([row])
