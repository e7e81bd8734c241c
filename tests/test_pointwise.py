"""The pointwise (ERank) paradigm: prompts, the s * P(s) score from token log-probabilities, per-passage training
units with the reference score, whole lists per RL step, and the recipe end to end on the tiny model."""

from __future__ import annotations

import json
import math

import pytest
from datasets import Dataset

from clitools import REPO, assert_export_reproduces, run_cli
from rerank_rl.rl.config import load_recipe
from rerank_rl.rl.errors import UserError
from rerank_rl.rl.paradigms import get_paradigm
from rerank_rl.rl.paradigms.pointwise import answer_probability
from rerank_rl.rl.stages.grpo import check_whole_lists

POINTWISE = get_paradigm("pointwise")
RECIPE = REPO / "configs" / "erank.yaml"


@pytest.mark.parametrize("variant", POINTWISE.variants)
def test_gold_answer_parses_back(variant):
    assert POINTWISE.parse(POINTWISE.gold_answer([2], variant), 1, variant) == 7.0  # grade 2 of 0-3 -> 7
    assert POINTWISE.parse(POINTWISE.gold_answer([0], variant, teacher_scores=[8.6]), 1, variant) == 9.0
    with pytest.raises(ValueError, match="one passage"):
        POINTWISE.build_messages("q", ["a", "b"])


def test_answer_probability_multiplies_the_number_tokens():
    tokens = [("<answer>", math.log(0.9)), ("1", math.log(0.5)), ("0", math.log(0.8)), ("</answer>", 0.0)]
    assert answer_probability("<answer>10</answer>", tokens) == pytest.approx(0.4)
    assert answer_probability("<answer>10</answer>", None) == 1.0


def _examples() -> list[dict]:
    return [{"qid": "q", "query": "q", "doc_ids": ["a", "b", "c"], "doc_texts": ["grade 3", "grade 9", "grade 5"],
             "first_stage_scores": [3.0, 2.0, 1.0], "labels": [0, 1, 0]}]


class _Oracle:
    """Answers the grade written in the passage, with P(s) = 0.5 for grade 9 and 1 otherwise."""

    def generate_with_logprobs(self, conversations, max_new_tokens):
        out = []
        for conv in conversations:
            grade = conv[1]["content"].split("grade ")[1].split()[0]
            out.append((f"<answer>{grade}</answer>", [("<answer>", 0.0), (grade, math.log(0.5 if grade == "9" else 1))]))
        return out


def test_rank_scores_s_times_p_and_counts_answers():
    stats: dict = {}
    run = POINTWISE.rank(_examples(), _Oracle(), {"variant": "answer_only", "max_doc_chars": 50}, stats)
    scores = dict(run["q"])
    assert scores["b"] == pytest.approx(0.45 - 1e-6) and scores["c"] == pytest.approx(0.5 - 2e-6)
    assert stats == {"passages": 3, "unparsed": 0, "grade_counts": {"3": 1, "5": 1, "9": 1}}
    plain = POINTWISE.rank(_examples(), lambda convs, n: ["<answer>4</answer>", "junk", "<answer>9</answer>"],
                           {"variant": "answer_only", "max_doc_chars": 50})
    assert [round(s, 3) for _, s in plain["q"]] == [0.4, 0.0, 0.9]


def test_training_units_and_rl_rows_carry_the_reference_score():
    group = {**_examples()[0], "qid": "q#0", "source_qid": "q", "labels": [0, 3, 1], "teacher_scores": None}
    units = POINTWISE.training_units([group])
    assert [u["doc_ids"] for u in units] == [["a"], ["b"], ["c"]] and {u["qid"] for u in units} == {"q#0"}
    config = load_recipe(RECIPE)
    rows = POINTWISE.rl_rows(Dataset.from_list(units), config)
    assert rows["label"] == [0, 3, 1] and rows["ref_score"] == [0.0, 10.0, 3.0] and rows["doc_id"] == ["a", "b", "c"]
    check_whole_lists(rows, 3)
    with pytest.raises(UserError, match="would split list 'q#0'"):
        check_whole_lists(rows, 2)


def test_recipe_checks():
    assert load_recipe(RECIPE).paradigm == "pointwise"
    with pytest.raises(UserError, match="must be a multiple of the one list size"):
        load_recipe(RECIPE, ["rl.prompts_per_step=3"])
    with pytest.raises(UserError, match="'erank_rr' requires <think> and <answer> tags"):
        load_recipe(RECIPE, ["rl.rewards={erank_rr: 1.0}"])
    with pytest.raises(UserError, match="'rank_r1' reads 'choice' answers, but the pointwise paradigm"):
        load_recipe(RECIPE, ["variant=reasoning", "rl.rewards={rank_r1: 1.0}"])


# A plug-in reward that records which lists each reward call saw.
RECORDER = """
import json, os
def record(prompts, completions, qid, **columns):
    with open(os.environ["CALLS_FILE"], "a") as out:
        out.write(json.dumps(qid) + "\\n")
    return [0.0] * len(completions)
"""


def test_erank_recipe_end_to_end(tmp_path, tiny_lm_path, monkeypatch):
    run_dir = tmp_path / "run"
    (tmp_path / "recorder.py").write_text(RECORDER)
    monkeypatch.setenv("CALLS_FILE", str(tmp_path / "calls.jsonl"))
    result = run_cli("train", str(RECIPE), "--output-dir", str(run_dir), "--set", f"model.name={tiny_lm_path}",
                     "ray.enabled=false", "sft.max_steps=2", "sft.save_steps=1", "rl.max_steps=2", "rl.save_steps=1",
                     "data.train=[{format: builtin, num_queries: 3, depth: 6}]", "data.eval.num_queries=2",
                     "data.eval.depth=5", "evaluate.before_training=false",
                     f'rl.rewards={{erank_rr_answer_only: 1.0, "{tmp_path}/recorder.py:record": 0.0}}', timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert len(calls) == 2  # one per step, each holding one whole list: 4 passages x 2 rollouts
    assert all(len(qids) == 8 and len(set(qids)) == 1 for qids in calls)
    state = json.loads((run_dir / "state.json").read_text())
    assert list(state["done"]) == ["data", "sft", "rl", "eval_after", "export"]
    history = json.loads((run_dir / "rl/trainer_state.json").read_text())["log_history"]
    assert history[0]["num_tokens"] > 0
    after = json.loads((run_dir / "metrics/after.json").read_text())
    assert after["paradigm"] == "pointwise" and after["answers"]["passages"] == 10
    bundle = json.loads((run_dir / "export/bundle.json").read_text())
    assert bundle["paradigm"] == "pointwise" and bundle["answer_format"] == "grade"
    # the report's grade table counts pointwise answers as they are named (grades, unparsed), not as "?"
    report = (run_dir / "report.md").read_text()
    assert f"| {after['answers']['unparsed']}/{after['answers']['passages']} |" in report and "?/" not in report

    assert_export_reproduces(run_dir, "pointwise", tmp_path)
