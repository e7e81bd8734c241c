"""rewards.metrics against pytrec_eval / ir_measures on real runs, plus hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rerank_rl.data_synthesis.readers import read_qrels, read_trec_run
from rerank_rl.rewards.metrics import (
    average_precision,
    evaluate_run,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    rank_from_scores,
    rbo,
    recall_at_k,
    write_trec_run,
)

pytrec_eval = pytest.importorskip("pytrec_eval")

METRICS = ("ndcg@10", "ndcg@5", "recall@100", "recall@10", "mrr@10", "map", "precision@10")


def _reference(run: dict[str, dict[str, float]], qrels: dict, rel_level: int) -> dict[str, dict[str, float]]:
    """Per-query values from pytrec_eval under our metric names; MRR@10 from recip_rank on the top-10 cut."""
    measures = {"ndcg_cut.5,10", "recall.10,100", "map", "P.10"}
    full = pytrec_eval.RelevanceEvaluator(qrels, measures, relevance_level=rel_level).evaluate(run)
    top10 = {q: {d: docs[d] for d in rank_from_scores(docs)[:10]} for q, docs in run.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=rel_level).evaluate(top10)
    names = {"ndcg@10": "ndcg_cut_10", "ndcg@5": "ndcg_cut_5", "recall@100": "recall_100",
             "recall@10": "recall_10", "map": "map", "precision@10": "P_10"}
    return {
        q: {**{ours: vals[theirs] for ours, theirs in names.items()}, "mrr@10": rr[q]["recip_rank"]}
        for q, vals in full.items()
    }


def _scored_run(path) -> dict[str, dict[str, float]]:
    """A TREC run file as qid -> {doc id: score}, the shape pytrec_eval takes."""
    return {qid: dict(hits) for qid, hits in read_trec_run(path).items()}


def _check_against_pytrec(run_scores: dict, qrels: dict, rel_level: int) -> dict:
    ranked = {q: rank_from_scores(docs) for q, docs in run_scores.items()}
    ours = evaluate_run(ranked, qrels, METRICS, rel_level=rel_level, per_query=True)
    ref = _reference(run_scores, qrels, rel_level)
    judged_in_run = [q for q in qrels if q in run_scores]
    assert set(ref) == set(judged_in_run)
    for q in judged_in_run:
        for name in METRICS:
            assert ours["per_query"][q][name] == pytest.approx(ref[q][name], abs=1e-6), (q, name)
    for name in METRICS:  # -c: judged queries absent from the run count as 0
        expected = sum(ref[q][name] for q in judged_in_run) / len(qrels)
        assert ours[name] == pytest.approx(expected, abs=1e-6), name
    assert ours["queries"] == len(qrels)
    return ours


@pytest.mark.data
@pytest.mark.parametrize("year, ndcg10", [("19", 0.5058), ("21", 0.4458)])
def test_trec_dl_bm25_matches_pytrec_eval(shared_data, year, ndcg10):
    root = shared_data / "trec_dl"
    run = _scored_run(root / "BM25" / f"trec_results_dl{year}.txt")
    qrels = read_qrels(root / "qrels" / f"qrels.dl{year}-passage.txt")
    ours = _check_against_pytrec(run, qrels, rel_level=2)
    assert round(ours["ndcg@10"], 4) == ndcg10


@pytest.mark.data
def test_trec_dl_matches_ir_measures(shared_data):
    ir_measures = pytest.importorskip("ir_measures")
    root = shared_data / "trec_dl"
    run = _scored_run(root / "BM25" / "trec_results_dl19.txt")
    qrels = read_qrels(root / "qrels" / "qrels.dl19-passage.txt")
    ours = evaluate_run({q: rank_from_scores(d) for q, d in run.items()}, qrels, ("ndcg@10", "mrr@10", "map"), 2)
    ref = ir_measures.calc_aggregate(
        [ir_measures.nDCG @ 10, ir_measures.RR(rel=2) @ 10, ir_measures.AP(rel=2)], qrels, run
    )
    assert ours["ndcg@10"] == pytest.approx(ref[ir_measures.nDCG @ 10], abs=1e-6)
    assert ours["mrr@10"] == pytest.approx(ref[ir_measures.RR(rel=2) @ 10], abs=1e-6)
    assert ours["map"] == pytest.approx(ref[ir_measures.AP(rel=2)], abs=1e-6)


@pytest.mark.data
def test_missing_queries_count_as_zero(shared_data):
    root = shared_data / "trec_dl"
    run = _scored_run(root / "BM25" / "trec_results_dl21.txt")
    qrels = read_qrels(root / "qrels" / "qrels.dl21-passage.txt")
    dropped = dict(list(run.items())[::2])
    dropped["not-judged"] = {"x": 1.0}  # run-only queries are ignored
    _check_against_pytrec(dropped, qrels, rel_level=2)


@pytest.mark.data
def test_scifact_bm25_matches_pytrec_eval(scifact_bm25):
    run, qrels = scifact_bm25
    ours = _check_against_pytrec(run, qrels, rel_level=1)
    assert 0.6 < ours["ndcg@10"] < 0.72  # plain BM25 on SciFact is ~0.66


def test_rank_from_scores_breaks_ties_like_trec_eval():
    # trec_eval: score descending, then doc id descending (byte order).
    assert rank_from_scores({"a": 1.0, "c": 2.0, "b": 1.0, "B": 1.0}) == ["c", "b", "a", "B"]


def test_tied_scores_agree_with_pytrec_eval():
    run = {"q": {"d1": 1.0, "d2": 1.0, "d3": 1.0, "d4": 0.5}}
    qrels = {"q": {"d1": 2, "d3": 0, "d4": 1}}
    _check_against_pytrec(run, qrels, rel_level=1)


def test_ndcg_hand_computed():
    # ranked gains 0, 2, 1 with ideal 2, 1: DCG = 2/log2(3) + 1/2, IDCG = 2 + 1/log2(3).
    value = ndcg_at_k(np.array([[0, 2, 1]]), np.array([[1, 2, 0, 0]]), k=10)
    expected = (2 / math.log2(3) + 0.5) / (2 + 1 / math.log2(3))
    assert value[0] == pytest.approx(expected)
    assert ndcg_at_k(np.array([[3, 1]]), np.array([[0, 0]]), 10)[0] == 0.0  # no judged gain
    assert ndcg_at_k(np.array([[-1, 2]]), np.array([[2, -1]]), 10)[0] == pytest.approx(1 / math.log2(3) / 1)
    assert ndcg_at_k(np.array([[0, 2]]), np.array([[2]]), 1)[0] == 0.0  # cut-off before the hit


def test_binary_metrics_hand_computed():
    rel = np.array([[False, True, False, True], [False, False, False, False]])
    num = np.array([3, 0])
    np.testing.assert_allclose(recall_at_k(rel, num, 2), [1 / 3, 0])
    np.testing.assert_allclose(mrr_at_k(rel, 10), [0.5, 0])
    np.testing.assert_allclose(mrr_at_k(rel, 1), [0, 0])
    np.testing.assert_allclose(precision_at_k(rel, 10), [0.2, 0])
    np.testing.assert_allclose(average_precision(rel, num), [(1 / 2 + 2 / 4) / 3, 0])


def test_duplicates_in_run_count_once():
    qrels = {"q": {"a": 1, "b": 1}}
    out = evaluate_run({"q": ["a", "a", "b"]}, qrels, ("mrr@10", "map", "precision@2"))
    assert out["map"] == 1.0 and out["precision@2"] == 1.0


def test_unknown_metric_names_it():
    with pytest.raises(ValueError, match="ndcg@x"):
        evaluate_run({}, {"q": {"a": 1}}, ("ndcg@x",))
    with pytest.raises(ValueError, match="rbo"):
        evaluate_run({}, {"q": {"a": 1}}, ("rbo",))


def test_rbo_hand_computed():
    assert rbo([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert rbo([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], p=0.5) == pytest.approx(1.0)
    assert rbo([1, 2], [3, 4]) == 0.0
    assert rbo([], []) == 1.0 and rbo([], [1]) == 0.0
    # Equal length 2, swapped: X1 = 0, X2 = 2 -> (1-p)/p * (p^2 * 2/2) + (2/2) p^2 = (1-p) p + p^2 = p.
    assert rbo(["a", "b"], ["b", "a"], p=0.9) == pytest.approx(0.9)
    # Uneven: S = [a], L = [a, b]: X1 = 1, X2 = 1, s = 1, l = 2.
    p = 0.9
    expected = (1 - p) / p * (p + p**2 / 2 + 1 * (2 - 1) / (1 * 2) * p**2) + (0 / 2 + 1) * p**2
    assert rbo(["a"], ["a", "b"], p) == pytest.approx(expected)
    assert rbo(["a"], ["a", "b"], p) == rbo(["a", "b"], ["a"], p)
    assert rbo([1, 1, 2], [1, 2]) == pytest.approx(1.0)  # repeats count once


def test_write_trec_run_round_trip(tmp_path):
    path = tmp_path / "run.txt"
    write_trec_run(path, {"q1": [("a", 0.5), ("b", 2.0), ("c", 0.5)], "q2": [("x", np.float64(1.0))]}, "tag")
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 b 1 2.0 tag"
    assert [line.split()[2] for line in lines[:3]] == ["b", "c", "a"]
    assert lines[3] == "q2 Q0 x 1 1.0 tag"
    back = _scored_run(path)
    assert rank_from_scores(back["q1"]) == ["b", "c", "a"]
