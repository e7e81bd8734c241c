"""`rerank-rl evaluate --paradigm classifier --model DIR --data FILE [--labels "a,b,c"] [--json]`."""

from __future__ import annotations

import json

from rerank_rl.data_synthesis.classification import read_classification_file
from rerank_rl.rl.errors import UserError


def run_classifier_evaluate(args) -> int:
    """Score an exported (or checkpointed) classifier on a classification file; prints macro-F1, micro-F1 and
    accuracy (a JSON object with --json)."""
    from .evaluate import evaluate_model
    from .export import read_bundle
    from .model import load_model

    if not args.model or not args.data:
        raise UserError("evaluate --paradigm classifier needs --model DIR and --data FILE")
    labels = [label.strip() for label in args.labels.split(",") if label.strip()] if args.labels else None
    if args.labels is not None and not labels:
        raise UserError("--labels holds no label names")
    rows = read_classification_file(args.data, labels)
    if args.max_queries:
        rows = rows[: args.max_queries]
    if not rows:
        raise UserError(f"{args.data}: no examples")
    bundle = read_bundle(args.model)
    model, tokenizer = load_model(args.model)
    result = evaluate_model(model, tokenizer, {"data": rows}, seen=set(),
                            max_length=bundle.get("max_length", 160),
                            classification_type=bundle.get("classification_type", "single-label"),
                            threshold=bundle.get("threshold", 0.5))["data"]
    result = {"macro_f1": result["macro_f1"], "micro_f1": result["micro_f1"], "accuracy": result["accuracy"],
              "examples": result["examples"], "labels": rows[0]["label_names"]}
    if args.json:
        print(json.dumps(result))
    else:
        for key in ("macro_f1", "micro_f1", "accuracy"):
            print(f"{key:<10} {result[key]:.4f}")
        print(f"{'examples':<10} {result['examples']}")
    return 0
