"""What answers requests: a reranker export ranks through its bundle (the prompts, parser and window settings of
training and `evaluate`), a classifier export scores labels as `evaluate --paradigm classifier` does.

Engines are synchronous and not thread-safe; the server calls them from one worker thread (batching.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from rerank_rl.rl.errors import UserError


def load_engine(export_dir: str | Path, **overrides):
    """The engine for an export folder: a reranker bundle (bundle.json) or a classifier export."""
    from rerank_rl.rl.paradigms.classifier.export import BUNDLE as CLASSIFIER_BUNDLE

    export_dir = Path(export_dir)
    if (export_dir / CLASSIFIER_BUNDLE).exists():
        if any(v is not None for v in overrides.values()):
            raise UserError(f"{export_dir}: a classifier export takes no ranking settings "
                            f"({', '.join(k for k, v in overrides.items() if v is not None)})")
        return ClassifierEngine(export_dir)
    try:
        paradigm = json.loads((export_dir / "bundle.json").read_text()).get("paradigm")
    except (OSError, ValueError, AttributeError):
        paradigm = None  # load_reranker says what is wrong with the folder
    if paradigm == "multimodal":
        # its documents are page image paths, which a request would make the server open on its own disk
        raise UserError(f"{export_dir}: serving a multimodal export is not supported yet (its documents are image "
                        "paths on the server); rank with `rerank-rl evaluate --paradigm multimodal`")
    return RerankEngine(export_dir, **overrides)


class RerankEngine:
    task = "rerank"

    def __init__(self, export_dir: Path, **overrides):
        from rerank_rl.rl.serving import load_reranker

        self.reranker = load_reranker(export_dir, **overrides)
        # A progress bar per request would flood the server's log.
        self.reranker.generate.progress = False
        self.description = {"paradigm": self.reranker.bundle["paradigm"], "variant": self.reranker.bundle["variant"],
                            "base_model": self.reranker.bundle.get("base_model"),
                            "prompt_version": self.reranker.bundle.get("prompt_version"),
                            "settings": self.reranker.settings}

    def rank(self, requests: list[dict]) -> list[list[float]]:
        """One relevance score per document of each parsed rerank request, all requests in one model call.

        A request's documents are in first-stage order (position breaks ties, as in `evaluate`). The bundle's
        fusion weight applies to a request that sends `first_stage_scores`; without them there is nothing to fuse."""
        examples = [{"qid": str(i), "query": r["query"], "doc_ids": [str(j) for j in range(len(r["documents"]))],
                     "doc_texts": r["documents"], "first_stage_scores": r["first_stage_scores"] or [],
                     "labels": [0] * len(r["documents"])} for i, r in enumerate(requests)]
        run = self.reranker.rerank_run(examples, fusion_weight="none")
        weight = self.reranker.fusion_weight()
        out = []
        for ex in examples:
            scores = [score for _, score in run[ex["qid"]]]
            if weight is not None and ex["first_stage_scores"]:
                # the same fusion `rank_candidates` applies after its tie-break, per request
                scores = self.reranker.paradigm.fuse(scores, ex["first_stage_scores"], weight)
            out.append(scores)
        return out

    def fused(self, request: dict) -> bool:
        return self.reranker.fusion_weight() is not None and bool(request["first_stage_scores"])


class ClassifierEngine:
    task = "classify"

    def __init__(self, export_dir: Path):
        from rerank_rl.rl.paradigms.classifier.export import read_bundle
        from rerank_rl.rl.paradigms.classifier.model import load_model

        self.bundle = read_bundle(export_dir)
        self.model, self.tokenizer = load_model(export_dir)
        self.description = {"paradigm": "classifier", "architecture": self.bundle.get("architecture"),
                            "settings": {k: self.bundle.get(k) for k in ("max_length", "classification_type",
                                                                         "threshold")}}

    def classify(self, requests: list[dict]) -> list[list[dict]]:
        """Per request, per text: every label's score (sorted, best first) and the labels decided, with the
        scores and decisions of `evaluate --paradigm classifier`."""
        from rerank_rl.rl.paradigms.classifier.evaluate import decide, predict_probs

        out = []
        for request in requests:  # label sets differ between requests, so each is its own batch of texts
            probs = predict_probs(self.model, self.tokenizer, request["texts"], request["labels"],
                                  max_length=self.bundle.get("max_length", 160))
            kind = request["classification_type"] or self.bundle.get("classification_type", "single-label")
            threshold = request["threshold"] if request["threshold"] is not None else self.bundle.get("threshold", 0.5)
            labels = request["labels"]
            out.append([{"scores": sorted(({"label": label, "score": float(p)} for label, p in zip(labels, row)),
                                          key=lambda s: -s["score"]),
                         "labels": [label for label, chosen in zip(labels, picked) if chosen]}
                        for row, picked in zip(probs, decide(probs, kind, threshold))])
        return out


def describe(export_dir: Path, engine) -> dict:
    """The /v1/models entry: the bundle's paradigm, model and settings."""
    return {"id": export_dir.name, "object": "model", "owned_by": "rerank-rl", "task": engine.task,
            "export": str(export_dir), **json.loads(json.dumps(engine.description, default=str))}
