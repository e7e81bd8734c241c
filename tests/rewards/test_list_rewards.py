"""List rewards (GroupRank, plain metrics, ReasonRank, REARANK, MM-R5, Rank-R1) on hand-computed cases.

Most cases use labels [3, 0, 1, 0]: relevant (label >= 1) are [1] and [3]; IDCG@10 = 3 + 1/log2(3).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rerank_rl.rewards import get_reward, score_with_components
from rerank_rl.rewards.grouprank import js_divergence, to_distribution

LABELS = [3, 0, 1, 0]
IDCG = 3 + 1 / math.log2(3)
PROMPT_ORDER = (3 + 1 / math.log2(4)) / IDCG  # [1, 2, 3, 4]
THREE_FIRST = (1 + 3 / math.log2(3)) / IDCG  # [3, 1, 2, 4]
TWO_FIRST = (3 / math.log2(3) + 1 / math.log2(4)) / IDCG  # [2, 1, 3, 4]
PESSIMISTIC = (1 / math.log2(4) + 3 / math.log2(5)) / IDCG  # [2, 4, 3, 1]


def js(p, q):
    """Reference Jensen-Shannon divergence, base 2."""
    m = [(a + b) / 2 for a, b in zip(p, q)]
    kl = lambda x: sum(a * math.log2(a / c) for a, c in zip(x, m) if a > 0)  # noqa: E731
    return 0.5 * kl(p) + 0.5 * kl(q)


def run(spec, texts, labels=LABELS, **options):
    reward = get_reward(spec, **options)
    totals, components = score_with_components(reward, None, texts, labels=[labels] * len(texts))
    assert all(reward.low - 1e-9 <= v <= reward.high + 1e-9 for v in totals if v is not None)
    return totals, components


def grouprank_text(scores: str, reason: bool = True) -> str:
    return ("<reason>why</reason>" if reason else "") + f"<answer>{scores}</answer>"


Q = [0.75, 0.0, 0.25, 0.0]


@pytest.mark.parametrize(
    "answer, ndcg, p",
    [
        ('{"[1]": 9, "[3]": 5, "[2]": 0, "[4]": 0}', 1.0, [9 / 14, 0, 5 / 14, 0]),
        ('{"[1]": 5, "[2]": 5, "[3]": 5, "[4]": 5}', PROMPT_ORDER, [0.25] * 4),  # ties: prompt order
        ('{"[3]": 8}', THREE_FIRST, [0, 0, 1, 0]),  # missing ids score 0
        ('{"[2]": 9, "[2]": 0, "[1]": 1}', TWO_FIRST, [0.1, 0.9, 0, 0]),  # duplicate keeps first
        ('{"[7]": 10, "[0]": 9, "[1]": 1}', PROMPT_ORDER, [1, 0, 0, 0]),  # out of range ignored
    ],
)
def test_grouprank_hand_computed(answer, ndcg, p):
    (total,), parts = run("grouprank", [grouprank_text(answer)])
    expected = ndcg + 0.2 * 1.0 + 0.1 * (1 - js(p, Q))  # both relevant ids are always in the top 10 of 4
    assert total == pytest.approx(expected)
    assert parts["ndcg"][0] == pytest.approx(ndcg)
    assert parts["js"][0] == pytest.approx(js(p, Q))


def test_grouprank_penalties():
    texts = [
        grouprank_text("not json"),  # tags, bad JSON
        grouprank_text(""),  # tags, empty answer
        grouprank_text('{"[7]": 10}'),  # tags, no in-range id
        '{"[1]": 9}',  # no tags
        grouprank_text('{"[1]": 9}', reason=False),  # reasoning tag required by default
    ]
    totals, parts = run("grouprank", texts)
    assert totals == [-0.1, -0.1, -0.1, -0.5, -0.5]
    assert parts["ndcg"] == [None] * 5 and parts["format_ok"] == [0.0] * 5


def test_grouprank_invalid_json_penalty_is_reachable():
    # Tags present, scores readable only by the lenient parser: the spec's "JSON invalid" case earns -0.1.
    texts = [grouprank_text(a) for a in ("Passage 1: 9 points", "{[1]: 9}", "{'[1]': 9}", '{"[1]": 9,}')]
    totals, parts = run("grouprank", texts)
    assert totals == [-0.1] * 4 and parts["ndcg"] == [None] * 4
    # The spec's own repairs still count as valid JSON ("[7]]", a missing "}"), without format credit.
    repaired = [grouprank_text('{"[1]]": 9, "[3]": 5'), grouprank_text('{"[1]": 9, "[3]": 5')]
    totals, parts = run("grouprank", repaired)
    assert totals[0] == totals[1] > 0 and parts["format_ok"] == [0.0, 0.0]
    # strict_json=False keeps the old leniency: the same answers are scored.
    totals, _ = run("grouprank", texts, strict_json=False)
    assert all(t > 0 for t in totals)


def test_grouprank_options():
    text = grouprank_text('{"[1]": 5, "[2]": 5, "[3]": 5, "[4]": 5}')
    (total,), parts = run("grouprank", [text], ties="pessimistic")
    assert parts["ndcg"][0] == pytest.approx(PESSIMISTIC)
    (total,), parts = run("grouprank", [text], relevant_at=2, gamma=0.0, epsilon=0.0)
    assert total == pytest.approx(PROMPT_ORDER)
    (total,), _ = run("grouprank_answer_only", [grouprank_text('{"[1]": 1}', reason=False)], epsilon=0.0)
    assert total == pytest.approx(PROMPT_ORDER + 0.2)
    soft = get_reward("grouprank", distribution="softmax", temperature=2.0)
    _, parts = score_with_components(soft, None, [grouprank_text('{"[1]": 2}')], labels=[[1, 0]])
    p = [math.exp(1.0) / (math.exp(1.0) + 1), 1 / (math.exp(1.0) + 1)]  # softmax([2, 0] / 2)
    q = [math.exp(0.5) / (math.exp(0.5) + 1), 1 / (math.exp(0.5) + 1)]  # softmax([1, 0] / 2)
    assert parts["js"][0] == pytest.approx(js(p, q))
    with pytest.raises(ValueError, match="distribution"):
        get_reward("grouprank", distribution="max")


def test_grouprank_score_fit():
    answer = grouprank_text('{"[1]": 9, "[3]": 5, "[2]": 0, "[4]": 0}')
    (plain,), parts = run("grouprank", [answer])
    assert "fit" not in parts  # off by default: the paper's reward
    (total,), parts = run("grouprank", [answer], score_weight=0.5)
    fit = 1 - ((0.9 - 1.0) ** 2 + 0 + (0.5 - 1 / 3) ** 2 + 0) / 4  # labels [3, 0, 1, 0] on max_grade 3
    assert parts["fit"][0] == pytest.approx(fit) and total == pytest.approx(plain + 0.5 * fit)
    # one passage: nDCG, Recall and JS cannot tell answers apart, the fit term can
    one = [grouprank_text(f'{{"[1]": {s}}}') for s in (9, 3, 0)]
    totals, parts = run("grouprank", one, labels=[3], score_weight=1.0)
    assert len(set(parts["ndcg"])) == 1 and totals[0] > totals[1] > totals[2]
    with pytest.raises(ValueError, match="max_grade"):
        get_reward("grouprank", max_grade=0)


def test_distribution_helpers():
    valid = np.array([[True, True, False]])
    np.testing.assert_allclose(to_distribution(np.array([[0.0, 0.0, 5.0]]), valid), [[0.5, 0.5, 0.0]])
    np.testing.assert_allclose(to_distribution(np.array([[-1.0, 3.0, 9.0]]), valid), [[0.0, 1.0, 0.0]])
    assert js_divergence(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))[0] == pytest.approx(1.0)
    assert js_divergence(np.array([[0.5, 0.5]]), np.array([[0.5, 0.5]]))[0] == pytest.approx(0.0)


@pytest.mark.parametrize(
    "spec, text, expected",
    [
        ("ndcg@10", "<answer>[3] > [1]</answer>", THREE_FIRST),  # missing ids follow in prompt order
        ("ndcg@10", "<answer>[2] > [2] > [1]</answer>", TWO_FIRST),  # duplicate counts once
        ("ndcg@10", "<answer>[9] > [1]</answer>", PROMPT_ORDER),  # out of range dropped
        ("ndcg@10", "<answer>[3, 1, 2, 4]</answer>", THREE_FIRST),
        ("ndcg@10", '<answer>{"[3]": 2, "[1]": 1}</answer>', THREE_FIRST),  # groupwise scores
        ("ndcg@10", "<answer></answer>", 0.0),  # empty answer
        ("ndcg@1", "<answer>[3] > [1]</answer>", 1 / 3),
        ("mrr@10", "<answer>[2] > [4] > [3]</answer>", 1 / 3),
        ("mrr@2", "<answer>[2] > [4] > [3]</answer>", 0.0),
        ("mrr@10", "<answer>[2] > [2] > [1]</answer>", 0.5),
        ("recall@2", "<answer>[3] > [2]</answer>", 0.5),
        ("recall@1", "<answer>[7] > [1]</answer>", 0.5),
        ("recall@10", "garbage", 0.0),
        ("rbo", "<answer>[1] > [3] > [2] > [4]</answer>", 1.0),
        ("rbo", "<answer>[3] > [1] > [2] > [4]</answer>", 0.9),  # swap at the top of 4: RBO_ext = p
        ("rbo", "<answer>[1] > [1] > [3]</answer>", 1.0),  # completed to [1, 3, 2, 4]
    ],
)
def test_plain_metrics(spec, text, expected):
    (total,), _ = run(spec, [text])
    assert total == pytest.approx(expected)


def test_plain_metric_options_and_names():
    (total,), _ = run("mrr@10", ["<answer>[2] > [4] > [3]</answer>"], relevant_at=2)
    assert total == pytest.approx(0.25)
    assert get_reward("ndcg@5").name == "ndcg@5" and get_reward("recall@20").k == 20
    (total,), _ = run("ndcg@10", ["<answer>[2] > [1]</answer>"], answer="scores")
    assert total == 0.0  # a permutation is not a score object


def test_rows_without_labels_get_none():
    reward = get_reward("ndcg@10")
    assert reward(None, ["<answer>[1]</answer>", "x"], labels=[None, LABELS]) == [None, 0.0]


THINK = "<think>why</think>"


def test_reasonrank():
    perfect = THINK + "<answer>[1] > [3] > [2] > [4]</answer>"
    swapped = THINK + "<answer>[3] > [1] > [2] > [4]</answer>"
    texts = [
        perfect,
        swapped,
        THINK + "<answer>[1] > [3] > [2]</answer>",  # missing id
        THINK + "<answer>[1] > [1] > [3] > [2] > [4]</answer>",  # duplicate id
        THINK + "<answer>[1] > [3] > [2] > [5]</answer>",  # out of range
        "<answer>[1] > [3] > [2] > [4]</answer>",  # no think tag
        THINK + "<answer></answer>",  # empty answer
    ]
    totals, parts = run("reasonrank", texts)
    assert totals[0] == pytest.approx(1.3)
    assert totals[1] == pytest.approx(THREE_FIRST + 0.2 + 0.1 * 0.9)
    assert totals[2:] == [0.0, 0.0, 0.0, -1.0, 0.0]
    assert parts["rbo"][1] == pytest.approx(0.9) and parts["rbo"][2] is None


def test_rearank():
    texts = [
        THINK + "<answer>[1] > [3] > [2] > [4]</answer>",  # ideal: gain 1
        THINK + "<answer>[2] > [1] > [3] > [4]</answer>",  # worse than the prompt order: gain clipped at -1
        "nothing parsable",  # prompt order, no tags, invalid
        THINK + "<answer>[1] > [1] > [3]</answer>",  # completed to the ideal, but not a valid permutation
    ]
    totals, parts = run("rearank", texts)
    assert totals == pytest.approx([1.0, -0.8 + 0.2, 0.0, 0.8 + 0.1])
    assert parts["valid"] == [1.0, 1.0, 0.0, 0.0]
    # Prompt order [0, 0, 0, 3]: nDCG_init = 1/log2(5); moving [4] up one place gains half the room.
    labels = [0, 0, 0, 3]
    init, half = 1 / math.log2(5), 1 / math.log2(4)
    (total,), _ = run("rearank", ["<answer>[1] > [2] > [4] > [3]</answer>"], labels=labels)
    assert total == pytest.approx(0.8 * (half - init) / (1 - init) + 0.1)
    (total,), _ = run("rearank", [THINK + "<answer>[2] > [1]</answer>"], labels=[0, 0])  # nothing relevant
    assert total == pytest.approx(0.2)  # no room to improve: gain 0, tags and validity count


def test_mm_r5():
    labels = [0, 1, 0, 1]  # gold ids 2 and 4; normaliser 1 + 1/8
    texts = [
        THINK + "<answer>[2, 4, 1, 3]</answer>",
        THINK + "<answer>[4, 4, 2]</answer>",  # dedupe -> [4, 2]: length 2 of 4
        THINK + "<answer>[5, 2]</answer>",  # out of range id keeps its place
        "<answer>[2, 4, 1, 3]</answer>",  # no think tag
        THINK + "<answer></answer>",  # empty answer
        THINK + "<answer>[1, 3, 2, 4]</answer>",
    ]
    totals, parts = run("mm_r5", texts, labels=labels)
    norm = 1 + 1 / 8
    assert totals[0] == pytest.approx(2.0)
    assert totals[1] == pytest.approx(1.0 + 0.5)
    assert parts["result"][2] == pytest.approx((1 / 8) / norm) and parts["format"][2] == pytest.approx(0.25)
    assert totals[3:5] == [0.0, 0.0]
    assert totals[5] == pytest.approx((1 / 27 + 1 / 64) / norm + 1.0)


def test_rank_r1():
    labels = [0, 0, 1]
    texts = [
        THINK + "<answer>[3]</answer>",
        THINK + "<answer>[2]</answer>",  # wrong document
        THINK + "<answer>[4]</answer>",  # out of range
        THINK + "<answer>3</answer>",  # right document, bad format
        "<answer>[3]</answer>",  # no think
        THINK + "<answer>[3] or [1]</answer>",  # two ids
        THINK + "<answer></answer>",  # empty answer
    ]
    totals, parts = run("rank_r1", texts, labels=labels)
    assert totals == [1.0, 0, 0, 0, 0, 0, 0]
    assert parts["correct"] == [1.0, 0, 0, 1.0, 1.0, 0, 0]


def test_format_rewards():
    texts = [THINK + '<answer>{"[1]": 3}</answer>', THINK + "<answer>{oops</answer>", "<answer>[1]</answer>"]
    assert get_reward("format")(None, texts) == [1.0, 1.0, 0.0]
    assert get_reward("answer_format")(None, texts) == [1.0, 0.0, 0.0]
    assert get_reward("answer_format", answer="choice", tags=("answer",))(None, texts) == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="answer must be one of"):
        get_reward("answer_format", answer="poem")
