"""Load an exported reranker and rank candidate lists with the settings it was trained and evaluated with."""

from __future__ import annotations

import json
from pathlib import Path

from rerank_rl.rl.errors import UserError
from rerank_rl.rl.generation import load_hf_generator
from rerank_rl.rl.paradigms import get_paradigm


class Reranker:
    def __init__(self, export_dir: Path, bundle: dict, **overrides):
        """`overrides` replace the bundle's inference settings (window, stride, batch_size, ...) where not None."""
        self.bundle = bundle
        self.paradigm = get_paradigm(bundle["paradigm"])
        self.settings = {**bundle["inference"], **{k: v for k, v in overrides.items() if v is not None}}
        try:  # before the weights load, so a bad --stride costs nothing
            self.paradigm.check_settings(self.settings)
        except ValueError as err:
            raise UserError(f"{err} (--window/--stride, or the export's settings)") from None
        self.generate = load_hf_generator(str(export_dir / "model"), batch_size=self.settings.get("batch_size", 8),
                                          dtype=bundle.get("dtype", "float32"))

    def fusion_weight(self, requested: float | str | None = None) -> float | None:
        """The fusion weight a ranking applies: the bundle's own when none is requested, none for "none"."""
        if requested is None:
            return self.settings["fusion_weight"]
        return None if requested == "none" else float(requested)

    def rerank_run(self, examples: list[dict], fusion_weight: float | str | None = None,
                   stats: dict | None = None) -> dict:
        """{qid: [(doc_id, score)]}, fused as `fusion_weight(fusion_weight)` says. A `stats` dict is filled with
        what the model answered."""
        settings = {**self.settings, "fusion_weight": self.fusion_weight(fusion_weight)}
        return rank_with(self.paradigm, self.generate, examples, self.bundle["variant"], settings, stats)


def inference_settings(config) -> dict:
    """The ranking settings of a recipe: what its evaluate stage ranks with and what export writes to bundle.json
    (the paradigm decides which)."""
    return get_paradigm(config.paradigm).inference_settings(config)


def rank_with(paradigm, generate, examples: list[dict], variant: str, settings: dict,
              stats: dict | None = None) -> dict:
    """Rank candidate lists through `paradigm` with one settings dict (see `inference_settings`): the one path
    that the evaluate stage and an exported Reranker share, so both rank alike."""
    return paradigm.rank(examples, generate, {**settings, "variant": variant}, stats)


def load_reranker(export_dir: str | Path, paradigm: str | None = None, **overrides) -> Reranker:
    export_dir = Path(export_dir)
    path = export_dir / "bundle.json"
    if not path.exists():
        raise UserError(f"{export_dir}: not an export folder (no bundle.json; create one with `rerank-rl export RUN_DIR`)")
    try:
        bundle = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    if paradigm and bundle.get("paradigm") != paradigm:
        raise UserError(f"{path}: the model was trained as {bundle.get('paradigm')!r}, not {paradigm!r}")
    given = {key for key, value in overrides.items() if value is not None}  # the options the user did set
    unknown = given - set(bundle.get("inference", {})) - {"batch_size", "scoring"}
    if unknown:
        raise UserError(f"{path}: no inference setting named {', '.join(sorted(unknown))}")
    return Reranker(export_dir, bundle, **overrides)
