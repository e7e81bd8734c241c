"""Zero-shot evaluation: the classifier's label decisions on sets it was not trained on, beside a baseline that
picks the label whose name is closest to the text in MiniLM embedding space.

Corpus-level metrics (macro-F1 over classes, micro-F1, accuracy) come from scikit-learn; they are not rewards.
When some of an evaluation set's labels also occur in training (yin2019_emotion shares six emotions with
emotion_dair), macro-F1 over the never-seen labels alone is reported too.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from rerank_rl.rl.errors import UserError
from rerank_rl.rl.models import resolve_model

from .model import score


def shared_labels(rows: list[dict], where: str) -> list[str]:
    """The label list every row of an evaluation set offers (metrics per class need one list)."""
    names = rows[0]["label_names"] if rows else []
    if any(row["label_names"] != names for row in rows):
        raise UserError(f"{where}: every example of an evaluation set must offer the same labels")
    return list(names)


def gold_matrix(rows: list[dict], labels: list[str]) -> np.ndarray:
    index = {label: j for j, label in enumerate(labels)}
    gold = np.zeros((len(rows), len(labels)), dtype=bool)
    for i, row in enumerate(rows):
        for label in row["gold_labels"]:
            gold[i, index[label]] = True
    return gold


@torch.no_grad()
def predict_logits(model, tokenizer, texts: list[str], labels: list[str], batch_size: int = 32,
                   max_length: int = 160) -> np.ndarray:
    """(N, K) logits of each label for each text."""
    model.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        out.append(score(model, tokenizer, chunk, [labels] * len(chunk), max_length).logits.numpy())
    return np.concatenate(out) if out else np.zeros((0, len(labels)), dtype=np.float32)


def predict_probs(model, tokenizer, texts: list[str], labels: list[str], batch_size: int = 32,
                  max_length: int = 160) -> np.ndarray:
    """(N, K) sigmoid scores of each label for each text."""
    logits = predict_logits(model, tokenizer, texts, labels, batch_size, max_length)
    return torch.sigmoid(torch.from_numpy(logits)).numpy()


def decide(scores: np.ndarray, classification_type: str = "single-label", threshold: float = 0.5) -> np.ndarray:
    """Boolean decisions: the best label (single-label) or every label scoring at least `threshold`."""
    if classification_type == "single-label":
        picks = np.zeros_like(scores, dtype=bool)
        picks[np.arange(len(scores)), scores.argmax(1)] = True
        return picks
    return scores >= threshold


def classification_metrics(pred: np.ndarray, gold: np.ndarray, labels: list[str],
                           unseen: list[str] | None = None) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    result = {
        "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(gold, pred, average="micro", zero_division=0)),
        "accuracy": float(accuracy_score(gold, pred)),  # exact match of the label set
        "examples": int(len(gold)),
    }
    if unseen and len(unseen) < len(labels):
        columns = [labels.index(label) for label in unseen]
        result["macro_f1_unseen"] = float(f1_score(gold, pred, labels=columns, average="macro", zero_division=0))
    return result


def unseen_labels(labels: list[str], seen: set[str]) -> list[str]:
    return [label for label in labels if label.casefold() not in seen]


def decisions(model, tokenizer, rows: list[dict], where: str, batch_size: int = 32, max_length: int = 160,
              classification_type: str = "single-label", threshold: float = 0.5):
    """(labels, predicted (N, K) booleans, gold (N, K) booleans) of the classifier on one evaluation set."""
    labels = shared_labels(rows, where)
    scores = predict_probs(model, tokenizer, [r["text"] for r in rows], labels, batch_size, max_length)
    return labels, decide(scores, classification_type, threshold), gold_matrix(rows, labels)


def evaluate_model(model, tokenizer, sets: dict[str, list[dict]], seen: set[str], batch_size: int = 32,
                   max_length: int = 160, classification_type: str = "single-label",
                   threshold: float = 0.5) -> dict:
    """{set: metrics} for the classifier on each evaluation set."""
    results = {}
    for name, rows in sets.items():
        started = time.time()
        labels, pred, gold = decisions(model, tokenizer, rows, name, batch_size, max_length, classification_type,
                                       threshold)
        results[name] = {**classification_metrics(pred, gold, labels, unseen_labels(labels, seen)),
                         "wall_s": round(time.time() - started, 2)}
    return results


def embedding_baseline(sets: dict[str, list[dict]], seen: set[str], encoder: str = "minilm",
                       batch_size: int = 64) -> dict:
    """{set: metrics} when each text takes the label whose name embedding is most cosine-similar to its own."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(resolve_model(encoder), device="cpu")
    results = {}
    for name, rows in sets.items():
        started = time.time()
        labels = shared_labels(rows, name)
        texts = st.encode([r["text"] for r in rows], batch_size=batch_size, normalize_embeddings=True)
        names = st.encode(labels, normalize_embeddings=True)
        pred = decide(texts @ names.T, "single-label")
        results[name] = {**classification_metrics(pred, gold_matrix(rows, labels), labels, unseen_labels(labels, seen)),
                         "wall_s": round(time.time() - started, 2)}
    return results
