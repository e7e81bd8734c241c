"""ERank rewards (r_RR, r_SE, r_nDCG) on hand-computed groups."""

from __future__ import annotations

import math
import random

import pytest

from rerank_rl.rewards import get_reward, score_with_components


def graded(score) -> str:
    return f"<think>reasons</think><answer>{score}</answer>"


# One query: a positive document with rollouts 9 and 3, a negative with rollouts 5, 2, 1 and an unformatted one.
TEXTS = [graded(9), graded(3), graded(5), graded(2), graded(1), "no tags 4"]
COLUMNS = {
    "qid": ["q"] * 6,
    "label": [1, 1, 0, 0, 0, 0],
    "doc_id": ["p", "p", "n", "n", "n", "n"],
    "ref_score": [None, None, 3, 2, None, 4],
    "teacher_score": [9, 2, 5, 0, None, 4],
}


def test_erank_rr_hand_computed():
    totals, parts = score_with_components(get_reward("erank_rr"), None, TEXTS, **COLUMNS)
    # Joint sort of the formatted scores 9, 5, 3, 2, 1: positive 9 -> rank 1, positive 3 -> rank 3.
    # Negative 5 >= lowest positive 3 -> penalty; negatives 2 (t = 2) and 1 (t = 0) sit below every positive.
    assert totals == pytest.approx([1.0, 1 / 3, -1.0, 0.5, 0.5 * (1 - 0.01), -1.0])
    assert parts["inversion"] == [None, None, 1.0, 0.0, 0.0, None]
    assert parts["format_ok"] == [1.0] * 5 + [0.0]


def test_erank_rr_ties_and_groups():
    texts = [graded(7), graded(7), graded(4), graded(4), graded(10), graded(0)]
    columns = {"qid": ["a", "a", "a", "a", "b", "b"], "label": [2, 1, 0, 1, 0, 0]}
    totals = get_reward("erank_rr", below_weight=1.0)(None, texts, **columns)
    # Query a: positives 7, 7 tie at rank 1; positive 4 ranks 3; the negative 4 ties the lowest positive -> penalty.
    # Query b has no positive: both negatives are "below every positive" and scored against t = 0.
    assert totals == pytest.approx([1.0, 1.0, -1.0, 1 / 3, 0.0, 1.0])


def test_erank_rr_shuffle_invariant():
    rows = list(range(len(TEXTS)))
    random.Random(0).shuffle(rows)
    reward = get_reward("erank_rr")
    base = reward(None, TEXTS, **COLUMNS)
    shuffled = reward(None, [TEXTS[r] for r in rows], **{k: [v[r] for r in rows] for k, v in COLUMNS.items()})
    assert shuffled == pytest.approx([base[r] for r in rows])


def test_erank_rr_needs_qid():
    with pytest.raises(ValueError, match="'qid'"):
        get_reward("erank_rr")(None, TEXTS, label=COLUMNS["label"])


def test_erank_se():
    totals = get_reward("erank_se")(None, TEXTS, teacher_score=COLUMNS["teacher_score"])
    assert totals == pytest.approx([1.0, 0.99, 1.0, 0.96, None, -1.0])
    assert get_reward("erank_se")(None, [graded(0)], teacher_score=[10]) == [0.0]
    assert get_reward("erank_se")(None, [graded(11)], teacher_score=[10]) == [-1.0]  # out of range = unformatted


def test_erank_ndcg():
    totals = get_reward("erank_ndcg")(None, TEXTS, **COLUMNS)
    # Document means over formatted rollouts: p = 6, n = 8/3. The rollout scoring p at 3 still ranks p first;
    # a negative rollout at 5 ranks n below p's mean 6.
    assert totals == pytest.approx([1.0, 1.0, 1.0, 1.0, 1.0, -1.0])
    texts = [graded(9), graded(3), graded(5), graded(2), graded(6)]
    columns = {"qid": ["q"] * 5, "label": [1, 1, 0, 0, 0], "doc_id": ["a", "a", "b", "c", "c"]}
    # means: a 6, b 5, c 4. a@3 -> order b, c, a: nDCG = (1/log2(4)) / 1; c@6 ties a's mean 6 -> c first.
    totals = get_reward("erank_ndcg@10")(None, texts, **columns)
    assert totals == pytest.approx([1.0, 0.5, 1.0, 1.0, 1 / math.log2(3)])
