"""Groupwise reranking (GroupRank): one prompt holds a query and a numbered group of passages, and the model
answers with a 0-10 score for every passage as a JSON object, optionally after a short reasoning section.

    <reason>...</reason>            (reasoning variant only)
    <answer>{"[1]": 7, "[2]": 0}</answer>

At inference a long candidate list is cut into windows of `window` passages moved by `stride`, repeated over fresh
shuffles; a passage's score is the mean of score/10 over the windows it appeared in (a window that omits it counts
as 0, which is what the reward also assumes). A window's scores are either decoded and parsed (`scoring: greedy`)
or read as expected values from the model's answer distribution (`scoring: expected`, rl/scoring.py). Optional
fusion mixes in the min-max normalised first-stage score.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Sequence

from rerank_rl.rewards.parsers import parse_scores
from rerank_rl.rl.paradigms.base import Paradigm

PROMPT_VERSION = "groupwise-v3"
DEFAULT_REWARDS = {"grouprank": 1.0}
ANSWER_FORMAT = "scores"  # the parser its answers follow: picks the hacking probes of `rerank-rl reward probe`

# Short on purpose: on CPU every prompt token is paid for in every training step and every window, and the
# instructions are the same in all of them (v3 cut the system prompt from ~95 to ~45 tokens).
_RUBRIC = "Score how well each passage answers the query: 10 states the answer, 0 is off-topic."
_FORMAT = {
    "reasoning": 'Think briefly in <reason></reason>, then reply <answer>{"[1]": 9, "[2]": 0}</answer> with '
                 'every passage.',
    "answer_only": 'Reply only <answer>{"[1]": 9, "[2]": 0}</answer> with every passage.',
}
VARIANTS = tuple(_FORMAT)


def build_messages(query: str, passages: Sequence[str], variant: str = "answer_only", max_chars: int = 400) -> list[dict]:
    """Chat messages for one group. Passages are trimmed to `max_chars` characters to bound the prompt length."""
    if variant not in _FORMAT:
        raise ValueError(f"unknown groupwise variant {variant!r} (choose from {', '.join(VARIANTS)})")
    numbered = "\n".join(f"[{i}] {' '.join(p.split())[:max_chars]}" for i, p in enumerate(passages, start=1))
    user = f"Query: {query}\n\nPassages:\n{numbered}\n\nScore all {len(passages)} passages, [1] to [{len(passages)}]."
    return [{"role": "system", "content": f"{_RUBRIC} {_FORMAT[variant]}"}, {"role": "user", "content": user}]


def grade_to_score(grade: int, max_grade: int) -> int:
    """Map a graded label (0..max_grade) onto the 0-10 answer scale."""
    return round(10 * max(0, grade) / max(1, max_grade))


def answer_scores(labels: Sequence[int], max_grade: int = 3,
                  teacher_scores: Sequence[float] | None = None) -> list[int]:
    """The 0-10 score each passage should get: the teacher's where a synthesis teacher gave one, else its grade."""
    if teacher_scores is not None:
        return [int(round(min(10.0, max(0.0, s)))) for s in teacher_scores]
    return [grade_to_score(g, max_grade) for g in labels]


def gold_answer(labels: Sequence[int], variant: str = "answer_only", max_grade: int = 3,
                teacher_scores: Sequence[float] | None = None) -> str:
    """The target completion for SFT: teacher scores (0-10) where a synthesis teacher gave them, else the gold
    grades mapped onto 0-10, rendered in the answer format."""
    scores = {f"[{i}]": v for i, v in enumerate(answer_scores(labels, max_grade, teacher_scores), start=1)}
    answer = f"<answer>{json.dumps(scores)}</answer>"
    if variant == "answer_only":
        return answer
    best = [k for k, s in scores.items() if s >= 8]
    partial = [k for k, s in scores.items() if 0 < s < 8]
    parts = [f"{', '.join(best)} {'answers' if len(best) == 1 else 'answer'} the query" if best
             else "No passage answers the query"]
    if partial:
        parts.append(f"{', '.join(partial)} {'is' if len(partial) == 1 else 'are'} related but incomplete")
    parts.append("the others do not help")
    return f"<reason>{'; '.join(parts)}.</reason>\n{answer}"


