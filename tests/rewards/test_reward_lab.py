"""The reward lab: hacking probes, distributions and plots, agreement of rewards, live rollouts of a model."""

from __future__ import annotations

import argparse
import json

import pytest

from rerank_rl.data_synthesis.builtin import generate_examples
from rerank_rl.rewards.cli import add_reward_parser, read_completions
from rerank_rl.rewards.distributions import zero_variance_share
from rerank_rl.rewards.parsers import parse_permutation, parse_scores
from rerank_rl.rewards import probes
from rerank_rl.rewards.probes import PROBES, ProbeFormat, build_probes, get_format, register_format
from rerank_rl.rewards.probing import probe_reward
from rerank_rl.rewards.registry import get_reward
from rerank_rl.rl.errors import UserError


def run(argv, capsys=None):
    parser = argparse.ArgumentParser(prog="rerank-rl")
    add_reward_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    return (code, json.loads(capsys.readouterr().out)) if capsys else code


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def list_rows(queries=20, seed=3):
    """Built-in queries (graded 0-3, first-stage order already fair, not perfect), one labelled row each."""
    keys = ("qid", "doc_ids", "doc_texts", "labels")
    return [{k: ex[k] for k in keys} for ex in generate_examples(queries, seed=seed)]


def point_rows(binary: bool):
    rows = []
    for ex in list_rows():
        for doc, text, label in zip(ex["doc_ids"], ex["doc_texts"], ex["labels"]):
            grade = int(label >= 2) if binary else label  # the teacher agrees with the labels, as gold assumes
            rows.append({"qid": ex["qid"], "doc_id": doc, "doc_text": text, "label": grade,
                         "teacher_score": 10 * grade / (1 if binary else 3)})
    return rows


def columns_of(rows):
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return {k: [r.get(k) for r in rows] for k in keys}, len(rows)


# -- probes ---------------------------------------------------------------------------------------------------------


LENGTH_PLUGIN = """
def verbose(prompts, completions, **columns):
    # pays for length: the kind of reward the padding probe exists for
    return [min(1.0, len(str(c)) / 2000) for c in completions]
"""


def test_length_paying_plugin_is_flagged_by_padding(tmp_path, capsys):
    plugin = tmp_path / "hackable.py"
    plugin.write_text(LENGTH_PLUGIN)
    data = write_jsonl(tmp_path / "rows.jsonl", list_rows())
    spec = f"{plugin}:verbose"
    code, out = run(["reward", "probe", "--reward", spec, "--input", str(data), "--json"], capsys)
    entry = out["rewards"][spec]
    assert code == 0 and entry["format"] == "scores"  # a plug-in gets the default paradigm's format
    assert {"repeated", "extra_ids", "copied_reasoning"} <= set(entry["flagged"])
    assert entry["probes"]["repeated"]["above_gold_rate"] == 1.0
    assert entry["probes"]["empty_reasoning"]["above_gold_rate"] == 0.0  # shorter than gold: never preferred
    assert "constant" not in entry["flagged"]


# What each built-in's documented design says: the probes that beat it (none, but for ERank on graded labels), and
# the probes it must score strictly below gold on every row (its format and validity checks).
LIST_EXPECTED = {
    "grouprank": ([], {"reverse", "wrong_format", "constant", "first_stage"}),
    "grouprank_answer_only": ([], {"reverse", "wrong_format"}),
    "ndcg@10": ([], {"reverse"}),
    "rbo": ([], {"reverse"}),
    "mrr@10": ([], {"reverse"}),
    "recall@5": ([], set()),
    "reasonrank": ([], {"reverse", "partial", "repeated", "extra_ids"}),
    "rearank": ([], {"reverse", "partial", "repeated", "extra_ids"}),
    "mm_r5": ([], {"reverse", "partial", "extra_ids"}),
    "rank_r1": ([], {"reverse", "wrong_format", "repeated", "extra_ids"}),
}


@pytest.mark.parametrize("spec", sorted(LIST_EXPECTED))
def test_builtin_list_rewards_pass_their_probes(spec):
    flagged, below = LIST_EXPECTED[spec]
    report = probe_reward(get_reward(spec), *columns_of(list_rows()))
    assert report["flagged"] == flagged
    for name in below:
        assert report["probes"][name]["below_gold_rate"] == 1.0, name
    # no built-in judges the reasoning: both reasoning probes tie wherever the format has reasoning
    for name in ("empty_reasoning", "copied_reasoning"):
        rates = report["probes"][name]
        assert rates is None or rates["tie_rate"] == 1.0


def test_plain_metrics_ignore_format_but_grouprank_does_not():
    columns, size = columns_of(list_rows())
    assert probe_reward(get_reward("ndcg@10"), columns, size)["probes"]["wrong_format"]["tie_rate"] == 1.0
    lenient = probe_reward(get_reward("grouprank", strict_json=False), columns, size)
    assert lenient["probes"]["wrong_format"]["tie_rate"] == 1.0


