"""Live rollouts for `reward score --model`: sample G completions per query from an export (or a plain Hugging
Face model, e.g. the untrained base) on a ranking file, as completion rows every reward can score.

The prompt is the paradigm's own (`build_messages`), so a reward is tried on what training would sample: an
export brings its paradigm, variant and passage trim from bundle.json; a plain model is taken as groupwise
(`--variant`). Each query is cut to its first `docs` candidates (one training-sized group).

Ranking files: JSON lines in the ranking schema (`qid`, `query`, `doc_ids`, `doc_texts`, `labels`, optional
`first_stage_scores`; data_synthesis/schema.py), a rank_llm `retrieve_results` JSON (labels from `--qrels`), or
`builtin` for the built-in synthetic queries.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RolloutModel", "load_rollout_model", "read_ranking_file", "sample_rollouts"]

BUILTIN_QUERIES = 8


@dataclass
class RolloutModel:
    path: Path
    paradigm: Any
    variant: str
    max_chars: int
    dtype: str = "float32"


def load_rollout_model(spec: str, variant: str | None = None) -> RolloutModel:
    """`default` (the prepared SmolLM2), an export folder (bundle.json) or a Hugging Face model folder."""
    from rerank_rl.rl.errors import UserError
    from rerank_rl.rl.paradigms import get_paradigm

    if spec == "default":
        from rerank_rl.rl.models import prepare_default_lm

        path = prepare_default_lm()
    else:
        path = Path(spec).expanduser()
    bundle_path = path / "bundle.json"
    if bundle_path.is_file():
        try:
            bundle = json.loads(bundle_path.read_text())
        except json.JSONDecodeError as err:
            raise UserError(f"{bundle_path}:{err.lineno}: invalid JSON ({err.msg})") from None
        return RolloutModel(path / "model", get_paradigm(bundle.get("paradigm", "groupwise")),
                            variant or bundle.get("variant", "answer_only"),
                            int(bundle.get("inference", {}).get("max_doc_chars", 400)), bundle.get("dtype", "float32"))
    if not (path / "config.json").is_file():
        raise UserError(f"{spec}: neither an export (bundle.json) nor a Hugging Face model folder (config.json)")
    return RolloutModel(path, get_paradigm("groupwise"), variant or "answer_only", 400)


def read_ranking_file(path: str, qrels_path: str | None = None, limit: int | None = None) -> list[dict]:
    """Ranking examples from a ranking-schema JSONL, a rank_llm JSON (+ qrels) or `builtin`; a bad line is a
    one-line UserError naming `path:line`."""
    from rerank_rl.data_synthesis.readers import read_jsonl, read_qrels, read_rank_llm
    from rerank_rl.data_synthesis.schema import check_ranking_example
    from rerank_rl.rl.errors import UserError, located

    if path == "builtin":
        from rerank_rl.data_synthesis.builtin import generate_examples

        return generate_examples(limit or BUILTIN_QUERIES, seed=1, prefix="live")
    if not Path(path).is_file():
        raise UserError(f"{path}: file not found")
    if path.endswith((".json", ".json.gz")):
        examples = read_rank_llm(path, qrels=read_qrels(qrels_path) if qrels_path else None)
    else:
        examples = []
        for lineno, record in read_jsonl(path):
            record.setdefault("first_stage_scores", [0.0] * len(record.get("doc_ids") or []))
            try:
                check_ranking_example(record, where="ranking example")
            except ValueError as err:
                raise located(path, lineno, str(err)) from None
            examples.append(record)
    if not examples:
        raise UserError(f"{path}: no queries in the file")
    return examples[:limit] if limit else examples


def sample_rollouts(
    model: RolloutModel,
    examples: list[dict],
    samples: int,
    docs: int = 10,
    temperature: float = 1.0,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
) -> tuple[list[list[dict]], list[str], dict[str, list], dict[str, float]]:
    """(prompts, completions, columns, timing): `samples` completions per query, sampled at `temperature`;
    columns carry `qid`, `doc_ids`, `labels` (and `doc_texts`) for the rewards. Timing in seconds."""
    import torch

    from rerank_rl.rl.generation import load_hf_generator

    started = time.perf_counter()
    generator = load_hf_generator(str(model.path), batch_size=batch_size, dtype=model.dtype)
    generator.temperature, generator.progress = temperature, False
    loaded = time.perf_counter()
    cut = [{**ex, **{k: list(ex[k])[:docs] for k in ("doc_ids", "doc_texts", "labels")}} for ex in examples]
    prompts, columns = [], {"qid": [], "doc_ids": [], "labels": [], "doc_texts": []}
    for ex in cut:
        messages = model.paradigm.build_messages(ex["query"], ex["doc_texts"], model.variant, model.max_chars)
        for _ in range(samples):
            prompts.append(messages)
            for key in columns:
                columns[key].append(ex[key])
    budget = max_new_tokens or model.paradigm.max_new_tokens(max(len(ex["doc_ids"]) for ex in cut), model.variant)
    torch.manual_seed(seed)
    completions = generator(prompts, budget)
    done = time.perf_counter()
    timing = {"load_s": loaded - started, "generate_s": done - loaded, "completions": len(completions),
              "max_new_tokens": budget}
    return prompts, completions, columns, timing
