"""Export: a model folder plus a small serving bundle, checked by reloading it through a library that knows
nothing of this project before the export is declared done.

Uni-encoder: a gliclass model folder (config, weights, tokenizer with the added tokens), served by

    model = GLiClassModel.from_pretrained(DIR); tokenizer = AutoTokenizer.from_pretrained(DIR)
    pipe = ZeroShotClassificationPipeline(model, tokenizer, classification_type="single-label", device="cpu")

Bi-encoder: a sentence-transformers folder; a label's score is sigmoid(logit_scale * cos + logit_bias) with both
numbers in bi_encoder.json (single-label decisions need only the cosine):

    st = SentenceTransformer(DIR); cos = st.encode(texts) @ st.encode(labels).T
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from rerank_rl.rl.errors import UserError

from .evaluate import predict_logits, predict_probs
from .biencoder import BiEncoder, sentence_transformers
from .model import LABEL_TOKEN, SEP_TOKEN, load_model
from .trainio import save_model

BUNDLE = "rerank_rl_classifier.json"
_PROBE_TEXTS = ["The central bank raised interest rates again.", "What a wonderful, heartwarming film!",
                "My card still has not arrived after two weeks."]
_PROBE_LABELS = ["business", "sports", "joy", "anger", "card arrival", "positive"]


def export_model(model, tokenizer, out_dir: Path, max_length: int, classification_type: str = "single-label",
                 threshold: float = 0.5, source: str | None = None) -> Path:
    out_dir = Path(out_dir)
    save_model(out_dir, model, tokenizer)
    bi = isinstance(model, BiEncoder)
    bundle = {
        "paradigm": "classifier",
        "architecture": "bi-encoder" if bi else "gliclass uni-encoder",
        "input_format": "text and each label apart" if bi else f"{LABEL_TOKEN}label1{LABEL_TOKEN}label2...{SEP_TOKEN}text",
        "max_length": max_length,
        "classification_type": classification_type,
        "threshold": threshold,
        "source": source,
    }
    (out_dir / BUNDLE).write_text(json.dumps(bundle, indent=2) + "\n")
    verify_export(model, tokenizer, out_dir)
    return out_dir


def read_bundle(folder: Path) -> dict:
    path = Path(folder) / BUNDLE
    return json.loads(path.read_text()) if path.exists() else {}


def gliclass_pipeline(folder: Path, classification_type: str | None = None):
    """The exported model inside gliclass's own zero-shot pipeline (CPU)."""
    from gliclass import ZeroShotClassificationPipeline

    bundle = read_bundle(folder)
    model, tokenizer = load_model(folder)
    return ZeroShotClassificationPipeline(
        model, tokenizer, max_length=bundle.get("max_length", 512), device="cpu", progress_bar=False,
        classification_type=classification_type or bundle.get("classification_type", "single-label"))


def pipeline_scores(pipe, texts: list[str], labels: list[str], batch_size: int = 8) -> np.ndarray:
    """(N, K) per-label sigmoid scores from the gliclass pipeline (multi-label mode, threshold 0 keeps them all)."""
    results = pipe(texts, labels, threshold=0.0, batch_size=batch_size, classification_type="multi-label")
    return np.array([[{r["label"]: r["score"] for r in row}[label] for label in labels] for row in results])


def sentence_transformer_logits(folder: Path, texts: list[str], labels: list[str]) -> np.ndarray:
    """(N, K) label logits of a bi-encoder export read by sentence-transformers and bi_encoder.json alone."""
    head = json.loads((Path(folder) / "bi_encoder.json").read_text())
    label_model, text_model = sentence_transformers(folder)
    cosine = text_model.encode(texts, normalize_embeddings=True) @ label_model.encode(labels, normalize_embeddings=True).T
    return head["logit_scale"] * cosine + head["logit_bias"]


def sentence_transformer_scores(folder: Path, texts: list[str], labels: list[str]) -> np.ndarray:
    """(N, K) sigmoid scores of a bi-encoder export read by sentence-transformers and bi_encoder.json alone."""
    return 1 / (1 + np.exp(-sentence_transformer_logits(folder, texts, labels)))


def verify_export(model, tokenizer, folder: Path, atol: float = 1e-4) -> None:
    """Fail loudly if the export does not reproduce the in-memory model's scores inside gliclass's pipeline (or
    sentence-transformers, for a bi-encoder: logits there, since sigmoids of large logits all read 1.0)."""
    max_length = read_bundle(folder)["max_length"]
    with torch.no_grad():
        if isinstance(model, BiEncoder):
            expected = predict_logits(model, tokenizer, _PROBE_TEXTS, _PROBE_LABELS, max_length=max_length)
            got = sentence_transformer_logits(folder, _PROBE_TEXTS, _PROBE_LABELS)
            atol = atol * max(1.0, abs(float(model.logit_scale)))  # a cosine within atol, times the scale
        else:
            expected = predict_probs(model, tokenizer, _PROBE_TEXTS, _PROBE_LABELS, max_length=max_length)
            got = pipeline_scores(gliclass_pipeline(folder), _PROBE_TEXTS, _PROBE_LABELS)
    gap = float(np.abs(expected - got).max())
    if gap > atol:
        raise UserError(f"{folder}: the exported model's scores differ from the trained model's by {gap:.2e} "
                        "when loaded by its library; the export is not usable")
