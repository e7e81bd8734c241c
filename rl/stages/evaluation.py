"""The evaluate stage: rerank the evaluation lists with a checkpoint, write a TREC run and a metrics JSON that
holds the first-stage figure beside the reranked one."""

from __future__ import annotations

import json
from pathlib import Path

from datasets import load_from_disk

from rerank_rl.data_synthesis.builtin import qrels_of
from rerank_rl.rewards.metrics import write_trec_run
from rerank_rl.rl.evaluate import default_rel_level, first_stage_run, score_runs
from rerank_rl.rl.generation import choose_engine, load_generator
from rerank_rl.rl.paradigms import get_paradigm
from rerank_rl.rl.probe import grade_means
from rerank_rl.rl.serving import inference_settings, rank_with
from rerank_rl.rl.stages.common import inference_dtype


def rerank_with(model_path: str, examples: list[dict], config,
                stats: dict | None = None) -> dict[str, list[tuple[str, float]]]:
    settings = inference_settings(config)
    # vLLM for decoding where the recipe rolls out with it (installed, on a GPU), else transformers on the device
    engine = choose_engine(config.rl.use_vllm, settings.get("scoring", "greedy"))
    generator = load_generator(model_path, engine, batch_size=settings["batch_size"], dtype=inference_dtype(config),
                               seed=config.seed)
    return rank_with(get_paradigm(config.paradigm), generator, examples, config.variant, settings, stats)


def evaluate_checkpoint(config, run_dir: Path, model_path: str, name: str, qrels=None) -> dict:
    """Metrics of `model_path` on run_dir/data/eval, saved to run_dir/metrics/<name>.json (+ <name>.run)."""
    examples = [dict(row) for row in load_from_disk(str(run_dir / "data" / "eval"))]
    # a judgments file covers every query it judged; figures average over the queries evaluated here
    # (data.eval.max_queries), not over all of the file's, which would count the others as 0
    qrels = {ex["qid"]: qrels.get(ex["qid"], {}) for ex in examples} if qrels else qrels_of(examples)
    rel_level = default_rel_level(qrels)
    answers: dict = {}
    reranked = rerank_with(model_path, examples, config, stats=answers)
    results = score_runs({"first_stage": first_stage_run(examples), "reranked": reranked}, qrels, rel_level,
                         metrics=config.evaluate.metrics)
    out = run_dir / "metrics"
    out.mkdir(parents=True, exist_ok=True)
    write_trec_run(out / f"{name}.run", reranked, tag=f"rerank-rl-{name}")
    fusion_weight = inference_settings(config).get("fusion_weight")  # None where the paradigm has no fusion
    payload = {"paradigm": config.paradigm, "model": str(model_path), "reranked": results["reranked"],
               "first_stage": results["first_stage"], "fusion": fusion_weight is not None,
               "fusion_weight": fusion_weight, "rel_level": rel_level, "answers": answers}
    if any(g > 0 for docs in qrels.values() for g in docs.values()):
        # Mean final score x10 per gold grade: 0-10 answers, unless fused with the first stage (then not answers).
        payload["grade_means"], payload["grade_counts"] = grade_means(reranked, qrels)
        payload["grade_means_fused"] = payload["fusion"]
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2))
    return payload
