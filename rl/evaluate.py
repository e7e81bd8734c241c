"""The `evaluate` stage and command: score a first-stage ranking, or rerank it with a trained model.

Conventions (TREC DL, see DESIGN.md §3): nDCG with graded gains as `trec_eval -c -m ndcg_cut.10`; binary measures
count grade >= rel_level as relevant (2 on TREC DL's 0-3 scale). The first-stage figure is always reported beside a
reranked one, together with whether score fusion was used.
"""

from __future__ import annotations

import json
from pathlib import Path

from rerank_rl.data_synthesis.readers import Qrels, read_qrels, read_rank_llm, read_trec_run
from rerank_rl.rewards.metrics import evaluate_run, rank_from_scores, write_trec_run
from rerank_rl.rl.errors import UserError

DEFAULT_METRICS = ("ndcg@10", "ndcg@5", "recall@20", "recall@100", "mrr@10", "map")


def default_rel_level(qrels: Qrels) -> int:
    """2 for graded qrels (max grade > 1, as TREC DL's 0-3), 1 for binary qrels."""
    top = max((g for docs in qrels.values() for g in docs.values()), default=1)
    return 2 if top > 1 else 1


def load_candidates(path: str | Path, qrels: Qrels | None = None, depth: int | None = None) -> list[dict]:
    """Ranking examples from a rank_llm JSON; a TREC run gives examples without texts (first-stage scoring only)."""
    path = Path(path)
    if path.suffix == ".json" or path.suffix == ".gz" and path.stem.endswith(".json"):
        return read_rank_llm(path, qrels=qrels, depth=depth)
    examples = []
    for qid, hits in read_trec_run(path).items():
        scores = dict(hits)
        ranked = rank_from_scores(scores)[:depth or None]
        examples.append({"qid": qid, "query": "", "doc_ids": ranked, "doc_texts": [""] * len(ranked),
                         "first_stage_scores": [scores[d] for d in ranked], "labels": [0] * len(ranked)})
    return examples


def first_stage_run(examples: list[dict]) -> dict[str, list[tuple[str, float]]]:
    return {ex["qid"]: list(zip(ex["doc_ids"], ex["first_stage_scores"])) for ex in examples}


def score_runs(runs: dict[str, dict[str, list[tuple[str, float]]]], qrels: Qrels, rel_level: int,
               metrics=DEFAULT_METRICS) -> dict:
    """Metrics for each named run ({name: {qid: [(doc, score)]}}), each ranked by score with trec_eval tie-breaking."""
    out = {}
    for name, run in runs.items():
        ranked = {qid: rank_from_scores(dict(hits)) for qid, hits in run.items()}
        out[name] = evaluate_run(ranked, qrels, metrics=metrics, rel_level=rel_level)
    return out


def print_table(title: str, results: dict[str, dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    metric_names = [k for k in next(iter(results.values())) if k != "queries"]
    table = Table(title=title)
    table.add_column("run")
    for name in metric_names:
        table.add_column(name, justify="right")
    table.add_column("queries", justify="right")
    for run, values in results.items():
        table.add_row(run, *(f"{values[m]:.4f}" for m in metric_names), str(values["queries"]))
    console = Console()
    console.width = max(console.width, 40 + 11 * len(metric_names))  # pipes default to 80 columns: too narrow
    console.print(table)


def evaluate_command(args) -> int:
    if not args.candidates or not args.qrels:
        raise UserError("evaluate needs --candidates FILE and --qrels FILE")
    if not args.first_stage and not args.model:
        raise UserError("evaluate needs --first-stage, or --model DIR with --paradigm NAME")
    qrels = read_qrels(args.qrels)
    rel_level = args.rel_level or default_rel_level(qrels)
    examples = load_candidates(args.candidates, qrels=qrels, depth=args.depth)
    if args.max_queries:
        examples = examples[: args.max_queries]
        qrels = {ex["qid"]: qrels.get(ex["qid"], {}) for ex in examples}
    runs = {"first_stage": first_stage_run(examples)}
    fusion = None
    answers: dict = {}
    reranker = None
    if args.model:
        from rerank_rl.rl.serving import load_reranker

        reranker = load_reranker(args.model, paradigm=args.paradigm, window=args.window, stride=args.stride,
                                 scoring=args.scoring, batch_size=args.batch_size)
        fusion = reranker.fusion_weight(args.fusion)  # the weight ranking really applies, and the report shows
        runs["reranked"] = reranker.rerank_run(examples, fusion_weight=args.fusion, stats=answers)
    results = score_runs(runs, qrels, rel_level)
    if args.run_out:
        name = "reranked" if "reranked" in runs else "first_stage"
        write_trec_run(args.run_out, runs[name], tag=f"rerank-rl-{name}")
    if args.json:
        payload = dict(results.get("reranked", results["first_stage"]))
        payload.update({"rel_level": rel_level, "run": "reranked" if args.model else "first_stage"})
        if args.model:
            payload["first_stage"] = results["first_stage"]
            payload["fusion"] = fusion is not None
            payload["fusion_weight"] = fusion
            payload["answers"] = answers
            if "scoring" in reranker.settings:  # groupwise's choice; other paradigms have one way to score
                payload["scoring"] = reranker.settings["scoring"]
        print(json.dumps(payload, indent=2))
    else:
        fused = "" if not args.model else f", fusion {'on (weight %s)' % fusion if fusion is not None else 'off'}"
        print_table(f"{Path(args.candidates).name} (binary relevance: grade >= {rel_level}{fused})", results)
        if answers:
            print(f"answers: {reranker.paradigm.describe_answers(answers)}")
    return 0