def parse(completion: str, num_passages: int) -> list[float | None]:
    """Scores per passage position from a completion, clipped to 0-10; None where a passage got no score."""
    parsed = parse_scores(completion)
    scores = parsed.value or {}
    return [None if scores.get(i) is None else min(10.0, max(0.0, scores[i])) for i in range(1, num_passages + 1)]


def max_new_tokens(num_passages: int, variant: str) -> int:
    """Generation budget: about 7 tokens per `"[i]": s, ` pair, plus room for the tags (and the reasoning)."""
    return 12 + 8 * num_passages + (64 if variant == "reasoning" else 0)


def check_stride(window: int, stride: int) -> None:
    """A stride past the window skips passages; stride 0 never advances."""
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be between 1 and the window ({window}), got {stride}")


def windows(n: int, window: int, stride: int) -> list[range]:
    """Start-anchored windows covering positions 0..n-1; the last one is moved back to end at n."""
    check_stride(window, stride)
    if n <= window:
        return [range(n)]
    starts = list(range(0, n - window + 1, stride))
    if starts[-1] + window < n:
        starts.append(n - window)
    return [range(s, s + window) for s in starts]


SCORINGS = ("expected", "greedy")


def rank_candidates(
    examples: Sequence[dict],
    generate: Callable[[list[list[dict]], int], list[str]],
    variant: str = "answer_only",
    window: int = 20,
    stride: int = 10,
    repeats: int = 1,
    fusion_weight: float | None = None,
    max_chars: int = 400,
    seed: int = 0,
    stats: dict | None = None,
    scoring: str = "greedy",
    decode_budget: int | None = None,
) -> dict[str, list[tuple[str, float]]]:
    """Rerank full candidate lists. Returns {qid: [(doc_id, score)]}.

    scoring `greedy`: `generate(list_of_messages, max_new_tokens) -> completions` decodes the answers and they are
    parsed (any backend: transformers, vLLM, an endpoint) with up to `decode_budget` new tokens (default: the
    answer's own size, `max_new_tokens`; the reasoning variant should get its training completion length).
    scoring `expected`: `generate.score_slots(list_of_messages, sizes)` reads each passage's score distribution
    (rl/scoring.py) and the passage gets its expected score; answer_only variant only.
    A `stats` dict is filled with what the model answered (see `answer_stats`)."""
    if scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {scoring!r} (choose from {', '.join(SCORINGS)})")
    if scoring == "expected" and variant != "answer_only":
        raise ValueError("scoring 'expected' reads the scores of an answer-only completion; the reasoning variant "
                         "needs scoring 'greedy'")
    rng = random.Random(seed)
    jobs: list[tuple[str, list[int]]] = []
    prompts: list[list[dict]] = []
    for ex in examples:
        n = len(ex["doc_ids"])
        for _ in range(repeats):
            order = list(range(n))
            if repeats > 1:
                rng.shuffle(order)
            for win in windows(n, window, stride):
                members = [order[i] for i in win]
                jobs.append((ex["qid"], members))
                prompts.append(build_messages(ex["query"], [ex["doc_texts"][m] for m in members], variant, max_chars))
    if scoring == "expected":
        slots = generate.score_slots(prompts, [len(members) for _, members in jobs])
        answered = [[float(g) for g, _ in row] for row in slots]  # what greedy decoding would have written
        parsed = [[e for _, e in row] for row in slots]
    else:
        budget = decode_budget or max_new_tokens(min(window, max(len(ex["doc_ids"]) for ex in examples)), variant)
        completions = generate(prompts, budget)
        answered = parsed = [parse(text, len(members)) for (_, members), text in zip(jobs, completions)]
    if stats is not None:
        stats.update(answer_stats(answered))
    totals: dict[str, list[float]] = {ex["qid"]: [0.0] * len(ex["doc_ids"]) for ex in examples}
    counts: dict[str, list[int]] = {ex["qid"]: [0] * len(ex["doc_ids"]) for ex in examples}
    for (qid, members), scores in zip(jobs, parsed):
        for member, score in zip(members, scores):
            totals[qid][member] += (score or 0.0) / 10.0
            counts[qid][member] += 1
    run = {}
    for ex in examples:
        qid = ex["qid"]
        scores = [t / max(c, 1) for t, c in zip(totals[qid], counts[qid])]
        # 0-10 answers tie often; a tiny first-stage-order bonus breaks ties the way the retriever would.
        scores = [s - 1e-6 * pos for pos, s in enumerate(scores)]
        if fusion_weight is not None:
            scores = fuse(scores, ex["first_stage_scores"], fusion_weight)
        run[qid] = list(zip(ex["doc_ids"], scores))
    return run


