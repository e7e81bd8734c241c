"""Label fusion math by hand, and the labelling loop against a scripted in-process backend."""

from __future__ import annotations

import math

import pytest

from rerank_rl.data_synthesis.config import LabelsConfig
from rerank_rl.data_synthesis.labels import (
    closest_to_mean,
    fractional_ranks,
    fuse,
    grades_from_fused,
    label_pools,
    order_ranks,
    window_starts,
)
from rerank_rl.data_synthesis.teachers import Reply, TeacherClient


def test_fractional_ranks_share_ties_and_put_missing_last():
    assert fractional_ranks([9, 3, 9, None, 0]) == [1.5, 3.0, 1.5, 5.0, 4.0]
    assert fractional_ranks([None, None]) == [1.5, 1.5]
    assert fractional_ranks([2.0, 7.0, 5.0]) == [3.0, 1.0, 2.0]


def test_order_ranks_appends_missing_ids_in_their_order():
    assert order_ranks([2, 0, 1], 3) == [2, 3, 1]
    assert order_ranks([3, 3, 7], 4) == [2, 3, 4, 1]  # repeats and out-of-range ids ignored


def test_fusion_formula_by_hand():
    lp, ll = [1.0, 2.0, 4.0], [2, 1, 4]
    s = fuse(lp, ll, beta=0.5)
    assert s == pytest.approx([-0.5 * math.log(2), -0.5 * math.log(2), -math.log(4)])
    s = fuse(lp, ll, beta=0.25)
    assert s[0] == pytest.approx(-0.75 * math.log(2))
    assert s[1] == pytest.approx(-0.25 * math.log(2))
    assert fuse(lp, None, 0.5) == pytest.approx([0.0, -math.log(2), -math.log(4)])  # one side missing
    assert fuse(None, None, 0.5) is None


def test_grades_from_geometric_mean_rank():
    # G = exp(-S) = Lp^beta * Ll^(1-beta); cuts [2, 5, 15] -> 3 / 2 / 1 / 0
    lp, ll = [1, 1, 2, 4, 10, 30], [1, 4, 2, 9, 20, 40]
    s = fuse(lp, ll, 0.5)  # G = 1, 2, 2, 6, 14.1, 34.6
    assert grades_from_fused(s, [2, 5, 15]) == [3, 3, 3, 1, 1, 0]
    assert grades_from_fused(fuse([3], [3], 0.5), [2, 5, 15]) == [2]


def test_closest_to_mean_and_windows():
    assert closest_to_mean([2, 9, 4]) == 4  # mean 5
    assert closest_to_mean([3, 5]) == 3  # tie: first sample
    assert closest_to_mean([]) is None
    assert window_starts(50, 20, 10) == [30, 20, 10, 0]
    assert window_starts(45, 20, 10) == [25, 15, 5, 0]
    assert window_starts(8, 20, 10) == [0]


def _answer(messages) -> str:
    user = messages[-1]["content"]
    if "Passage:" in user:
        passage = user.split("Passage: ", 1)[1]
        return f"<answer>{10 if 'good' in passage else 5 if 'ok' in passage else 0}</answer>"
    lines = [line for line in user.splitlines() if line.startswith("[")]
    rank = sorted(range(len(lines)), key=lambda i: ("good" not in lines[i], "ok" not in lines[i], i))
    return "<answer>" + " > ".join(f"[{i + 1}]" for i in rank) + "</answer>"


class Backend:
    identity = "scripted"
    chunk_size = 64

    def __init__(self):
        self.calls = 0

    def generate(self, requests):
        self.calls += len(requests)
        return [Reply(text=_answer(r.messages)) for r in requests]

    def close(self):
        pass


def test_label_pools_fuses_teachers_and_merges_gold():
    texts = ["bad one", "good one", "ok one", "bad two", "good two", "bad three"]
    ex = {"qid": "q", "query": "query", "doc_ids": [f"d{i}" for i in range(6)], "doc_texts": texts,
          "first_stage_scores": [6.0, 5, 4, 3, 2, 1], "labels": [0, 0, 0, 0, 0, 1]}
    qrels = {"q": {"d5": 1, "d0": 0}}
    backend = Backend()
    client = TeacherClient(backend, progress=False)
    cfg = LabelsConfig(pointwise_samples=2, listwise_window=4, listwise_stride=2, rank_cuts=[1.5, 3, 5])
    stats = label_pools([ex], qrels, client, cfg)
    # pointwise grades 0,10,5,0,10,0 -> Lp = 5, 1.5, 3, 5, 1.5, 5
    assert ex["pointwise_scores"] == [0, 10, 5, 0, 10, 0]
    # listwise windows (starts 2, 0) end with good ones first: [1, 4, 2, 0, 3, 5] -> Ll
    assert ex["listwise_ranks"] == [4, 1, 3, 5, 2, 6]
    expected = fuse([5, 1.5, 3, 5, 1.5, 5], [4, 1, 3, 5, 2, 6], 0.5)
    assert ex["fused_scores"] == pytest.approx(expected)
    assert ex["teacher_labels"] == grades_from_fused(expected, [1.5, 3, 5]) == [1, 3, 2, 1, 2, 0]
    # merge: judged documents keep gold (positives rescaled to the top grade 3), the rest take teacher grades
    assert ex["labels"] == [0, 3, 2, 1, 2, 3]
    assert ex["gold_labels"] == [0, 0, 0, 0, 0, 1]
    assert stats["pools_labeled"] == 1 and stats["listwise_windows_failed"] == 0
    assert client.totals()["calls"] == backend.calls == 6 * 2 + 2


def test_label_pools_pointwise_floor_and_teacher_target():
    ex = {"qid": "q", "query": "q", "doc_ids": ["a", "b", "c"], "doc_texts": ["bad", "bad", "bad"],
          "first_stage_scores": [3.0, 2, 1], "labels": [0, 0, 0]}
    cfg = LabelsConfig(pointwise_samples=1, listwise=False, pointwise_floor=1, target="teacher")
    label_pools([ex], {}, TeacherClient(Backend(), progress=False), cfg)
    assert ex["teacher_labels"] == [0, 0, 0] and ex["labels"] == [0, 0, 0]  # nothing relevant: no top grade
    assert ex["listwise_ranks"] == [None, None, None]
