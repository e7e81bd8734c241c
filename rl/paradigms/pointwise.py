"""Pointwise reranking (ERank): one prompt holds a query and one passage, and the model answers a 0-10 integer grade,
optionally after reasoning.

    <think>...</think>            (reasoning variant only)
    <answer>7</answer>

Training units are single passages: the data stage cuts each sampled group into one unit per passage
(`training_units`), so SFT teaches one grade per prompt, while every unit keeps its group's `qid`. RL rows carry
`label`, `doc_id`, `teacher_score` and the reference score `ref_score` t of ERank's r_RR (the teacher's score where a
synthesis teacher gave one, else the gold grade on the 0-10 scale: the SFT target). r_RR compares all N documents x
G rollouts of a list, so the recipe enforces whole lists per RL step (rows stay in list order, prompts_per_step a
multiple of the group size, one worker).

Inference scores every passage independently: s * P(s), where P(s) is the probability of the answer's number tokens
under the model (ERank's ranking score), read from the generator's token log-probabilities; a generator without
them (a plain callable) gives s. An unreadable answer scores 0.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from rerank_rl.rewards.parsers import parse_grade
from rerank_rl.rl.config import register_schema
from rerank_rl.rl.paradigms.base import Paradigm
from rerank_rl.rl.paradigms.groupwise import fuse, grade_to_score
from rerank_rl.rl.recipe import DataSection, RerankerRecipe, RLSection

_SYSTEM = "Grade how well the passage answers the query, 0 (off-topic) to 10 (states the answer)."
_FORMAT = {
    "reasoning": "Think briefly in <think></think>, then reply <answer>7</answer> with the grade.",
    "answer_only": "Reply only <answer>7</answer> with the grade.",
}
_TAGS = {"reasoning": ("think", "answer"), "answer_only": ("answer",)}
_ANSWER_NUMBER = re.compile(r"<answer>\s*(\d{1,2})\s*</answer>")


class Pointwise(Paradigm):
    name = "pointwise"
    prompt_version = "pointwise-v1"
    answer_format = "grade"
    variants = tuple(_FORMAT)
    default_rewards = {"erank_rr": 1.0, "erank_rr_answer_only": 1.0}
    reward_columns = ("qid", "source_qid", "doc_id", "label", "ref_score", "teacher_score")
    example_passages = ("<passage>",)
    whole_lists_per_step = True  # r_RR: every rollout of every document of a list in one reward call

    @property
    def recipe(self):
        return PointwiseRecipe

    def build_messages(self, query, passages, variant="answer_only", max_chars=400):
        self.check_variant(variant)
        if len(passages) != 1:
            raise ValueError(f"a pointwise prompt holds one passage, got {len(passages)}")
        passage = " ".join(passages[0].split())[:max_chars]
        user = f"Query: {query}\n\nPassage: {passage}\n\nGrade (0-10):"
        return [{"role": "system", "content": f"{_SYSTEM} {_FORMAT[variant]}"}, {"role": "user", "content": user}]

    def gold_answer(self, labels, variant="answer_only", max_grade=3, teacher_scores=None):
        grade = _target(labels[0], teacher_scores[0] if teacher_scores is not None else None, max_grade)
        answer = f"<answer>{grade}</answer>"
        if variant == "answer_only":
            return answer
        verdict = "answers the query" if grade >= 8 else "is related but incomplete" if grade > 0 else "does not help"
        return f"<think>The passage {verdict}.</think>\n{answer}"

    def parse(self, completion, num_passages=1, variant="answer_only"):
        parsed = parse_grade(completion, 0, 10, _TAGS.get(variant, ("answer",)))
        return float(parsed.value) if parsed.ok else None

    def max_new_tokens(self, num_passages, variant):
        return 8 + (64 if variant == "reasoning" else 0)  # `<answer>10</answer>` is about 6 tokens

    # --- training ------------------------------------------------------------------------------------------------
    def training_units(self, groups: list[dict]) -> list[dict]:
        """One single-passage unit per passage of each group, in group order; the group's id stays in `qid`."""
        units = []
        for g in groups:
            for i, doc in enumerate(g["doc_ids"]):
                unit = {**g, **{k: [g[k][i]] for k in ("doc_ids", "doc_texts", "labels", "first_stage_scores")}}
                if g.get("teacher_scores") is not None:
                    unit["teacher_scores"] = [g["teacher_scores"][i]]
                unit["doc_id"] = doc
                units.append(unit)
        return units

    def rl_rows(self, groups, config):
        max_grade = max(3, max(max(labels) for labels in groups["labels"]) or 1)
        teacher = groups["teacher_scores"] if "teacher_scores" in groups.column_names else [None] * len(groups)
        rows = {"label": [labels[0] for labels in groups["labels"]],
                "teacher_score": [t[0] if t else None for t in teacher]}
        rows["ref_score"] = [float(_target(label, t, max_grade)) for label, t in zip(rows["label"],
                                                                                       rows["teacher_score"])]
        dataset = super().rl_rows(groups, config)
        for name, values in rows.items():
            dataset = dataset.add_column(name, values)
        return dataset

    # --- inference -----------------------------------------------------------------------------------------------
    def inference_settings(self, config) -> dict:
        section = config.evaluate
        budget = config.rl.max_completion_length if config.variant == "reasoning" else None
        return {"fusion_weight": section.fusion_weight, "max_doc_chars": config.data.max_doc_chars,
                "batch_size": section.batch_size, "decode_budget": budget}

    def rank(self, examples, generate, settings, stats=None):
        variant, max_chars = settings["variant"], settings["max_doc_chars"]
        prompts = [self.build_messages(ex["query"], [text], variant, max_chars)
                   for ex in examples for text in ex["doc_texts"]]
        budget = settings.get("decode_budget") or self.max_new_tokens(1, variant)
        reader = getattr(generate, "generate_with_logprobs", None)
        answered = reader(prompts, budget) if reader else [(text, None) for text in generate(prompts, budget)]
        grades = Counter()
        scores = []
        for text, tokens in answered:
            grade = self.parse(text, 1, variant)
            grades["unparsed" if grade is None else f"{grade:g}"] += 1
            scores.append(0.0 if grade is None else grade * answer_probability(text, tokens))
        if stats is not None:
            stats.update({"passages": len(scores), "unparsed": grades.pop("unparsed", 0),
                          "grade_counts": dict(sorted(grades.items(), key=lambda kv: float(kv[0])))})
        run, at = {}, 0
        weight = settings.get("fusion_weight")
        for ex in examples:
            n = len(ex["doc_ids"])
            # s * P(s) on 0-1 like the other paradigms; ties broken by first-stage order
            mine = [s / 10.0 - 1e-6 * pos for pos, s in enumerate(scores[at:at + n])]
            at += n
            if weight is not None:
                mine = fuse(mine, ex["first_stage_scores"], weight)
            run[ex["qid"]] = list(zip(ex["doc_ids"], mine))
        return run

    fuse = staticmethod(fuse)  # serving fuses per request, as `rank` does

    def describe_answers(self, answers):
        given = ", ".join(f"{g} x{n}" for g, n in answers["grade_counts"].items()) or "none"
        return (f"{answers['passages'] - answers['unparsed']} of {answers['passages']} passages graded "
                f"(unreadable count as 0); grades given: {given}.")


