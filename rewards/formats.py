"""Format rewards: did the model follow the output format? Useful alone early in RL, or as a small weighted
term next to a task reward.

* `format`: 1 when the tags are right (`tags`, default `("think", "answer")`: each once, closed, in order, nothing
  after the last), else 0.
* `answer_format`: 1 when the answer also parses cleanly for a paradigm (`answer` = "scores", "choice", "grade",
  "permutation" or "labels"; see `parsers` for what "cleanly" means), else 0.

Neither reads any column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .contract import FORMAT_OK, Reward, RewardOutput
from .parsers import Parsed, check_tags, parse_choice, parse_grade, parse_labels, parse_permutation, parse_scores
from .registry import register_reward

__all__ = ["TagFormat", "AnswerFormat"]

PARSERS: dict[str, Callable[[str, Sequence[str]], Parsed]] = {
    "scores": lambda text, tags: parse_scores(text, tags),
    "choice": lambda text, tags: parse_choice(text, tags),
    "grade": lambda text, tags: parse_grade(text, tags=tags),
    "permutation": lambda text, tags: parse_permutation(text, tags),
    "labels": lambda text, tags: parse_labels(text, tags),
}


@register_reward("format")
class TagFormat(Reward):
    """1 when the required tags are well formed, else 0."""

    low, high = 0.0, 1.0

    def __init__(self, tags: Sequence[str] = ("think", "answer"), name: str = "format"):
        self.tags, self.name = tuple(tags), name

    def compute(self, texts, columns):
        values = [float(check_tags(t, self.tags)) for t in texts]
        return RewardOutput(values, {FORMAT_OK: list(values)})


@register_reward("answer_format")
class AnswerFormat(Reward):
    """1 when the tags are right and the answer parses cleanly for the paradigm, else 0."""

    low, high = 0.0, 1.0

    def __init__(self, answer: str = "scores", tags: Sequence[str] = ("think", "answer"), name: str | None = None):
        if answer not in PARSERS:
            raise ValueError(f"answer must be one of {sorted(PARSERS)}, got {answer!r}")
        self.answer, self.tags, self.name = answer, tuple(tags), name or f"answer_format_{answer}"
        self.answer_format = answer  # what it reads: a recipe pairs it only with a paradigm of that format

    def compute(self, texts, columns):
        parse = PARSERS[self.answer]
        values = [float(parse(t, self.tags).format_ok) for t in texts]
        return RewardOutput(values, {FORMAT_OK: list(values)})
