"""Rank-R1's setwise reward: 1 when the output has the format `<think>…</think><answer>[k]</answer>` and
candidate k is a gold positive, else 0.

Columns: `labels`, graded gold of the candidates in prompt order (`[k]` is the k-th); positives are
`label >= relevant_at` (default 1). A row whose `labels` is None gets None. An id outside [1, N], several different
ids, or an answer that is not exactly `[k]` (e.g. a bare `k`) scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from .contract import FORMAT_OK, Reward, RewardOutput, column
from .parsers import parse_choice
from .registry import register_reward

__all__ = ["RankR1", "RankR1AnswerOnly"]


@register_reward("rank_r1")
class RankR1(Reward):
    """Rank-R1 setwise reward in {0, 1}. Components: correct (choice right, format aside), format_ok."""

    low, high = 0.0, 1.0
    answer_format = "choice"

    def __init__(self, relevant_at: float = 1, tags: Sequence[str] = ("think", "answer"), name: str = "rank_r1"):
        self.relevant_at, self.tags, self.name = relevant_at, tuple(tags), name

    def compute(self, texts, columns):
        labels = column(columns, "labels", len(texts), self.name)
        totals: list[float | None] = []
        correct: list[float | None] = []
        format_ok: list[float | None] = []
        for text, gold in zip(texts, labels):
            if gold is None:
                for series in (totals, correct, format_ok):
                    series.append(None)
                continue
            parsed = parse_choice(text, self.tags)
            k = parsed.value if parsed.ok else 0
            right = 1 <= k <= len(gold) and float(gold[k - 1]) >= self.relevant_at
            correct.append(float(right))
            format_ok.append(float(parsed.format_ok))
            totals.append(float(right and parsed.format_ok))
        return RewardOutput(totals, {"correct": correct, FORMAT_OK: format_ok})


@register_reward("rank_r1_answer_only")
class RankR1AnswerOnly(RankR1):
    """Rank-R1 for the no-reasoning variant: only `<answer>[k]</answer>` is required."""

    def __init__(self, relevant_at: float = 1, tags: Sequence[str] = ("answer",), name: str = "rank_r1_answer_only"):
        super().__init__(relevant_at, tags, name)
