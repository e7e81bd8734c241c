"""`rerank-rl reward score`: summary figures, JSON output, user reward files and one-line input errors."""

from __future__ import annotations

import argparse
import json

import pytest

from rerank_rl.rewards.cli import add_reward_parser, read_completions

LABELS = [3, 0, 1, 0]
GOOD = '<reason>r</reason><answer>{"[1]": 9, "[3]": 5}</answer>'


def parse(argv):
    parser = argparse.ArgumentParser(prog="rerank-rl")
    add_reward_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def score(argv) -> int:
    args = parse(argv)
    return args.func(args)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def completions_file(tmp_path):
    rows = [
        {"qid": "q1", "completion": GOOD, "labels": LABELS, "doc_ids": list("abcd")},
        {"qid": "q1", "completion": GOOD, "labels": LABELS, "doc_ids": list("abcd")},
        {"qid": "q2", "completion": "no tags", "labels": LABELS, "doc_ids": list("abcd")},
        {"qid": "q2", "completion": [{"role": "assistant", "content": "<reason>r</reason><answer>{}</answer>"}],
         "labels": LABELS, "doc_ids": list("abcd")},
    ]
    return write_jsonl(tmp_path / "completions.jsonl", rows)


def test_json_summary(completions_file, capsys):
    assert score(["reward", "score", "--reward", "grouprank,ndcg@10", "--input", str(completions_file), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["completions"] == 4
    grouprank = out["rewards"]["grouprank"]
    total = grouprank["components"]["total"]
    assert total["count"] == 4 and total["min"] == -0.5 and total["max"] == pytest.approx(total["max"])
    assert total["zero_variance_groups"] == 0.5  # q1: two equal rewards; q2: -0.5 and -0.1
    assert grouprank["format_failures"] == 0.5
    assert grouprank["components"]["ndcg"]["count"] == 2
    assert out["rewards"]["ndcg@10"]["components"]["total"]["mean"] == pytest.approx(0.5)


def test_table_output(completions_file, capsys):
    assert score(["reward", "score", "--reward", "grouprank", "--input", str(completions_file)]) == 0
    out = capsys.readouterr().out
    assert "grouprank" in out and "zero-var" in out and "format_ok" in out


def test_user_reward_file(tmp_path, completions_file, capsys):
    plugin = tmp_path / "plugin.py"
    plugin.write_text("def has_reason(prompts, completions, **kw):\n    return [float('<reason>' in str(c)) for c in completions]\n")
    spec = f"{plugin}:has_reason"
    assert score(["reward", "score", "--reward", spec, "--input", str(completions_file), "--json"]) == 0
    total = json.loads(capsys.readouterr().out)["rewards"][spec]["components"]["total"]
    assert total["mean"] == 0.75 and total["count"] == 4


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"completion": "a"}\n{"completion": \n', ":2: invalid JSON"),
        ('[1, 2]\n', ":1: expected a JSON object"),
        ('\n{"qid": 1}\n', ":2: missing the 'completion' key"),
        ("", ": no completions"),
    ],
)
def test_malformed_input_names_file_and_line(tmp_path, content, message):
    from rerank_rl.rl.errors import UserError

    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(UserError) as error:
        read_completions(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value)
    assert "\n" not in str(error.value)


def test_cli_errors_are_one_line_user_errors(tmp_path, completions_file):
    from rerank_rl.rl.errors import UserError

    with pytest.raises(UserError, match="no such file"):
        score(["reward", "score", "--reward", "grouprank", "--input", str(tmp_path / "none.jsonl")])
    with pytest.raises(UserError, match="unknown reward 'nope'"):
        score(["reward", "score", "--reward", "nope", "--input", str(completions_file)])
