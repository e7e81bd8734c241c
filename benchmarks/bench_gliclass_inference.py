"""What inference-side choices give a trained classifier and the MiniLM embedding baseline, zero-shot: macro-F1 on
the recipe's own evaluation sample for

- the baseline with generic prompt templates around the label names;
- label-prior calibration (each label's mean score subtracted) against a reference corpus of unlabeled passages,
  which uses no evaluation text;
- the same calibration on the evaluation texts themselves: transductive, so not zero-shot in the strict sense; it is
  shown as the most a label-prior fix could give;
- an ensemble of the classifier with its MiniLM teacher (log-softmax scores mixed with weight w on the classifier).

    .venv/bin/python benchmarks/bench_gliclass_inference.py --model RUN/export [--config configs/gliclass.yaml]
        [--set seed=1]   # the seed the run was trained with: it draws the evaluation sample
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
TEMPLATES = ("This text is about {}.", "It is about {}.", "This text expresses {}.", "{} is the topic of this text.")
ENSEMBLE_WEIGHTS = (0.25, 0.5, 0.75)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a trained classifier folder (RUN/export, RUN/ppo/final)")
    parser.add_argument("--config", default=str(REPO / "configs" / "gliclass.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--reference", nargs="+", default=["trec_dl", "beir_scifact"],
                        help="unlabeled corpora for the non-transductive calibration")
    parser.add_argument("--reference-per-set", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from scipy.special import log_softmax
    from sentence_transformers import SentenceTransformer

    from rerank_rl.rl.config import load_recipe
    from rerank_rl.rl.models import resolve_model
    from rerank_rl.rl.paradigms.classifier.data import data_root, load_eval_sets, load_unlabeled
    from rerank_rl.rl.paradigms.classifier.evaluate import (
        classification_metrics, decide, gold_matrix, predict_logits, shared_labels,
    )
    from rerank_rl.rl.paradigms.classifier.model import load_model

    torch.set_num_threads(args.threads)
    config = load_recipe(args.config, args.overrides)
    root = data_root(config.data)
    eval_sets = load_eval_sets(config.data, root, config.seed)  # the run's own evaluation sample
    reference = [row["text"] for row in load_unlabeled(args.reference, root, args.reference_per_set, config.seed)]
    encoder = SentenceTransformer(resolve_model(config.model.encoder), device="cpu")
    model, tokenizer = load_model(args.model)
    max_length = config.model.max_length

    def embed(texts):
        return encoder.encode(texts, batch_size=64, normalize_embeddings=True)

    references = embed(reference)
    table: dict[str, dict[str, float]] = {}
    for name, rows in eval_sets.items():
        labels = shared_labels(rows, name)
        gold = gold_matrix(rows, labels)
        texts = [row["text"] for row in rows]
        vectors, names = embed(texts), embed(labels)
        teacher, teacher_ref = vectors @ names.T, references @ names.T
        student = predict_logits(model, tokenizer, texts, labels, config.evaluate.batch_size, max_length)
        student_ref = predict_logits(model, tokenizer, reference, labels, config.evaluate.batch_size, max_length)
        scores = {
            "baseline (label name)": teacher,
            **{f"baseline, template `{t}`": vectors @ embed([t.format(label) for label in labels]).T
               for t in TEMPLATES},
            "baseline, calibrated on the reference corpus": teacher - teacher_ref.mean(0),
            "baseline, calibrated on the evaluation texts (transductive)": teacher - teacher.mean(0),
            "classifier": student,
            "classifier, calibrated on the reference corpus": student - student_ref.mean(0),
            "classifier, calibrated on the evaluation texts (transductive)": student - student.mean(0),
        }
        temperature = config.supervised.distill_temperature  # the teacher's temperature in distillation
        for w in ENSEMBLE_WEIGHTS:
            mixed = w * log_softmax(student, axis=1) + (1 - w) * log_softmax(teacher / temperature, axis=1)
            scores[f"classifier + teacher, w={w}"] = mixed
        for row, values in scores.items():
            metrics = classification_metrics(decide(values, "single-label"), gold, labels)
            table.setdefault(row, {})[name] = metrics["macro_f1"]
    print(render(table, list(eval_sets), args.model))
    return 0


def render(table: dict[str, dict[str, float]], sets: list[str], model: str) -> str:
    base = table["baseline (label name)"]
    lines = [f"model {model}; macro-F1 (points against the plain baseline)", "",
             f"| scores | {' | '.join(sets)} |", "|---|" + "---|" * len(sets)]
    for row, values in table.items():
        cells = [f"{values[s]:.3f} ({100 * (values[s] - base[s]):+.1f})" for s in sets]
        lines.append(f"| {row} | {' | '.join(cells)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
