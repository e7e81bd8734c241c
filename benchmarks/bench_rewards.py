"""Benchmark: nDCG@10 of 100,000 groupwise completions with our reward vs pytrec_eval called per sample.

Both sides parse every completion with the same parser (`parse_scores`); ours then ranks and scores the whole
batch in numpy in one reward call, the baseline builds a `pytrec_eval.RelevanceEvaluator` per completion, as a
reward written one sample at a time would. Values must agree to 1e-9. Candidate ids are chosen so that trec_eval's
tie-break (doc id descending) equals our prompt-order tie-break, so ties are scored identically.

    nice .venv/bin/python benchmarks/bench_rewards.py [--n 100000] [--group 20] [--repeat 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rerank_rl.rewards import get_reward  # noqa: E402
from rerank_rl.rewards.parsers import parse_scores  # noqa: E402
from rerank_rl.rewards.ranking import ListBatch  # noqa: E402


def make_batch(n: int, group: int, rollouts: int, seed: int) -> tuple[list[str], list[list[int]], list[str]]:
    """n completions in groups of `rollouts` per query; answers have ties, missing, repeated and out-of-range ids,
    and about 3% are unparsable."""
    rng = np.random.default_rng(seed)
    texts, labels, qids = [], [], []
    for i in range(n):
        if i % rollouts == 0:
            query_labels = rng.choice(4, size=group, p=[0.6, 0.2, 0.12, 0.08]).tolist()
        qids.append(f"q{i // rollouts}")
        labels.append(query_labels)
        if rng.random() < 0.03:
            texts.append("<reason>unsure</reason><answer>I cannot rank these.</answer>")
            continue
        ids = rng.permutation(group)[: rng.integers(group // 2, group + 1)] + 1
        pairs = [f'"[{j}]": {int(rng.integers(0, 11))}' for j in ids]
        if rng.random() < 0.1:
            pairs.append(f'"[{group + 3}]": 10')  # out of range
        if rng.random() < 0.1:
            pairs.append(f'"[{ids[0]}]": 0')  # repeated id: the first score counts
        texts.append("<reason>weighing usefulness</reason><answer>{" + ", ".join(pairs) + "}</answer>")
    return texts, labels, qids


def _docnos(n: int) -> list[str]:
    return [f"{n - j:04d}" for j in range(n)]  # descending ids = prompt order on ties, as trec_eval breaks them


def _usable(parsed, n: int) -> dict[int, float]:
    return {j: s for j, s in (parsed.value or {}).items() if 1 <= j <= n} if parsed.ok else {}


def pytrec_per_sample(parsed: list, labels: list[list[int]]) -> np.ndarray:
    """nDCG@10 with one RelevanceEvaluator per completion (how a one-sample-at-a-time reward would use it)."""
    import pytrec_eval

    out = np.zeros(len(parsed))
    for i, (answer, query_labels) in enumerate(zip(parsed, labels)):
        n, usable = len(query_labels), _usable(answer, len(query_labels))
        if usable:
            docno = _docnos(n)
            qrels = {"q": {docno[j]: int(query_labels[j]) for j in range(n)}}
            run = {"q": {docno[j]: float(usable.get(j + 1, 0.0)) for j in range(n)}}
            out[i] = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)["q"]["ndcg_cut_10"]
    return out


def pytrec_batched(parsed: list, labels: list[list[int]]) -> np.ndarray:
    """nDCG@10 with a single evaluator over all completions (each its own query): pytrec_eval at its best."""
    import pytrec_eval

    qrels, run = {}, {}
    for i, (answer, query_labels) in enumerate(zip(parsed, labels)):
        n, usable = len(query_labels), _usable(answer, len(query_labels))
        if usable:
            docno = _docnos(n)
            qrels[str(i)] = {docno[j]: int(query_labels[j]) for j in range(n)}
            run[str(i)] = {docno[j]: float(usable.get(j + 1, 0.0)) for j in range(n)}
    result = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    return np.array([result[str(i)]["ndcg_cut_10"] if str(i) in result else 0.0 for i in range(len(parsed))])


def ours_from_parsed(parsed: list, labels: list[list[int]]) -> np.ndarray:
    """Our scoring stage on already parsed answers: the same numpy path the `ndcg@10` reward takes."""
    batch = ListBatch.from_columns({"labels": labels}, len(labels), "bench")
    matrix, scored = batch.score_matrix([p.value if p.ok else None for p in parsed], 0.0)
    return np.where(scored, batch.ndcg(batch.order_from_scores(matrix, "prompt"), 10), 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--group", type=int, default=20, help="candidates per completion")
    parser.add_argument("--rollouts", type=int, default=8, help="completions per query")
    parser.add_argument("--chunk", type=int, default=10_000, help="the sides alternate per chunk, to share noise")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each step of a chunk this many times, keep the fastest (quieter on a busy machine)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    texts, labels, qids = make_batch(args.n, args.group, args.rollouts, args.seed)
    reward = get_reward("ndcg@10", answer="scores")
    steps = ("reward_call", "parse", "ours_scoring", "pytrec_per_sample", "pytrec_batched")
    seconds = dict.fromkeys(steps, 0.0)
    values: dict[str, list] = {key: [] for key in steps if key != "parse"}

    def timed(key, function, *call_args):
        best, result = float("inf"), None
        for _ in range(max(1, args.repeat)):
            start = time.perf_counter()
            result = function(*call_args)
            best = min(best, time.perf_counter() - start)
        seconds[key] += best
        return result

    for lo in range(0, args.n, args.chunk):
        part_texts, part_labels = texts[lo : lo + args.chunk], labels[lo : lo + args.chunk]
        values["reward_call"].append(timed("reward_call", lambda: reward(None, part_texts, labels=part_labels)))
        parsed = timed("parse", lambda: [parse_scores(t) for t in part_texts])
        values["ours_scoring"].append(timed("ours_scoring", ours_from_parsed, parsed, part_labels))
        values["pytrec_per_sample"].append(timed("pytrec_per_sample", pytrec_per_sample, parsed, part_labels))
        values["pytrec_batched"].append(timed("pytrec_batched", pytrec_batched, parsed, part_labels))

    arrays = {key: np.concatenate([np.asarray(v, dtype=np.float64) for v in parts]) for key, parts in values.items()}
    diff = max(float(np.max(np.abs(arrays[key] - arrays["pytrec_per_sample"]))) for key in arrays)
    assert diff < 1e-9, f"values differ: max |ours - pytrec_eval| = {diff}"
    # End to end, both sides parse the same completions with the same parser: ours is one reward call (its own
    # parse + batch scoring), the baseline is that parse + one pytrec_eval evaluator per completion.
    ours_e2e, pytrec_e2e = seconds["reward_call"], seconds["parse"] + seconds["pytrec_per_sample"]
    micro = lambda total: round(total / args.n * 1e6, 2)  # noqa: E731
    print(
        json.dumps(
            {
                "completions": args.n,
                "candidates": args.group,
                "mean_ndcg@10": round(float(arrays["reward_call"].mean()), 6),
                "max_abs_diff": diff,
                "seconds": {key: round(value, 3) for key, value in seconds.items()},
                "us_per_completion": {
                    "parse (both sides)": micro(seconds["parse"]),
                    "ours_scoring": micro(seconds["ours_scoring"]),
                    "ours_end_to_end (reward call)": micro(ours_e2e),
                    "pytrec_per_sample_scoring": micro(seconds["pytrec_per_sample"]),
                    "pytrec_per_sample_end_to_end": micro(pytrec_e2e),
                    "pytrec_batched_scoring": micro(seconds["pytrec_batched"]),
                },
                "speedup_scoring": round(seconds["pytrec_per_sample"] / seconds["ours_scoring"], 1),
                "speedup_end_to_end": round(pytrec_e2e / ours_e2e, 1),
                # What end to end could reach if our scoring and call overhead cost nothing: the shared parse
                # bounds the ratio.
                "end_to_end_ceiling_with_this_parse": round(pytrec_e2e / seconds["parse"], 1),
                "speedup_scoring_vs_pytrec_batched": round(seconds["pytrec_batched"] / seconds["ours_scoring"], 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
