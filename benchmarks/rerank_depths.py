"""nDCG@10 of a finished run's reranking at several first-stage depths, with and without fusion, from its own
scores: no model is loaded.

With one passage per prompt (`evaluate.window: 1`, the CPU recipes; every pointwise run) a passage's score does
not depend on which other passages were ranked, so reranking the top-20 is the top-100 run's scores restricted to
the first 20 candidates; fusion min-max normalises the first-stage scores over the candidates kept. (With larger
windows the figures for a smaller depth would need a new pass, and this script refuses.)

    python benchmarks/rerank_depths.py RUN_DIR [--depths 20 100] [--fusion 0.6]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--fusion", type=float, default=0.6, help="fusion weight of the reranker (GroupRank: 0.6)")
    args = parser.parse_args()

    from datasets import load_from_disk

    from rerank_rl.data_synthesis.readers import read_qrels, read_trec_run
    from rerank_rl.rl.evaluate import score_runs
    from rerank_rl.rl.paradigms.groupwise import fuse

    config = yaml.safe_load((args.run_dir / "config.yaml").read_text())
    single = config["paradigm"] == "pointwise" or config["evaluate"].get("window") == 1
    if not single:
        sys.exit("rerank_depths.py reads single-passage runs only (pointwise, or evaluate.window: 1); rerun evaluate "
                 "per depth")
    reranked = {qid: dict(hits) for qid, hits in read_trec_run(args.run_dir / "metrics" / "after.run").items()}
    examples = [dict(row) for row in load_from_disk(str(args.run_dir / "data" / "eval"))]
    if config["data"]["eval"].get("qrels"):  # the full judgments: relevant passages beyond the candidates count too
        qrels = read_qrels(Path(config["data"]["eval"]["qrels"]))
        qrels = {ex["qid"]: qrels.get(ex["qid"], {}) for ex in examples}
    else:  # built-in data: every candidate is labelled
        qrels = {ex["qid"]: dict(zip(ex["doc_ids"], ex["labels"])) for ex in examples}
    print(f"{args.run_dir}: nDCG@10 over {len(examples)} queries (fusion weight {args.fusion})")
    print(f"{'depth':>6} {'first stage':>12} {'reranked':>9} {'fused':>7}")
    for depth in args.depths:
        runs: dict[str, dict] = {"first": {}, "reranked": {}, "fused": {}}
        for ex in examples:
            ids, first = ex["doc_ids"][:depth], ex["first_stage_scores"][:depth]
            scores = [reranked[ex["qid"]][d] for d in ids]
            runs["first"][ex["qid"]] = list(zip(ids, first))
            runs["reranked"][ex["qid"]] = list(zip(ids, scores))
            runs["fused"][ex["qid"]] = list(zip(ids, fuse(scores, first, args.fusion)))
        figures = {name: r["ndcg@10"] for name, r in score_runs(runs, qrels, 2, metrics=["ndcg@10"]).items()}
        print(f"{depth:>6} {figures['first']:>12.4f} {figures['reranked']:>9.4f} {figures['fused']:>7.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