@pytest.mark.parametrize("spec", ["erank_rr", "erank_se", "erank_ndcg"])
def test_erank_rewards_pass_on_binary_labels(spec):
    report = probe_reward(get_reward(spec), *columns_of(point_rows(binary=True)))
    assert report["format"] == "grade" and report["flagged"] == []
    assert report["probes"]["wrong_format"]["below_gold_rate"] == 1.0
    assert report["probes"]["repeated"]["below_gold_rate"] == 1.0


def test_erank_rr_pays_a_lower_graded_positive_for_a_higher_score():
    """Documented: r_RR rewards a positive's rollout by its rank only, so with graded labels the graded gold (a
    grade-1 passage scored 3) loses to probes that score it higher."""
    report = probe_reward(get_reward("erank_rr"), *columns_of(point_rows(binary=False)))
    assert "constant" in report["flagged"] and "reverse" in report["flagged"]
    assert report["probes"]["constant"]["mean_gap"] < -0.5  # yet far worse on average


def test_probe_texts_follow_the_format():
    rows = list_rows(3)
    columns, size = columns_of(rows)
    fmt = get_format("scores")
    kept, gold, probes = build_probes(fmt, columns, size, ("reason", "answer"))
    labels = rows[0]["labels"]
    n = len(labels)
    parsed = parse_scores(gold[0], ("reason", "answer"), strict=True)
    assert parsed.format_ok and [parsed.value[i + 1] for i in range(n)] == [round(10 * x / 3) for x in labels]
    assert not parse_scores(probes["wrong_format"][0], ("reason", "answer"), strict=True).ok
    assert parse_scores(probes["wrong_format"][0]).value == parsed.value  # the right scores, other syntax
    assert len(parse_scores(probes["partial"][0]).value) == n // 2
    assert max(parse_scores(probes["extra_ids"][0]).value) == n + 5
    assert set(parse_scores(probes["constant"][0]).value.values()) == {5.0}
    assert "<reason></reason>" in probes["empty_reasoning"][0]
    assert rows[0]["doc_texts"][-1] in probes["copied_reasoning"][0]
    chain = build_probes(get_format("permutation"), columns, size)[2]["reverse"][0]
    ids = parse_permutation(chain).value
    assert [labels[i - 1] for i in ids] == sorted(labels)  # worst first


