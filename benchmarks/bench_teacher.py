"""How good is the encoder teacher (`labels.teacher: encoder`) as a ranker? nDCG@10 on TREC DL19 and DL21 BM25 lists.

For each set and depth it reranks the BM25 top-N by: the first stage alone, the encoder (MiniLM cosine) alone, and
the teacher's fusion w * z(cosine) + (1 - w) * z(BM25) with z-scores over the N candidates (data_synthesis/
encoder_labels.py). Qrels are used only to score (trec_eval -c semantics, rl.evaluate.score_runs): this is the
teacher's own ranking quality, the part of its labels that matters where no qrels exist (DL22, synthetic queries).
Prints wall time: encoding every passage once per set (top-20 lists are prefixes of the top-100 ones).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_teacher.py [--weights 0.7 0.5] [--cache-dir DIR] [--json]

Without --cache-dir nothing is cached, so the timings are those of a first synthesis run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rerank_rl.data_synthesis.config import EncoderLabelsConfig
from rerank_rl.data_synthesis.encoder_labels import EncoderTeacher, fuse_scores
from rerank_rl.data_synthesis.readers import read_qrels, read_rank_llm
from rerank_rl.rl.evaluate import default_rel_level, first_stage_run, score_runs

REPO = Path(__file__).resolve().parents[1]
SETS = {"dl19": "retrieve_results_dl19.json", "dl21": "retrieve_results_dl21.json"}
QRELS = {"dl19": "qrels.dl19-passage.txt", "dl21": "qrels.dl21-passage.txt"}
DEPTHS = {"dl19": (100, 20), "dl21": (100, 20)}


def _run(examples: list[dict], scores: list) -> dict:
    return {ex["qid"]: list(zip(ex["doc_ids"], map(float, s))) for ex, s in zip(examples, scores)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "trec_dl"))
    parser.add_argument("--weights", type=float, nargs="+", default=[0.7], help="encoder shares of the fusion")
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--cache-dir", default="", help="embedding cache folder (default: none, encode everything)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    started = time.time()
    cfg = EncoderLabelsConfig(model=args.encoder)
    teacher = EncoderTeacher(cfg, Path(args.cache_dir) / "embeddings.sqlite" if args.cache_dir else None)
    results, timings = {}, {}
    for name, file in SETS.items():
        qrels = read_qrels(Path(args.data) / "qrels" / QRELS[name])
        full = read_rank_llm(Path(args.data) / "BM25" / file, qrels=qrels)
        start = time.time()
        cosines = teacher.cosines(full)
        timings[f"{name}_encode_s ({sum(len(ex['doc_ids']) for ex in full)} passages)"] = time.time() - start
        for depth in DEPTHS[name]:
            examples = [{"qid": ex["qid"], "doc_ids": ex["doc_ids"][:depth],
                         "first_stage_scores": ex["first_stage_scores"][:depth]} for ex in full]
            cos = [c[:depth] for c in cosines]
            runs = {"first_stage (BM25)": first_stage_run(examples), "encoder": _run(examples, cos)}
            for w in args.weights:
                runs[f"fusion w={w:g}"] = _run(examples, [fuse_scores(c, ex["first_stage_scores"], w)
                                                          for c, ex in zip(cos, examples)])
            scored = score_runs(runs, qrels, default_rel_level(qrels), metrics=("ndcg@10",))
            results[f"{name} top-{depth}"] = {run: round(m["ndcg@10"], 4) for run, m in scored.items()}
    teacher.close()
    timings["total_s"] = time.time() - started
    out = {"metric": "nDCG@10 (trec_eval -c)", "encoder": args.encoder, "results": results,
           "encoder_stats": dict(teacher.stats), "timings": {k: round(v, 1) for k, v in timings.items()}}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    runs = list(next(iter(results.values())))
    print(f"{out['metric']}, encoder {args.encoder}; fusion = w * z(cosine) + (1 - w) * z(BM25) per query")
    print(f"{'set':<14}" + "".join(f"{r:>20}" for r in runs))
    for key, row in results.items():
        print(f"{key:<14}" + "".join(f"{row[r]:>20.4f}" for r in runs))
    print(f"texts encoded {out['encoder_stats'].get('texts_encoded', 0)}, "
          f"from cache {out['encoder_stats'].get('embedding_cache_hits', 0)}")
    for key, value in out["timings"].items():
        print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
