"""Per-example classification measures (array API used by the classifier PPO) and the label-set rewards."""

from __future__ import annotations

import numpy as np
import pytest

from rerank_rl.rewards import get_reward
from rerank_rl.rewards.classification import accuracy, exact_match, f1_macro, f1_micro, precision, recall

PRED = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 1, 0]], dtype=bool)
GOLD = np.array([[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 0], [1, 0, 1, 0]], dtype=bool)
MASK = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool)


@pytest.mark.parametrize(
    "function, expected",
    [
        # row 0: TP 1, FP 1, FN 1, TN 1; row 1: nothing gold or predicted; row 2: TP 0, FN 1, TN 2; row 3: perfect.
        (f1_micro, [0.5, 1.0, 0.0, 1.0]),
        (f1_macro, [0.5, 1.0, 0.5 * (0.0 + 4 / 5), 1.0]),
        (accuracy, [0.5, 1.0, 2 / 3, 1.0]),
        (exact_match, [0.0, 1.0, 0.0, 1.0]),
        (recall, [0.5, 1.0, 0.0, 1.0]),
        (precision, [0.5, 1.0, 1.0, 1.0]),
    ],
)
def test_array_measures(function, expected):
    np.testing.assert_allclose(function(PRED, GOLD, MASK), expected)


def test_mask_hides_padding():
    pred = np.array([[True, True]])
    gold = np.array([[True, False]])
    assert f1_micro(pred, gold)[0] == pytest.approx(2 / 3)
    assert f1_micro(pred, gold, np.array([[True, False]]))[0] == 1.0
    with pytest.raises(ValueError, match="same shape"):
        f1_micro(pred, gold[:, :1])


def test_label_set_rewards():
    texts = [
        "<answer>a, B</answer>",  # {a, b} vs {b, c}
        "<answer>b, B, b</answer>",  # duplicates count once
        "",  # unparsable: empty prediction
        '<answer>["x"]</answer>',
        "<answer>y</answer>",
    ]
    columns = {
        "gold_labels": [["b", "c"], ["b"], ["x"], "x", None],
        "label_options": [["a", "b", "c", "d"], None, None, ["x", "y", "z"], None],
    }
    assert get_reward("label_f1_micro")(None, texts, **columns) == pytest.approx([0.5, 1.0, 0.0, 1.0, None])
    assert get_reward("label_recall")(None, texts, **columns) == pytest.approx([0.5, 1.0, 0.0, 1.0, None])
    assert get_reward("label_accuracy")(None, texts, **columns) == pytest.approx([0.5, 1.0, 0.0, 1.0, None])
    assert get_reward("label_exact_match")(None, texts, **columns) == pytest.approx([0.0, 1.0, 0.0, 1.0, None])
    assert get_reward("label_precision")(None, texts, **columns) == pytest.approx([0.5, 1.0, 1.0, 1.0, None])
    # f1_macro of row 0 over options a, b, c, d: "applies" F1 0.5, "does not apply" F1 2·1/(2 + 2) = 0.5.
    assert get_reward("label_f1_macro")(None, texts, **columns)[0] == pytest.approx(0.5)