def test_a_new_format_gets_every_probe_without_cli_changes(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(probes, "_FORMATS", dict(probes._FORMATS))  # the test's format leaves with the test

    @register_format
    class Csv(ProbeFormat):  # e.g. a paradigm answering "7,0,3"
        name, tags = "csv_test", ("answer",)

        def answers(self, unit, scores):
            return [",".join(str(round(s)) for s in scores)]

        def repeated(self, unit, scores):
            return [",".join(str(round(s)) for s in scores) * 3]

    plugin = tmp_path / "csv_reward.py"
    plugin.write_text(LENGTH_PLUGIN + "\nverbose.answer_format = 'csv_test'\n")
    data = write_jsonl(tmp_path / "rows.jsonl", list_rows(4))
    spec = f"{plugin}:verbose"
    _, out = run(["reward", "probe", "--reward", spec, "--input", str(data), "--json"], capsys)
    entry = out["rewards"][spec]
    assert entry["format"] == "csv_test" and "repeated" in entry["flagged"] and "constant" not in entry["flagged"]
    assert entry["probes"]["partial"] is None and entry["probes"]["wrong_format"] is None  # not defined for csv
    assert list(entry["probes"]) == list(PROBES)


def test_probe_input_errors_are_one_line(tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", [{"qid": "q", "completion": "x"}])
    with pytest.raises(UserError, match="needs the dataset column 'labels'") as error:
        run(["reward", "probe", "--reward", "ndcg@10", "--input", str(data)])
    assert str(data) in str(error.value) and "\n" not in str(error.value)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"labels": [1]}\n{"labels": \n')
    with pytest.raises(UserError, match=f"{bad}:2: invalid JSON"):
        run(["reward", "probe", "--reward", "ndcg@10", "--input", str(bad)])
    with pytest.raises(UserError, match="no probes for the output format 'labels'"):
        run(["reward", "probe", "--reward", "label_f1_micro", "--input", str(data)])


# -- distributions, plots, agreement ---------------------------------------------------------------------------------


def test_zero_variance_share_at_a_group_size():
    values = [1.0, 1.0, 2.0, 3.0, 3.0, 3.0]
    groups = {"a": [0, 1, 2], "b": [3, 4, 5]}
    assert zero_variance_share(values, groups) == 0.5
    assert zero_variance_share(values, groups, 2) == pytest.approx((1 / 3 + 1) / 2)  # C(2,2)/C(3,2) and 1
    assert zero_variance_share(values, groups, 4) is None  # no group holds 4 rows


def rollout_file(tmp_path):
    """Four completions per query of varying quality: gold, first-stage, reversed, unparsable."""
    rows = []
    for ex in list_rows(6):
        n = len(ex["labels"])
        gold = {f"[{i + 1}]": 3 * x for i, x in enumerate(ex["labels"])}
        first = {f"[{i + 1}]": n - i for i in range(n)}
        reverse = {k: 9 - v for k, v in gold.items()}
        for answer in (json.dumps(gold), json.dumps(first), json.dumps(reverse), "none"):
            rows.append({**ex, "completion": f"<answer>{answer}</answer>"})
    return write_jsonl(tmp_path / "rollouts.jsonl", rows)


def test_plot_writes_pngs(tmp_path, capsys):
    data = rollout_file(tmp_path)
    folder = tmp_path / "plots"
    code, out = run(["reward", "score", "--reward", "grouprank_answer_only,ndcg@10", "--input", str(data),
                     "--plot", str(folder), "--group-size", "2", "--json"], capsys)
    names = sorted(p.name for p in folder.iterdir())
    assert code == 0 and len(out["plots"]) == len(names)
    for component in ("total", "ndcg", "recall", "js", "format_ok", "group_spread"):
        assert f"grouprank_answer_only__{component}.png" in names
    assert "ndcg@10__total.png" in names and "ndcg@10__group_spread.png" in names
    assert all((folder / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)
    total = out["rewards"]["grouprank_answer_only"]["components"]["total"]
    assert total["zero_variance_groups"] == 0.0  # four different qualities: no pair of rows ties


def test_compare_rank_correlation(tmp_path, capsys):
    data = rollout_file(tmp_path)
    plugin = tmp_path / "neg.py"
    plugin.write_text("from rerank_rl.rewards import get_reward\n_n = get_reward('ndcg@10')\n"
                      "def negative(prompts, completions, **c):\n"
                      "    return [-v for v in _n(prompts, completions, **c)]\n")
    neg = f"{plugin}:negative"
    code, out = run(["reward", "compare", "--reward", "grouprank_answer_only", "--reward", neg, "--input", str(data),
                     "--json"], capsys)
    assert code == 0 and out["reference"] == "ndcg@10"
    vs = out["vs_reference"]
    assert vs[neg]["spearman"] == pytest.approx(-1.0) and vs[neg]["kendall"] == pytest.approx(-1.0)
    assert vs["grouprank_answer_only"]["spearman"] > 0.9 and vs["grouprank_answer_only"]["groups"] == 6
    pair = out["pairs"][f"grouprank_answer_only vs {neg}"]
    assert pair["rows"] == 24 and pair["spearman"] < -0.9


# -- live rollouts ---------------------------------------------------------------------------------------------------


def test_live_scoring_on_the_tiny_model(tmp_path, capsys, tiny_lm_path):
    saved = tmp_path / "rollouts.jsonl"
    code, out = run(["reward", "score", "--reward", "grouprank_answer_only,format", "--model", str(tiny_lm_path),
                     "--data", "builtin", "--queries", "2", "--samples", "3", "--docs", "4", "--max-new-tokens", "6",
                     "--save", str(saved), "--json"], capsys)
    assert code == 0 and out["completions"] == 6 and out["rollouts"]["max_new_tokens"] == 6
    assert out["rollouts"]["generate_s"] > 0
    total = out["rewards"]["grouprank_answer_only"]["components"]["total"]
    assert total["count"] == 6
    prompts, completions, columns = read_completions(saved)
    assert len(completions) == 6 and columns["qid"].count(columns["qid"][0]) == 3
    assert all(len(labels) == 4 for labels in columns["labels"])
    assert "[4]" in prompts[0][-1]["content"] and "[5]" not in prompts[0][-1]["content"]


def test_live_scoring_input_errors(tmp_path, tiny_lm_path):
    bad = tmp_path / "ranking.jsonl"
    bad.write_text(json.dumps({"qid": "q", "query": "x", "doc_ids": ["a"], "doc_texts": ["t"], "labels": [1]}) + "\n"
                   + json.dumps({"qid": "r", "query": "x", "doc_ids": ["a", "b"], "doc_texts": ["t"],
                                 "labels": [1, 0]}) + "\n")
    with pytest.raises(UserError, match=f"{bad}:2: .*'doc_texts' has 1 entries"):
        run(["reward", "score", "--reward", "ndcg@10", "--model", str(tiny_lm_path), "--data", str(bad)])
    with pytest.raises(UserError, match="needs --data"):
        run(["reward", "score", "--reward", "ndcg@10", "--model", str(tiny_lm_path)])
    with pytest.raises(UserError, match="neither an export"):
        run(["reward", "score", "--reward", "ndcg@10", "--model", str(tmp_path), "--data", "builtin"])
    with pytest.raises(UserError, match="either --input"):
        run(["reward", "score", "--reward", "ndcg@10"])


def test_bad_labels_and_unwritable_outputs_are_one_line(tmp_path):
    bad = tmp_path / "rows.jsonl"
    bad.write_text('{"qid": "a", "labels": [1, 0]}\n\n{"qid": "b", "labels": ["x", 0]}\n')
    with pytest.raises(UserError, match=f"^{bad}:3: 'labels' must hold numbers"):
        run(["reward", "probe", "--reward", "ndcg@10", "--input", str(bad)])
    data = rollout_file(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot write"):
        run(["reward", "score", "--reward", "ndcg@10", "--input", str(data), "--plot", str(blocker / "plots")])