def _target(label, teacher_score, max_grade: int) -> int:
    """The 0-10 grade taught for a passage: the teacher's score where there is one, else the gold grade mapped."""
    if teacher_score is not None:
        return int(round(min(10.0, max(0.0, float(teacher_score)))))
    return grade_to_score(int(label), max_grade)


def answer_probability(text: str, tokens) -> float:
    """P(s): the product of the probabilities of the tokens that spell the answer's number, 1.0 when the generator
    gave no token log-probabilities (or the number cannot be located in them)."""
    match = _ANSWER_NUMBER.search(text)
    if not tokens or not match:
        return 1.0
    start, end = match.span(1)
    logprob, at = 0.0, 0
    for piece, value in tokens:
        if at < end and at + len(piece) > start:  # the token overlaps the number's characters
            logprob += value
        at += len(piece)
    return math.exp(logprob) if at >= end else 1.0


@dataclass
class PointwiseEvalSection:
    enabled: bool = True
    before_training: bool = True
    fusion_weight: float | None = None
    batch_size: int = 16
    metrics: list[str] = field(default_factory=lambda: ["ndcg@10", "ndcg@5", "mrr@10", "recall@5"])
    # Training probes read groupwise answers only (RerankerRecipe.validate).
    probe_every: int = 0
    probe_queries: int = 0


@dataclass
class PointwiseRLSection(RLSection):
    rewards: dict = field(default_factory=lambda: {"erank_rr_answer_only": 1.0})
    prompts_per_step: int = 6  # one whole list of data.group_sizes passages


@dataclass
class PointwiseDataSection(DataSection):
    group_sizes: list[int] = field(default_factory=lambda: [6])  # ERank: 20 (1 positive, 10 hard, 9 deeper)


@dataclass
@register_schema("pointwise")
class PointwiseRecipe(RerankerRecipe):
    paradigm: Literal["pointwise"] = "pointwise"
    name: str = "erank"
    variant: Literal["answer_only", "reasoning"] = "answer_only"
    data: PointwiseDataSection = field(default_factory=PointwiseDataSection)
    rl: PointwiseRLSection = field(default_factory=PointwiseRLSection)
    evaluate: PointwiseEvalSection = field(default_factory=PointwiseEvalSection)

    def validate(self) -> None:
        self.check_answer_only_reward("erank_rr", "<think> and <answer>", "the -1 penalty")
        sizes = set(self.data.group_sizes)
        if self.rl.enabled and (len(sizes) != 1 or self.rl.prompts_per_step % next(iter(sizes))):
            raise ValueError(f"rl.prompts_per_step ({self.rl.prompts_per_step}) must be a multiple of the one "
                             f"list size in data.group_sizes ({sorted(sizes)}): ERank's r_RR ranks all documents x "
                             f"rollouts of a list together, so each RL step must hold whole lists")
        if self.rl.enabled and self.ray.enabled and self.ray.num_workers > 1:
            raise ValueError("ray.num_workers: pointwise RL needs 1 worker (each worker scores its own share of a "
                             "step, which would split a list across reward calls)")
        super().validate()


PARADIGM = Pointwise()

