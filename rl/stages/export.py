"""The export stage: a merged HF checkpoint, the LoRA adapter, and a serving bundle (bundle.json) that records
everything serving needs to format prompts and read answers exactly as training did."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rerank_rl.rl.errors import UserError
from rerank_rl.rl.paradigms import get_paradigm
from rerank_rl.rl.stages.common import inference_dtype

BUNDLE = "bundle.json"


def export_run(config, run_dir: Path, final_model: Path, out: Path | None = None) -> Path:
    out = Path(out or run_dir / "export")
    if not (final_model / "config.json").exists():
        raise UserError(f"{final_model}: no trained checkpoint to export (did training finish?)")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copytree(final_model, tmp / "model")  # already merged: loads with plain transformers
    adapter = run_dir / "rl" / "adapter"
    if adapter.exists():
        shutil.copytree(adapter, tmp / "adapter")
    paradigm = get_paradigm(config.paradigm)
    bundle = {
        "format": "rerank-rl-bundle/1",
        "paradigm": config.paradigm,
        "variant": config.variant,
        "base_model": config.model.name,
        "dtype": inference_dtype(config),
        **paradigm.bundle_fields(config),  # prompt version and example, parser, decoding
        "inference": paradigm.inference_settings(config),
    }
    (tmp / BUNDLE).write_text(json.dumps(bundle, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # a half-written export never looks complete
    return out
