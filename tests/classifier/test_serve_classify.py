"""`rerank-rl serve` over a classifier export: /v1/classify answers with the scores and decisions of
`rerank-rl evaluate --paradigm classifier` on the same export."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from clitools import http, serving

from rerank_rl.rl.paradigms.classifier.config import ModelConfig

LABELS = ["sports", "business", "science"]
ROWS = [("the striker scored twice in the final", "sports"), ("shares fell after the earnings report", "business"),
        ("the probe measured the comet's ice", "science"), ("the goalkeeper saved a penalty", "sports"),
        ("the bank cut its interest rate", "business"), ("a new species of frog was described", "science")]


@pytest.fixture(scope="module", params=["uni_encoder", "bi_encoder"])
def classifier_export(request, tmp_path_factory, tiny_encoder):
    from rerank_rl.rl.paradigms.classifier.export import export_model
    from rerank_rl.rl.paradigms.classifier.model import build_model

    model, tokenizer = build_model(ModelConfig(encoder=tiny_encoder, projector_init="random",
                                               architecture=request.param), seed=3)
    return export_model(model, tokenizer, tmp_path_factory.mktemp("classifier") / "export", max_length=64)


def test_classify_gives_evaluates_scores_and_decisions(classifier_export, tmp_path, capsys):
    from rerank_rl.rl.cli import main
    from rerank_rl.rl.paradigms.classifier.evaluate import classification_metrics, predict_probs
    from rerank_rl.rl.paradigms.classifier.model import load_model

    data = tmp_path / "data.csv"
    with data.open("w", newline="") as handle:
        csv.writer(handle).writerows([("text", "label"), *ROWS])
    assert main(["evaluate", "--paradigm", "classifier", "--model", str(classifier_export), "--data", str(data),
                 "--labels", ",".join(LABELS), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    with serving(str(classifier_export)) as (url, _):
        assert http(url + "/v1/models")[1]["data"][0]["paradigm"] == "classifier"
        status, answer = http(url + "/v1/classify", {"texts": [t for t, _ in ROWS], "labels": LABELS})
        assert status == 200, answer
        status, refused = http(url + "/v1/rerank", {"query": "q", "documents": ["a"]})
        assert status == 400 and "/v1/classify" in refused["error"]["message"]
        status, bad = http(url + "/v1/classify", {"texts": ["a"], "labels": ["x", "x"]})
        assert status == 422 and "labels holds a name twice" in bad["error"]["message"]
        assert http(url + "/health")[0] == 200  # still serving

    served = np.array([[{s["label"]: s["score"] for s in r["scores"]}[label] for label in LABELS]
                       for r in answer["results"]])
    model, tokenizer = load_model(classifier_export)
    assert np.abs(served - predict_probs(model, tokenizer, [t for t, _ in ROWS], LABELS, max_length=64)).max() < 1e-6
    picks = np.array([[label in r["labels"] for label in LABELS] for r in answer["results"]])
    gold = np.array([[label == g for label in LABELS] for _, g in ROWS])
    metrics = classification_metrics(picks, gold, LABELS)
    assert {k: metrics[k] for k in ("macro_f1", "micro_f1", "accuracy")} == \
        {k: evaluated[k] for k in ("macro_f1", "micro_f1", "accuracy")}
    assert picks.sum(1).tolist() == [1] * len(ROWS)  # single-label export: one decision per text
