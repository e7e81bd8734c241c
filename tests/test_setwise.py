"""The setwise (Rank-R1) paradigm: prompt/answer round trip, the tournament, and the recipe end to end on the tiny
model (SFT, GRPO, evaluate, export, and a reload that reproduces the run's own metrics)."""

from __future__ import annotations

import json
import re

import pytest
from datasets import load_from_disk

from clitools import REPO, assert_export_reproduces, run_cli, scattered_lists, write_candidates
from rerank_rl.rl.config import load_recipe
from rerank_rl.rl.errors import UserError
from rerank_rl.rl.paradigms import get_paradigm
from rerank_rl.rl.paradigms.setwise import tournament_top_k

SETWISE = get_paradigm("setwise")
RECIPE = REPO / "configs" / "rank_r1.yaml"


@pytest.mark.parametrize("variant", SETWISE.variants)
def test_gold_answer_parses_back_to_the_best_passage(variant):
    assert SETWISE.parse(SETWISE.gold_answer([0, 2, 3, 3], variant), 4, variant) == 3
    assert SETWISE.parse(SETWISE.gold_answer([3, 0], variant, teacher_scores=[1.0, 9.0]), 2, variant) == 2
    assert SETWISE.parse("<answer>[7]</answer>", 4) is None  # out of range
    assert SETWISE.parse("no answer", 4) is None
    prompt = SETWISE.build_messages("q?", ["alpha", "beta"], variant)[1]["content"]
    assert "[1] alpha\n[2] beta" in prompt


def _examples(n: int, queries: int = 2) -> list[dict]:
    return scattered_lists(n, queries, lambda quality: f"quality {quality}")


def _oracle(calls: list):
    def generate(conversations, max_new_tokens):
        calls.append(len(conversations))
        out = []
        for conv in conversations:
            quality = [int(q) for q in re.findall(r"\[\d+\] quality (\d+)", conv[1]["content"])]
            out.append(f"<answer>[{quality.index(max(quality)) + 1}]</answer>")
        return out

    return generate


def test_tournament_finds_the_top_k_in_order_with_cached_sets():
    calls: list = []
    examples = _examples(100)
    run = SETWISE.rank(examples, _oracle(calls), {"variant": "answer_only", "window": 20, "top_k": 10,
                                                  "max_doc_chars": 100, "fusion_weight": None})
    for ex in examples:
        ranked = [d for d, _ in sorted(run[ex["qid"]], key=lambda x: -x[1])]
        quality = {d: int(t.split()[1]) for d, t in zip(ex["doc_ids"], ex["doc_texts"])}
        assert [quality[d] for d in ranked[:10]] == list(range(99, 89, -1))
        rest = ranked[10:]
        assert rest == [d for d in ex["doc_ids"] if d not in ranked[:10]]  # first-stage order below the top k
    # per query: 5 sets + the root first, then 2 prompts per extracted passage (its set and the root)
    assert sum(calls) == 2 * (6 + 9 * 2)


def test_unreadable_answers_keep_first_stage_order_and_are_counted():
    stats: dict = {}
    examples = _examples(7, queries=1)
    run = SETWISE.rank(examples, lambda convs, n: ["garbage"] * len(convs),
                       {"variant": "reasoning", "window": 3, "top_k": 7, "max_doc_chars": 100}, stats)
    assert [d for d, _ in sorted(run["q0"], key=lambda x: -x[1])] == examples[0]["doc_ids"]
    assert stats["unparsed"] == stats["prompts"] > 0 and stats["choice_counts"] == {}
    assert "answers unreadable" in SETWISE.describe_answers(stats)
    with pytest.raises(UserError, match="no scores to fuse"):
        SETWISE.rank(examples, None, {"variant": "answer_only", "window": 3, "top_k": 2, "max_doc_chars": 9,
                                      "fusion_weight": 0.5})


def test_tournament_of_a_short_list_asks_nothing_for_single_passages():
    asked = []
    order = tournament_top_k([{"qid": "q", "doc_ids": ["a"]}], lambda jobs: asked.extend(jobs) or [], 4, 3)
    assert order == {"q": [0]} and asked == []


def test_recipe_checks_rewards_and_settings(tmp_path):
    config = load_recipe(RECIPE)
    assert config.paradigm == "setwise" and config.rl.rewards
    with pytest.raises(UserError, match="'grouprank_answer_only' reads 'scores' answers, but the setwise paradigm"):
        load_recipe(RECIPE, ["rl.rewards={grouprank_answer_only: 1.0}"])
    with pytest.raises(UserError, match="'rank_r1' requires <think> and <answer> tags"):
        load_recipe(RECIPE, ["rl.rewards={rank_r1: 1.0}"])
    assert load_recipe(RECIPE, ["variant=reasoning", "rl.rewards={rank_r1: 1.0}"]).variant == "reasoning"
    with pytest.raises(UserError, match="window must hold at least 2"):
        load_recipe(RECIPE, ["evaluate.window=1"])


def test_rank_r1_recipe_end_to_end(tmp_path, tiny_lm_path):
    run_dir = tmp_path / "run"
    result = run_cli("train", str(RECIPE), "--output-dir", str(run_dir), "--set", f"model.name={tiny_lm_path}",
                     "ray.enabled=false", "sft.max_steps=2", "sft.save_steps=1", "rl.max_steps=2", "rl.save_steps=1",
                     "rl.num_generations=2", "data.train=[{format: builtin, num_queries: 4, depth: 6}]",
                     "data.eval.num_queries=2", "data.eval.depth=6",
                     "evaluate.window=3", "evaluate.top_k=3", "evaluate.before_training=false", timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((run_dir / "state.json").read_text())
    assert list(state["done"]) == ["data", "sft", "rl", "eval_after", "export"]
    after = json.loads((run_dir / "metrics/after.json").read_text())
    assert after["paradigm"] == "setwise" and after["answers"]["prompts"] > 0
    bundle = json.loads((run_dir / "export/bundle.json").read_text())
    assert bundle["paradigm"] == "setwise" and bundle["answer_format"] == "choice"
    assert bundle["inference"]["top_k"] == 3 and bundle["inference"]["window"] == 3
    assert "setwise prompts" in (run_dir / "report.md").read_text()

    cands, qrels = write_candidates([dict(r) for r in load_from_disk(str(run_dir / "data/eval"))], tmp_path)
    assert "no inference setting named stride" in run_cli(
        "evaluate", "--model", str(run_dir / "export"), "--candidates", str(cands), "--qrels", str(qrels),
        "--stride", "2").stderr
    assert_export_reproduces(run_dir, "setwise", tmp_path)
