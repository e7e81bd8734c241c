"""Inference cost per query of the reranker paradigms, in one run on the same candidate lists and the same model:
groupwise (windows of 20, stride 10, greedy answers), setwise (tournament sets of 20, top 10) and pointwise (one
prompt per passage, s * P(s)). It prints, per query, model tokens in (prompts, after the chat template) and out
(generated), prompts, wall seconds, and the nDCG@10 each reaches (untrained unless --model is a trained model; the
figure is there to show the three ranked the same lists, not to judge them).

    python benchmarks/bench_paradigm_cost.py [--model PATH] [--queries 1] [--depth 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "trec_dl"


class Counting:
    """Wraps an HFGenerator: counts prompts and tokens in and out of every call."""

    def __init__(self, inner):
        self.inner, self.prompts, self.tokens_in, self.tokens_out = inner, 0, 0, 0

    def _count(self, conversations, texts):
        tok = self.inner.tokenizer
        self.prompts += len(conversations)
        texts_in = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
        self.tokens_in += sum(len(ids) for ids in tok(texts_in, add_special_tokens=False)["input_ids"])
        self.tokens_out += sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)

    def __call__(self, conversations, max_new_tokens):
        texts = self.inner(conversations, max_new_tokens)
        self._count(conversations, texts)
        return texts

    def generate_with_logprobs(self, conversations, max_new_tokens):
        out = self.inner.generate_with_logprobs(conversations, max_new_tokens)
        self._count(conversations, [text for text, _ in out])
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="", help="a model folder (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--queries", type=int, default=1)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--max-chars", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from rerank_rl.data_synthesis.readers import read_qrels, read_rank_llm
    from rerank_rl.rl.evaluate import score_runs
    from rerank_rl.rl.generation import load_hf_generator
    from rerank_rl.rl.models import resolve_model
    from rerank_rl.rl.paradigms import get_paradigm

    torch.set_num_threads(args.threads)
    qrels = read_qrels(DATA / "qrels" / "qrels.dl19-passage.txt")
    examples = read_rank_llm(DATA / "BM25" / "retrieve_results_dl19.json", qrels=qrels, depth=args.depth)
    examples = examples[: args.queries]
    qrels = {ex["qid"]: qrels.get(ex["qid"], {}) for ex in examples}
    generator = load_hf_generator(args.model or resolve_model("smollm2-135m-instruct"), batch_size=8)
    generator.progress = False
    common = {"variant": "answer_only", "max_doc_chars": args.max_chars, "fusion_weight": None, "batch_size": 8}
    settings = {
        "groupwise": {**common, "window": 20, "stride": 10, "repeats": 1, "seed": 0, "scoring": "greedy"},
        "setwise": {**common, "window": 20, "top_k": 10},
        "pointwise": common,
    }
    rows = {}
    for name, setting in settings.items():
        counting = Counting(generator)
        started = time.perf_counter()
        run = get_paradigm(name).rank(examples, counting, setting)
        seconds = time.perf_counter() - started
        ndcg = score_runs({"r": run}, qrels, 2, metrics=["ndcg@10"])["r"]["ndcg@10"]
        per = len(examples)
        rows[name] = {"prompts": counting.prompts / per, "tokens_in": counting.tokens_in / per,
                      "tokens_out": counting.tokens_out / per, "seconds": round(seconds / per, 2),
                      "ndcg@10": round(ndcg, 4)}
        print(name, json.dumps(rows[name]), flush=True)
    print(json.dumps({"queries": len(examples), "depth": args.depth, "threads": args.threads, "per_query": rows},
                     indent=2))


if __name__ == "__main__":
    main()
