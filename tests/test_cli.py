"""`rerank-rl` as a user runs it (a subprocess): first-stage figures on TREC DL, and one-line errors for bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest


from clitools import run_cli

FIRST_STAGE = [
    ("BM25/retrieve_results_dl19.json", "dl19", 0.5058),
    ("BM25/retrieve_results_dl21.json", "dl21", 0.4458),
    ("SPLADE_PP/retrieve_results_dl19.json", "dl19", 0.7308),
    ("BM25/trec_results_dl19.txt", "dl19", 0.5058),  # a TREC run scores the same as its rank_llm JSON
]


def evaluate(candidates, qrels, *extra: str):
    return run_cli("evaluate", "--first-stage", "--candidates", str(candidates), "--qrels", str(qrels), *extra)


def assert_user_error(result, *fragments: str) -> str:
    """Exit code 2, nothing on stdout, exactly one `error: ...` line on stderr naming each fragment."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.mark.data
@pytest.mark.parametrize("candidates, year, ndcg10", FIRST_STAGE)
def test_first_stage_figures(shared_data, candidates, year, ndcg10):
    root = shared_data / "trec_dl"
    result = evaluate(root / candidates, root / "qrels" / f"qrels.{year}-passage.txt", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["ndcg@10"] == pytest.approx(ndcg10, abs=1e-4)
    assert {"recall@100", "mrr@10", "queries"} <= set(out) and out["rel_level"] == 2
    assert out["queries"] == (43 if year == "dl19" else 53)


@pytest.mark.data
def test_first_stage_table(shared_data):
    root = shared_data / "trec_dl"
    result = evaluate(root / "BM25/retrieve_results_dl19.json", root / "qrels/qrels.dl19-passage.txt")
    assert result.returncode == 0, result.stderr
    assert "ndcg@10" in result.stdout and "0.5058" in result.stdout and "first_stage" in result.stdout


@pytest.fixture
def qrels(tmp_path):
    path = tmp_path / "qrels.txt"
    path.write_text("q1 0 d1 2\nq1 0 d2 0\nq2 0 d3 1\n")
    return path


@pytest.fixture
def candidates(tmp_path):
    hits = [{"qid": "q1", "docid": d, "content": f"text {d}", "score": s, "rank": r}
            for r, (d, s) in enumerate([("d2", 3.0), ("d1", 2.0)], 1)]
    path = tmp_path / "candidates.json"
    path.write_text(json.dumps([{"query": "first question", "hits": hits}], indent=1))
    return path


def test_small_files_score(candidates, qrels):
    out = json.loads(evaluate(candidates, qrels, "--json").stdout)
    assert out["queries"] == 2 and out["mrr@10"] == pytest.approx(0.25)  # q1: hit at rank 2; q2 absent scores 0


def test_truncated_candidates_json(tmp_path, candidates, qrels):
    truncated = tmp_path / "truncated.json"
    text = candidates.read_text()
    truncated.write_text(text[: len(text) // 2])
    line = assert_user_error(evaluate(truncated, qrels), str(truncated), "invalid JSON")
    assert line.startswith(f"error: {truncated}:")


def test_qrels_line_with_three_fields(tmp_path, candidates):
    bad = tmp_path / "qrels3.txt"
    bad.write_text("q1 0 d1 1\nq1 d2 1\n")
    assert_user_error(evaluate(candidates, bad), f"{bad}:2:", "needs 4 fields", "found 3")


def test_run_with_duplicated_doc_id(tmp_path, qrels):
    run = tmp_path / "run.txt"
    run.write_text("q1 Q0 d1 1 3.0 bm25\nq1 Q0 d2 2 2.0 bm25\nq1 Q0 d1 3 1.0 bm25\n")
    assert_user_error(evaluate(run, qrels), f"{run}:3:", "'d1' appears twice")


def test_unknown_config_key_in_override():
    assert_user_error(run_cli("train", "configs/grouprank.yaml", "--set", "bogus.key=1"),
                      "configs/grouprank.yaml", "--set bogus.key=1", "unknown key 'bogus'")


def test_set_takes_several_overrides():
    # the second KEY=VALUE after one --set is read as an override too, and checked
    assert_user_error(run_cli("train", "configs/grouprank.yaml", "--set", "sft.max_steps=2", "bogus.key=1"),
                      "--set bogus.key=1", "unknown key 'bogus'")


def test_unknown_config_key_in_file(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("paradigm: groupwise\nrl:\n  max_step: 3\n")
    assert_user_error(run_cli("train", str(recipe)), str(recipe), "unknown key 'rl.max_step'")


def test_missing_files(tmp_path, candidates, qrels):
    missing = tmp_path / "absent.txt"
    assert_user_error(evaluate(candidates, missing), str(missing), "no such file")
    assert_user_error(evaluate(missing, qrels), str(missing), "no such file")
    assert_user_error(run_cli("train", str(tmp_path / "absent.yaml")), "no such config file")
    assert_user_error(evaluate(tmp_path, qrels), str(tmp_path), "is not a file")


def test_unreadable_files(tmp_path, candidates):
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"q1 0 d1 1\nq1 0 caf\xe9 1\n")
    assert_user_error(evaluate(candidates, latin), f"{latin}:2:", "not UTF-8")
    broken = tmp_path / "qrels.txt.gz"
    packed = gzip.compress("".join(f"q{i} 0 d{i * 7919 % 10007} {i % 3}\n" for i in range(2000)).encode())
    broken.write_bytes(packed[: len(packed) // 2])  # a download cut short
    assert_user_error(evaluate(candidates, broken), str(broken), "unreadable")


def test_evaluate_needs_a_mode(candidates, qrels):
    result = run_cli("evaluate", "--candidates", str(candidates), "--qrels", str(qrels))
    assert_user_error(result, "--first-stage")


def test_reward_score(tmp_path):
    good = '<reason>r</reason><answer>{"[1]": 9, "[2]": 1, "[3]": 4}</answer>'
    rows = [
        {"qid": "q1", "completion": good, "doc_ids": ["a", "b", "c"], "labels": [2, 0, 1]},
        {"qid": "q1", "completion": "no answer", "doc_ids": ["a", "b", "c"], "labels": [2, 0, 1]},
    ]
    path = tmp_path / "completions.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_cli("reward", "score", "--reward", "ndcg@10,grouprank", "--input", str(path), "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["completions"] == 2
    ndcg = out["rewards"]["ndcg@10"]["components"]["total"]
    assert ndcg["count"] == 2 and ndcg["max"] == pytest.approx(1.0) and ndcg["min"] == 0.0
    assert out["rewards"]["grouprank"]["format_failures"] == 0.5
    table = run_cli("reward", "score", "--reward", "ndcg@10", "--input", str(path))
    assert table.returncode == 0 and "ndcg@10" in table.stdout


def test_reward_score_errors(tmp_path):
    path = tmp_path / "completions.jsonl"
    path.write_text('{"qid": "q1", "completion": "x"}\n{"qid": "q2", "completion": \n')
    assert_user_error(run_cli("reward", "score", "--reward", "ndcg@10", "--input", str(path)),
                      f"{path}:2:", "invalid JSON")
    path.write_text('{"qid": "q1", "completion": "x"}\n')
    assert_user_error(run_cli("reward", "score", "--reward", "ndcg@10", "--input", str(path)), "labels")
    assert_user_error(run_cli("reward", "score", "--reward", "nope", "--input", str(path)), "unknown reward 'nope'")
