"""The evaluate stage averages over the queries it evaluated, whatever else the judgments file covers."""

from __future__ import annotations

import pytest
from datasets import Dataset

from clitools import REPO
from rerank_rl.data_synthesis.builtin import generate_examples, qrels_of
from rerank_rl.rl.config import load_recipe
from rerank_rl.rl.evaluate import first_stage_run, score_runs
from rerank_rl.rl.stages.evaluation import evaluate_checkpoint


def test_figures_average_over_the_evaluated_queries_only(tmp_path, tiny_lm_path):
    examples = generate_examples(2, candidates=4, seed=7)
    Dataset.from_list(examples).save_to_disk(str(tmp_path / "data" / "eval"))
    qrels = qrels_of(examples)
    expected = score_runs({"f": first_stage_run(examples)}, qrels, 2, metrics=["ndcg@10"])["f"]["ndcg@10"]
    judged_elsewhere = {f"other{i}": {"x": 3} for i in range(6)}  # e.g. data.eval.max_queries cut the list
    config = load_recipe(REPO / "configs" / "grouprank_tiny.yaml",
                         [f"model.name={tiny_lm_path}", "evaluate.window=4", "evaluate.stride=4"])
    payload = evaluate_checkpoint(config, tmp_path, str(tiny_lm_path), "after", qrels={**qrels, **judged_elsewhere})
    assert payload["first_stage"]["queries"] == 2
    assert payload["first_stage"]["ndcg@10"] == pytest.approx(expected) and expected > 0.3
