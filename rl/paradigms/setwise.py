"""Setwise reranking (Rank-R1): one prompt holds a query and a numbered set of passages, and the model answers with
the index of the most relevant one, optionally after reasoning.

    <think>...</think>            (reasoning variant only)
    <answer>[3]</answer>

At inference a full candidate list (e.g. the BM25 top-100) is ranked by a tournament that works like Rank-R1's
setwise heapsort: the list is cut into fixed sets of `window` passages (a node and its window-1 children), each set's
winner goes up to the next level, and the root's winner is the best passage. It is removed and the tournament is
replayed for the next one, `top_k` times; only the sets that lost a member are asked again (answers are cached by
the exact passages shown), so the top 10 of 100 in windows of 20 take 6 + 9 x 2 = 24 prompts. Passages past the
top k keep their first-stage order below it. An answer that cannot be read picks the set's first passage (the
first-stage favourite) and is counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from rerank_rl.rewards.parsers import parse_choice
from rerank_rl.rl.config import register_schema
from rerank_rl.rl.errors import UserError
from rerank_rl.rl.paradigms.base import Paradigm
from rerank_rl.rl.recipe import DataSection, RerankerRecipe, RLSection

_SYSTEM = "Pick the passage that best answers the query."
_FORMAT = {
    "reasoning": "Think briefly in <think></think>, then reply <answer>[k]</answer> with the number of that passage.",
    "answer_only": "Reply only <answer>[k]</answer> with the number of that passage.",
}
_TAGS = {"reasoning": ("think", "answer"), "answer_only": ("answer",)}


class Setwise(Paradigm):
    name = "setwise"
    prompt_version = "setwise-v1"
    answer_format = "choice"
    variants = tuple(_FORMAT)
    default_rewards = {"rank_r1": 1.0, "rank_r1_answer_only": 1.0}

    @property
    def recipe(self):
        return SetwiseRecipe

    def build_messages(self, query, passages, variant="answer_only", max_chars=400):
        self.check_variant(variant)
        numbered = "\n".join(f"[{i}] {' '.join(p.split())[:max_chars]}" for i, p in enumerate(passages, start=1))
        user = f"Query: {query}\n\nPassages:\n{numbered}\n\nWhich passage, [1] to [{len(passages)}], is most relevant?"
        return [{"role": "system", "content": f"{_SYSTEM} {_FORMAT[variant]}"}, {"role": "user", "content": user}]

    def gold_answer(self, labels, variant="answer_only", max_grade=3, teacher_scores=None):
        """The passage with the highest teacher score, else the highest grade (the first of equals)."""
        values = list(teacher_scores) if teacher_scores is not None else list(labels)
        best = max(range(len(values)), key=lambda i: (values[i], -i)) + 1
        answer = f"<answer>[{best}]</answer>"
        if variant == "answer_only":
            return answer
        return f"<think>[{best}] answers the query best; the others help less.</think>\n{answer}"

    def parse(self, completion, num_passages, variant="answer_only"):
        """The chosen passage (1-based) when an answer names exactly one passage in range, else None."""
        parsed = parse_choice(completion, _TAGS.get(variant, ("answer",)))
        return parsed.value if parsed.ok and 1 <= parsed.value <= num_passages else None

    def max_new_tokens(self, num_passages, variant):
        return 10 + (64 if variant == "reasoning" else 0)  # `<answer>[12]</answer>` is about 8 tokens

    def inference_settings(self, config) -> dict:
        section = config.evaluate
        budget = config.rl.max_completion_length if config.variant == "reasoning" else None
        return {"window": section.window, "top_k": section.top_k, "fusion_weight": None,
                "max_doc_chars": config.data.max_doc_chars, "batch_size": section.batch_size,
                "decode_budget": budget}

    def check_settings(self, settings) -> None:
        if settings["window"] < 2:
            raise ValueError(f"window must hold at least 2 passages to choose between, got {settings['window']}")
        if settings["top_k"] < 1:
            raise ValueError(f"top_k must be at least 1, got {settings['top_k']}")

    def rank(self, examples, generate, settings, stats=None):
        if settings.get("fusion_weight") is not None:
            raise UserError("the setwise paradigm ranks by choices and has no scores to fuse: use --fusion none")
        self.check_settings(settings)
        variant, max_chars = settings["variant"], settings["max_doc_chars"]
        budget = settings.get("decode_budget") or self.max_new_tokens(settings["window"], variant)
        answers = Counter()

        def choose(jobs: list[tuple[dict, tuple[int, ...]]]) -> list[int]:
            prompts = [self.build_messages(ex["query"], [ex["doc_texts"][m] for m in members], variant, max_chars)
                       for ex, members in jobs]
            picks = []
            for (_, members), text in zip(jobs, generate(prompts, budget) if prompts else []):
                k = self.parse(text, len(members), variant)
                answers[k or "unparsed"] += 1
                picks.append(members[(k or 1) - 1])
            return picks

        order = tournament_top_k(examples, choose, settings["window"], settings["top_k"])
        if stats is not None:
            stats.update(answer_stats(answers, settings["window"]))
        run = {}
        for ex in examples:
            top = order[ex["qid"]]
            chosen = {m: len(top) - i for i, m in enumerate(top)}  # k .. 1 for the top k, in order
            # the rest keep first-stage order below every chosen passage
            run[ex["qid"]] = [(d, float(chosen.get(i, -1e-6 * i))) for i, d in enumerate(ex["doc_ids"])]
        return run

    def describe_answers(self, answers):
        return describe_answers(answers)


def tournament_top_k(examples: Sequence[dict], choose: Callable, window: int, top_k: int) -> dict[str, list[int]]:
    """{qid: positions of the top_k passages, best first}. `choose(jobs)` answers a batch of jobs (example, member
    positions shown in that order) with the winning position of each; all queries are played together, one tree
    level at a time, so each model call holds every prompt that level needs."""
    cache: dict[tuple[str, tuple[int, ...]], int] = {}
    alive = {ex["qid"]: list(range(len(ex["doc_ids"]))) for ex in examples}
    result = {ex["qid"]: [] for ex in examples}
    for _ in range(top_k):
        # level 0: fixed sets of original positions; a set shrinks as its passages are taken
        nodes = {qid: [tuple(i for i in left if s <= i < s + window) for s in range(0, len(ex["doc_ids"]), window)]
                 for ex in examples for qid, left in [(ex["qid"], alive[ex["qid"]])]}
        while True:
            jobs = [(ex, members) for ex in examples for members in nodes[ex["qid"]]
                    if len(members) > 1 and (ex["qid"], members) not in cache]
            for (ex, members), pick in zip(jobs, choose(jobs) if jobs else []):
                cache[(ex["qid"], members)] = pick
            winners = {qid: [cache.get((qid, m), m[0]) for m in sets if m] for qid, sets in nodes.items()}
            if all(len(w) <= 1 for w in winners.values()):
                break
            nodes = {qid: [tuple(w[s:s + window]) for s in range(0, len(w), window)] for qid, w in winners.items()}
        for qid, w in winners.items():
            if w:
                result[qid].append(w[0])
                alive[qid].remove(w[0])
    return result


def answer_stats(answers: Counter, window: int) -> dict:
    """Prompts asked and what they answered: how often each position [k] was chosen (a model that always answers [1]
    keeps the first-stage order) and how many answers could not be read."""
    picked = {str(k): n for k, n in sorted((k, n) for k, n in answers.items() if k != "unparsed")}
    total = sum(answers.values())
    return {"prompts": total, "window": window, "passages": total, "unparsed": answers.get("unparsed", 0),
            "choice_counts": picked}


def describe_answers(answers: dict) -> str:
    chosen = ", ".join(f"[{k}] x{n}" for k, n in answers["choice_counts"].items()) or "none"
    return (f"{answers['prompts']} setwise prompts of up to {answers['window']} passages; {answers['unparsed']} "
            f"answers unreadable (first passage taken); passages chosen: {chosen}.")


@dataclass
class SetwiseEvalSection:
    enabled: bool = True
    before_training: bool = True
    window: int = 20  # passages per prompt: a node and its 19 children in Rank-R1's heapsort
    top_k: int = 10   # passages extracted by the tournament; the rest keep first-stage order
    batch_size: int = 8
    metrics: list[str] = field(default_factory=lambda: ["ndcg@10", "ndcg@5", "mrr@10", "recall@5"])
    # Training probes read groupwise answers only (RerankerRecipe.validate).
    probe_every: int = 0
    probe_queries: int = 0

    def validate(self) -> None:
        PARADIGM.check_settings({"window": self.window, "top_k": self.top_k})


@dataclass
class SetwiseRLSection(RLSection):
    rewards: dict = field(default_factory=lambda: {"rank_r1_answer_only": 1.0})


@dataclass
class SetwiseDataSection(DataSection):
    group_sizes: list[int] = field(default_factory=lambda: [20])  # Rank-R1: one positive + 19 negatives


@dataclass
@register_schema("setwise")
class SetwiseRecipe(RerankerRecipe):
    paradigm: Literal["setwise"] = "setwise"
    name: str = "rank-r1"
    variant: Literal["answer_only", "reasoning"] = "answer_only"
    data: SetwiseDataSection = field(default_factory=SetwiseDataSection)
    rl: SetwiseRLSection = field(default_factory=SetwiseRLSection)
    evaluate: SetwiseEvalSection = field(default_factory=SetwiseEvalSection)

    def validate(self) -> None:
        self.check_answer_only_reward("rank_r1", "<think> and <answer>", "0")
        super().validate()


PARADIGM = Setwise()
