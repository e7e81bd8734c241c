"""The reward lab's figures: the probe table of every built-in ranking reward, and how long live rollouts of the
default model take (`reward score --model default --data builtin`).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_reward_lab.py [--queries 4 --samples 4 --docs 10]

Probes run on 20 built-in queries (graded 0-3); ERank's pointwise rewards also on the same passages with binary
labels (grade >= 2), the relevance they were designed for. A cell is `above/tie` (share of rows where the probe
scores above / equal to gold); `-` is a probe the format cannot express.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from rerank_rl.data_synthesis.builtin import generate_examples
from rerank_rl.rewards.cli import summarize
from rerank_rl.rewards.probes import PROBES
from rerank_rl.rewards.probing import probe_reward
from rerank_rl.rewards.registry import get_reward

LIST_REWARDS = ("grouprank", "grouprank_answer_only", "ndcg@10", "mrr@10", "recall@5", "rbo", "reasonrank",
                "rearank", "mm_r5", "rank_r1")
POINTWISE_REWARDS = ("erank_rr", "erank_se", "erank_ndcg")


def list_columns(examples):
    keys = ("qid", "doc_ids", "doc_texts", "labels")
    return {k: [ex[k] for ex in examples] for k in keys}, len(examples)


def pointwise_columns(examples, binary: bool):
    rows = []
    for ex in examples:
        for doc, text, label in zip(ex["doc_ids"], ex["doc_texts"], ex["labels"]):
            grade = int(label >= 2) if binary else label
            rows.append({"qid": ex["qid"], "doc_id": doc, "doc_text": text, "label": grade,
                         "teacher_score": 10 * grade / (1 if binary else 3)})
    return {k: [r[k] for r in rows] for k in rows[0]}, len(rows)


def cell(rates) -> str:
    if rates is None:
        return "-"
    return f"{rates['above_gold_rate']:.2f}/{rates['tie_rate']:.2f}"


def probe_table(examples) -> str:
    lines = ["| reward | " + " | ".join(PROBES) + " | flagged by |", "|---" * (len(PROBES) + 2) + "|"]
    cases = [(spec, list_columns(examples)) for spec in LIST_REWARDS]
    cases += [(f"{spec} (graded)", pointwise_columns(examples, False)) for spec in POINTWISE_REWARDS]
    cases += [(f"{spec} (binary)", pointwise_columns(examples, True)) for spec in POINTWISE_REWARDS]
    for label, (columns, size) in cases:
        report = probe_reward(get_reward(label.split(" ")[0]), columns, size)
        cells = [cell(report["probes"][name]) for name in PROBES]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {', '.join(report['flagged']) or 'none'} |")
    return "\n".join(lines)


def live(queries: int, samples: int, docs: int) -> dict:
    from rerank_rl.rewards.rollouts import load_rollout_model, read_ranking_file, sample_rollouts

    model = load_rollout_model("default")
    examples = read_ranking_file("builtin", limit=queries)
    prompts, completions, columns, timing = sample_rollouts(model, examples, samples, docs=docs)
    started = time.perf_counter()
    report = summarize(["grouprank_answer_only", "ndcg@10"], prompts, completions, columns)
    timing["score_s"] = time.perf_counter() - started
    timing["grouprank_answer_only mean"] = report["grouprank_answer_only"]["components"]["total"]["mean"]
    timing["format_failures"] = report["grouprank_answer_only"]["format_failures"]
    timing["example"] = completions[0][:120]
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=4)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--docs", type=int, default=10)
    parser.add_argument("--skip-live", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    print(probe_table(generate_examples(20, seed=3)))
    print(f"\nprobe table in {time.perf_counter() - started:.1f} s")
    if not args.skip_live:
        threads = os.environ.get("OMP_NUM_THREADS", "all")
        print(f"\nlive rollouts, default model, {args.queries} queries x {args.samples} samples x {args.docs} docs, "
              f"threads {threads}:")
        print(json.dumps(live(args.queries, args.samples, args.docs), indent=1))


if __name__ == "__main__":
    main()
