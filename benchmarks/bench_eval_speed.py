"""Evaluation speed of a groupwise reranker, side by side in one run on the same windows and the same model:

  generate, float32   the old path: decode every answer greedily with transformers' generate, then parse it;
  slots, float32      rl/scoring.py: feed the answer skeleton, read each passage's score distribution (one forward
                      per passage instead of ~8 per passage of free decoding);
  slots, bfloat16     the same in bfloat16 weights (this CPU's bf16 matmul peak is ~2.4x fp32's);
  slots, bf16, prefix the same, with each batch's shared prompt prefix (system prompt, and the query when one
                      query's windows share a batch) run once (the default; the rows above run it per prompt).

It prints windows/s for each, and the nDCG@10 of both readings (greedy: the argmax score, which free decoding
writes too; expected: the expected score) so that speed is compared at equal figures.

    python benchmarks/bench_eval_speed.py [--model RUN/export/model] [--queries 8] [--depth 20] [--threads 2]
                                          [--window 1 --stride 1]   (single-passage windows, the CPU recipes')
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "trec_dl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="", help="a model folder (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--stride", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-chars", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rerank_rl.data_synthesis.readers import read_qrels, read_rank_llm
    from rerank_rl.rl.evaluate import score_runs
    from rerank_rl.rl.generation import HFGenerator
    from rerank_rl.rl.models import resolve_model
    from rerank_rl.rl.paradigms import groupwise

    torch.set_num_threads(args.threads)
    qrels = read_qrels(DATA / "qrels" / "qrels.dl19-passage.txt")
    examples = read_rank_llm(DATA / "BM25" / "retrieve_results_dl19.json", qrels=qrels, depth=args.depth)
    examples = examples[: args.queries]
    qrels = {ex["qid"]: qrels.get(ex["qid"], {}) for ex in examples}
    path = args.model or resolve_model("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(path)
    settings = dict(window=args.window, stride=args.stride, max_chars=args.max_chars)

    rows = []
    for label, scoring, dtype, shared in (("generate, float32", "greedy", torch.float32, False),
                                          ("slots, float32", "expected", torch.float32, False),
                                          ("slots, bfloat16", "expected", torch.bfloat16, False),
                                          ("slots, bf16, prefix", "expected", torch.bfloat16, True)):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        generator = _Recorder(HFGenerator(model, tokenizer, batch_size=args.batch_size, progress=False,
                                          share_prefix=shared))
        stats: dict = {}
        started = time.perf_counter()
        run = groupwise.rank_candidates(examples, generator, scoring=scoring, stats=stats, **settings)
        seconds = time.perf_counter() - started
        figures = {"expected": score_runs({"r": run}, qrels, 2, metrics=["ndcg@10"])["r"]["ndcg@10"]} \
            if scoring == "expected" else {}
        # the greedy reading: rank by the argmax scores (what decoding writes), ties broken by first-stage order
        greedy_run = groupwise.rank_candidates(examples, generator, scoring="greedy", **settings) \
            if scoring == "expected" else run
        figures["greedy"] = score_runs({"r": greedy_run}, qrels, 2, metrics=["ndcg@10"])["r"]["ndcg@10"]
        rows.append((label, stats["windows"] / seconds, seconds, figures, stats["unscored_passages"]))
        del model, generator

    print(f"{len(examples)} DL19 queries, BM25 top-{args.depth}, window {args.window} stride {args.stride}, "
          f"batch {args.batch_size}, {args.threads} threads, model {path}")
    base = rows[0][1]
    print(f"{'path':<20} {'windows/s':>10} {'seconds':>8} {'speed-up':>9} {'nDCG@10 greedy':>15} "
          f"{'nDCG@10 expected':>17} {'unscored':>9}")
    for label, rate, seconds, figures, unscored in rows:
        expected = f"{figures['expected']:.4f}" if "expected" in figures else "-"
        print(f"{label:<20} {rate:>10.3f} {seconds:>8.1f} {rate / base:>8.2f}x {figures['greedy']:>15.4f} "
              f"{expected:>17} {unscored:>9}")


class _Recorder:
    """Passes calls to a generator and keeps the greedy scores a slot pass read; called as a decoder afterwards,
    it writes those scores as answers, so the greedy reading is ranked by the same code as decoded answers
    (without decoding again). rank_candidates builds its prompts in the same order each time."""

    def __init__(self, generator):
        self.generator, self.slots = generator, None

    def score_slots(self, conversations, sizes):
        self.slots = self.generator.score_slots(conversations, sizes)
        return self.slots

    def __call__(self, conversations, max_new_tokens):
        if self.slots is None:
            return self.generator(conversations, max_new_tokens)
        return ["<answer>" + json.dumps({f"[{i}]": g for i, (g, _) in enumerate(row, 1)}) + "</answer>"
                for row in self.slots]


if __name__ == "__main__":
    main()