def answer_stats(parsed: Sequence[list[float | None]]) -> dict:
    """What a model answered over all windows: how many passages got no score (counted as 0) and how often each
    score was given. A model that gives every passage the same score leaves the first-stage order unchanged."""
    given = Counter(s for scores in parsed for s in scores if s is not None)
    return {"windows": len(parsed), "passages": sum(len(s) for s in parsed),
            "unscored_passages": sum(s is None for scores in parsed for s in scores),
            "score_counts": {f"{score:g}": n for score, n in sorted(given.items())}}


def describe_answers(answers: dict) -> str:
    """`answer_stats` in one sentence, for reports and the command line."""
    given = ", ".join(f"{score} x{n}" for score, n in answers["score_counts"].items()) or "none"
    return (f"{answers['passages'] - answers['unscored_passages']} of {answers['passages']} passages scored over "
            f"{answers['windows']} windows (unscored count as 0); scores given: {given}.")


def fuse(rerank_scores: Sequence[float], first_stage: Sequence[float], weight: float) -> list[float]:
    """weight * rerank + (1 - weight) * min-max normalised first-stage score (GroupRank used weight 0.6)."""
    low, high = min(first_stage), max(first_stage)
    span = (high - low) or 1.0
    return [weight * r + (1 - weight) * (f - low) / span for r, f in zip(rerank_scores, first_stage)]


class Groupwise(Paradigm):
    """The groupwise paradigm on the protocol; the module-level functions above stay its implementation (and the
    names other modules import)."""

    name = "groupwise"
    supports_probes = True
    prompt_version = PROMPT_VERSION
    answer_format = ANSWER_FORMAT
    variants = VARIANTS
    default_rewards = DEFAULT_REWARDS

    @property
    def recipe(self):
        from rerank_rl.rl.recipe import GroupwiseRecipe

        return GroupwiseRecipe

    def build_messages(self, query, passages, variant="answer_only", max_chars=400):
        return build_messages(query, passages, variant, max_chars)

    def gold_answer(self, labels, variant="answer_only", max_grade=3, teacher_scores=None):
        return gold_answer(labels, variant, max_grade, teacher_scores)

    def parse(self, completion, num_passages):
        return parse(completion, num_passages)

    def max_new_tokens(self, num_passages, variant):
        return max_new_tokens(num_passages, variant)

    def inference_settings(self, config) -> dict:
        section = config.evaluate
        # The reasoning variant writes as much as it was trained to: decode with the training completion length.
        budget = config.rl.max_completion_length if config.variant == "reasoning" else None
        return {"window": section.window, "stride": section.stride, "repeats": section.repeats,
                "fusion_weight": section.fusion_weight, "max_doc_chars": config.data.max_doc_chars,
                "seed": config.seed, "batch_size": section.batch_size, "scoring": section.scoring,
                "decode_budget": budget}

    def check_settings(self, settings) -> None:
        check_stride(settings["window"], settings["stride"])

    def rank(self, examples, generate, settings, stats=None):
        return rank_candidates(
            examples, generate, variant=settings["variant"], window=settings["window"], stride=settings["stride"],
            repeats=settings["repeats"], fusion_weight=settings["fusion_weight"], max_chars=settings["max_doc_chars"],
            seed=settings["seed"], stats=stats, scoring=settings.get("scoring", "greedy"),
            decode_budget=settings.get("decode_budget"))

    def describe_answers(self, answers):
        return describe_answers(answers)

    def bundle_fields(self, config):
        settings = self.inference_settings(config)
        return {**super().bundle_fields(config),
                "parser": "rerank_rl.rewards.parsers:parse_scores",
                "decoding": {"do_sample": False, "scoring": settings["scoring"],
                             "max_new_tokens": settings["decode_budget"] or "12 + 8 * passages (+64 for reasoning)"}}

    fuse = staticmethod(fuse)
    windows = staticmethod(windows)
    check_stride = staticmethod(check_stride)
    answer_stats = staticmethod(answer_stats)
    rank_candidates = staticmethod(rank_candidates)


PARADIGM = Groupwise()
