"""GroupRank's groupwise reward (the paper left the RL code unreleased; every open choice is an option here).

    R = R_G                        when the tags are present and the answer holds a valid JSON score object
      = invalid_json_penalty (-0.1) when the tags are present but the JSON is invalid (or scores no candidate)
      = no_tags_penalty (-0.5)      otherwise
    R_G = nDCG@k + gamma·Recall@recall_k + epsilon·(1 − JS(P‖Q))       (gamma 0.2, epsilon 0.1, k = recall_k = 10)

Choices the paper leaves open, with the defaults taken here:

* P and Q: predicted scores and gold labels of the N candidates of the prompt, turned into distributions the same
  way: `distribution="sum"` (clip at 0, divide by the sum; all zero -> uniform) or `"softmax"` (temperature `T`).
* JS uses log base 2, so JS and 1 − JS lie in [0, 1] and R_G in [0, 1 + gamma + epsilon].
* Recall counts `label >= relevant_at` as relevant (default 1: any positive grade; use 2 for TREC DL qrels, or a
  higher cut for 0-10 teacher scores).
* A candidate the answer leaves out scores `missing_score` (0); a repeated id keeps its first score; ids outside
  [1, N] are ignored; an answer with no in-range id counts as unparsable (-0.1), so `{}` earns nothing.
* Equal predicted scores rank in prompt order (`ties="prompt"`; prompts are shuffled in training) or with the
  less relevant candidate first (`"pessimistic"`).
* Valid JSON (`strict_json=True`, the default, as in the paper's reward): the answer's object (the last fenced
  json block or last `{...}`) must decode as JSON after at most the spec's two repairs, `"[7]]"` -> `"[7]"` and a
  missing closing `}`; anything else with tags (`Passage 1: 9 points`, `{[1]: 9}`, `{'[1]': 9}`) earns -0.1.
  `strict_json=False` scores whatever the lenient inference parser recovers (single quotes, bare keys, trailing
  commas, `id: score` pairs), which leaves -0.1 only for answers without any score.
* Tags: the reasoning variant needs `<reason>…</reason><answer>…</answer>` (`tags=("reason", "answer")`);
  the answer-only variant (`grouprank_answer_only`) needs just `<answer>…</answer>`.

Beyond the paper: `score_weight` (default 0, off) adds delta·fit, fit = 1 − mean over the candidates of
(score/10 − label/max_grade)², the squared error of each score against its gold grade on the same scale. It is the
only term that tells completions apart when a prompt holds one passage (nDCG, Recall and JS are then constant), as
in the single-passage windows of the CPU recipes.

Columns: `labels` (graded gold in prompt order), optional `doc_ids` (same length). See `ranking` for conventions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .contract import FORMAT_OK, Reward, RewardOutput
from .parsers import parse_scores
from .ranking import ListBatch, _check_ties
from .registry import register_reward

__all__ = ["GroupRank", "GroupRankAnswerOnly", "to_distribution", "js_divergence"]


def to_distribution(values: np.ndarray, valid: np.ndarray, how: str = "sum", temperature: float = 1.0) -> np.ndarray:
    """Row-wise distribution over the valid cells of `values` (B, N); invalid cells get 0."""
    values = np.where(valid, values, 0.0)
    if how == "sum":
        mass = np.clip(values, 0.0, None) * valid
        total = mass.sum(axis=1, keepdims=True)
        uniform = valid / np.maximum(valid.sum(axis=1, keepdims=True), 1)
        return np.where(total > 0, mass / np.where(total > 0, total, 1.0), uniform)
    if how == "softmax":
        logits = np.where(valid, values / temperature, -np.inf)
        top = np.max(np.where(valid, logits, -np.inf), axis=1, keepdims=True)
        weights = np.where(valid, np.exp(logits - np.where(np.isfinite(top), top, 0.0)), 0.0)
        total = weights.sum(axis=1, keepdims=True)
        return weights / np.where(total > 0, total, 1.0)
    raise ValueError(f"distribution must be 'sum' or 'softmax', got {how!r}")


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence per row, log base 2, in [0, 1]."""
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> np.ndarray:
        ratio = np.divide(a, m, out=np.ones_like(a), where=(a > 0) & (m > 0))
        return (a * np.log2(ratio)).sum(axis=1)

    return np.clip(0.5 * kl(p) + 0.5 * kl(q), 0.0, 1.0)


