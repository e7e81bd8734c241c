"""Property test: random and adversarial strings never make a parser or a reward raise, and every reward value
lies inside the range the reward documents (`low`/`high`)."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerank_rl.rewards import get_reward, list_rewards
from rerank_rl.rewards.parsers import (
    check_tags,
    parse_choice,
    parse_grade,
    parse_labels,
    parse_permutation,
    parse_scores,
)

BATCH = 48
EXAMPLES = 220  # 220 batches x 48 strings = 10,560 strings per run
FRAGMENTS = [
    "<think>", "</think>", "<reason>", "</reason>", "<answer>", "</answer>", "<ANSWER>", "<answer", "{", "}", "[",
    "]", "[[", "]]", ":", ",", ", ", " > ", '"', "'", "```json\n", "```", '"[1]"', '"[7]]"', "[3]", "[0]", "[-2]",
    "[99999999999]", "1", "7", "10", "11", "-1", "3.5", "1e999", "NaN", "Infinity", "null", "true", '"x"', "\\",
    "\n", "\t", " ", "\x00", "é", "🙂", "\u202e", "label", "sports", "a" * 200, "{" * 300, "[" * 300, "9" * 40,
]
adversarial = st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join)
structured = st.builds(
    lambda pre, body, post: f"{pre}<answer>{body}</answer>{post}",
    st.sampled_from(["", "<think>x</think>", "<reason>x</reason>", "<think>"]),
    adversarial,
    st.sampled_from(["", " ", "tail", "</answer>"]),
)
texts = st.one_of(st.text(max_size=120), adversarial, structured)
chat = texts.map(lambda t: [{"role": "assistant", "content": t}])

PARSERS = [
    lambda t: parse_scores(t),
    lambda t: parse_scores(t, ("reason", "answer")),
    lambda t: parse_choice(t),
    lambda t: parse_grade(t),
    lambda t: parse_permutation(t),
    lambda t: parse_labels(t),
]


def _columns(size: int) -> dict:
    """Columns for every paradigm at once, with varying list lengths, groups and some missing values."""
    labels = [[3, 0, 1, 0, 2], [0, 1], [0, 0, 0], [2, 2, 0, 1, 0, 0, 3], []]
    return {
        "qid": [f"q{i % 4}" for i in range(size)],
        "labels": [labels[i % len(labels)] if i % 11 else None for i in range(size)],
        "label": [i % 3 for i in range(size)],
        "doc_id": [f"d{i % 5}" for i in range(size)],
        "ref_score": [None if i % 2 else i % 11 for i in range(size)],
        "teacher_score": [(i * 7) % 11 for i in range(size)],
        "gold_labels": [["sports"] if i % 3 else ["a", "label"] for i in range(size)],
        "label_options": [None if i % 2 else ["sports", "label", "a"] for i in range(size)],
        "completion_ids": [[1]] * size,
        "trainer_state": None,
    }


def test_parsers_and_rewards_survive_random_strings():
    rewards = [get_reward(name) for name in list_rewards() if not name.startswith("test_")]
    rewards += [get_reward("ndcg@3"), get_reward("grouprank", distribution="softmax", ties="pessimistic")]
    seen = {"strings": 0}

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.lists(st.one_of(texts, chat), min_size=BATCH, max_size=BATCH))
    def check(batch):
        seen["strings"] += len(batch)
        for item in batch:
            text = item if isinstance(item, str) else item[0]["content"]
            assert isinstance(check_tags(text), bool)
            for parser in PARSERS:
                parsed = parser(text)
                assert parsed.ok == (parsed.value is not None)
                assert not parsed.format_ok or (parsed.ok and parsed.tags_ok)
        columns = _columns(len(batch))
        for reward in rewards:
            values = reward(None, batch, **columns)
            assert len(values) == len(batch)
            for value in values:
                if value is not None:
                    assert math.isfinite(value), reward.name
                    assert reward.low - 1e-9 <= value <= reward.high + 1e-9, (reward.name, value)

    check()
    assert seen["strings"] >= 10_000