@register_reward("grouprank")
class GroupRank(Reward):
    """GroupRank reward (see module docstring). Components: ndcg, recall, js (the divergence), format_ok."""

    answer_format = "scores"  # which hacking probes apply (rewards/probes.py)

    def __init__(
        self,
        gamma: float = 0.2,
        epsilon: float = 0.1,
        k: int = 10,
        recall_k: int = 10,
        relevant_at: float = 1,
        distribution: str = "sum",
        temperature: float = 1.0,
        missing_score: float = 0.0,
        ties: str = "prompt",
        tags: Sequence[str] = ("reason", "answer"),
        invalid_json_penalty: float = -0.1,
        no_tags_penalty: float = -0.5,
        strict_json: bool = True,
        score_weight: float = 0.0,
        max_grade: float = 3,
        name: str = "grouprank",
    ):
        if distribution not in ("sum", "softmax"):
            raise ValueError(f"distribution must be 'sum' or 'softmax', got {distribution!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.gamma, self.epsilon, self.k, self.recall_k = gamma, epsilon, int(k), int(recall_k)
        self.relevant_at, self.distribution, self.temperature = relevant_at, distribution, temperature
        self.missing_score, self.ties, self.tags = float(missing_score), _check_ties(ties), tuple(tags)
        self.invalid_json_penalty, self.no_tags_penalty, self.name = invalid_json_penalty, no_tags_penalty, name
        self.strict_json = bool(strict_json)
        if max_grade <= 0:
            raise ValueError(f"max_grade must be > 0, got {max_grade!r}")
        self.score_weight, self.max_grade = float(score_weight), float(max_grade)
        self.low = min(invalid_json_penalty, no_tags_penalty, min(gamma, 0.0) + min(epsilon, 0.0))
        self.high = 1.0 + max(gamma, 0.0) + max(epsilon, 0.0) + max(self.score_weight, 0.0)

    def compute(self, texts, columns):
        size = len(texts)
        batch = ListBatch.from_columns(columns, size, self.name)
        parsed = [parse_scores(texts[row], self.tags, self.strict_json) for row in batch.rows]
        predicted, scored = batch.score_matrix([p.value if p.ok else None for p in parsed], self.missing_score)
        order = batch.order_from_scores(predicted, self.ties)
        ndcg = batch.ndcg(order, self.k)
        recall = batch.recall(order, self.recall_k, self.relevant_at)
        valid = np.isfinite(batch.labels)
        p = to_distribution(predicted, valid, self.distribution, self.temperature)
        q = to_distribution(np.where(valid, batch.labels, 0.0), valid, self.distribution, self.temperature)
        js = js_divergence(p, q)
        r_g = ndcg + self.gamma * recall + self.epsilon * (1.0 - js)
        gold = np.clip(np.where(valid, batch.labels, 0.0) / self.max_grade, 0.0, 1.0)
        errors = np.where(valid, (np.clip(predicted, 0.0, 10.0) / 10.0 - gold) ** 2, 0.0)
        fit = 1.0 - errors.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
        if self.score_weight:
            r_g = r_g + self.score_weight * fit

        totals, measured = [], []
        for i, p_i in enumerate(parsed):
            ok = p_i.tags_ok and bool(scored[i])
            measured.append(ok)
            if ok:
                totals.append(float(r_g[i]))
            else:
                totals.append(self.invalid_json_penalty if p_i.tags_ok else self.no_tags_penalty)

        def only_ok(values):
            return batch.scatter(size, [float(v) if ok else None for v, ok in zip(values, measured)])

        return RewardOutput(
            batch.scatter(size, totals),
            {
                "ndcg": only_ok(ndcg),
                "recall": only_ok(recall),
                "js": only_ok(js),
                **({"fit": only_ok(fit)} if self.score_weight else {}),
                FORMAT_OK: batch.scatter(size, [float(p_i.format_ok and ok) for p_i, ok in zip(parsed, measured)]),
            },
        )


@register_reward("grouprank_answer_only")
class GroupRankAnswerOnly(GroupRank):
    """GroupRank for the no-reasoning variant: only `<answer>…</answer>` is required."""

    def __init__(self, tags: Sequence[str] = ("answer",), name: str = "grouprank_answer_only", **options):
        super().__init__(tags=tags, name=name, **options)
