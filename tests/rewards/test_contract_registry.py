"""The reward contract (TRL-style calls, chat completions, shuffle invariance) and the registry (names, @K,
module and file plug-ins, weighted sums, one-line errors)."""

from __future__ import annotations

import random
import textwrap

import pytest

from rerank_rl.rewards import (
    Reward,
    RewardOutput,
    combine_rewards,
    completion_text,
    get_reward,
    list_rewards,
    register_reward,
    score_with_components,
    tap_components,
)

LABELS = [3, 0, 1, 0]
USER_REWARD = '''
def exact_three(prompts, completions, labels=None, **kwargs):
    """1 when the completion mentions [3]."""
    return [1.0 if "[3]" in str(c) else 0.0 for c in completions]

NOT_CALLABLE = 3
'''


def test_completion_text_accepts_strings_and_chat_messages():
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "assistant", "content": "hi"}]) == "hi"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]) == "ab"
    assert completion_text([{"role": "user", "content": "no"}, {"role": "assistant", "content": "yes"}]) == "yes"
    assert completion_text(None) == ""


def test_trl_style_call_with_chat_messages_and_extra_kwargs():
    reward = get_reward("ndcg@10")
    text = "<answer>[1] > [3]</answer>"
    values = reward(
        prompts=[[{"role": "user", "content": "rank"}]] * 2,
        completions=[[{"role": "assistant", "content": text}], text],
        completion_ids=[[1, 2], [3]],
        trainer_state=object(),
        labels=[LABELS, LABELS],
        doc_ids=[["a", "b", "c", "d"]] * 2,
        qid=["q", "q"],
        some_future_column=[1, 2],
    )
    assert values == [1.0, 1.0]
    assert reward.__name__ == "ndcg@10"


def test_missing_or_misaligned_columns_are_config_errors():
    with pytest.raises(ValueError, match=r"'grouprank' needs the dataset column 'labels'"):
        get_reward("grouprank")(None, ["x"])
    with pytest.raises(ValueError, match="2 values for 1 completions"):
        get_reward("grouprank")(None, ["x"], labels=[LABELS, LABELS])
    with pytest.raises(ValueError, match="doc_ids but 4 labels"):
        get_reward("grouprank")(None, ["x"], labels=[LABELS], doc_ids=[["a"]])


SHUFFLE_CASES = {
    "grouprank": ["<reason>r</reason><answer>{\"[1]\": 3, \"[3]\": 9}</answer>", "<answer>{\"[2]\": 1}</answer>", "x"],
    "reasonrank": ["<think>t</think><answer>[1] > [3] > [2] > [4]</answer>", "<answer>[2]</answer>", ""],
    "erank_rr": ["<think>t</think><answer>7</answer>", "<think>t</think><answer>3</answer>", "8"],
    "erank_ndcg": ["<think>t</think><answer>2</answer>", "<think>t</think><answer>9</answer>", "<answer>5</answer>"],
}


@pytest.mark.parametrize("spec", sorted(SHUFFLE_CASES))
def test_shuffling_a_batch_keeps_each_reward(spec):
    rng = random.Random(7)
    texts = [rng.choice(SHUFFLE_CASES[spec]) for _ in range(24)]
    columns = {
        "qid": [f"q{i % 3}" for i in range(24)],
        "labels": [LABELS] * 24,
        "label": [rng.choice([0, 1, 2]) for _ in range(24)],
        "doc_id": [f"d{rng.randrange(4)}" for _ in range(24)],
        "ref_score": [rng.choice([None, 0, 5]) for _ in range(24)],
    }
    reward = get_reward(spec)
    base_totals, base_parts = score_with_components(reward, None, texts, **columns)
    order = list(range(24))
    rng.shuffle(order)
    totals, parts = score_with_components(
        reward, None, [texts[i] for i in order], **{k: [v[i] for i in order] for k, v in columns.items()}
    )
    assert totals == [base_totals[i] for i in order]
    assert parts == {k: [v[i] for i in order] for k, v in base_parts.items()}


def test_registry_names_and_parametric_specs():
    names = list_rewards()
    for name in ("grouprank", "rank_r1", "erank_rr", "erank_se", "erank_ndcg", "mm_r5", "reasonrank", "rearank",
                 "ndcg", "mrr", "recall", "rbo", "format", "label_f1_micro", "label_f1_macro"):
        assert name in names
    assert get_reward("mrr@3").k == 3
    assert get_reward("grouprank", gamma=0.5).gamma == 0.5
    with pytest.raises(ValueError, match=r"unknown reward 'ndgc@10'"):
        get_reward("ndgc@10")
    with pytest.raises(ValueError, match=r"'format@3': 'format' takes no '@K'"):
        get_reward("format@3")
    with pytest.raises(ValueError, match="bad options"):
        get_reward("grouprank", gammma=1)
    with pytest.raises(ValueError, match="non-empty"):
        get_reward("  ")


def test_module_spec_loads_a_class_or_function():
    reward = get_reward("rerank_rl.rewards.grouprank:GroupRank", epsilon=0.0)
    assert reward.epsilon == 0.0
    with pytest.raises(ValueError, match="cannot import module 'no_such_pkg.mod'"):
        get_reward("no_such_pkg.mod:fn")
    with pytest.raises(ValueError, match="has no attribute 'missing'"):
        get_reward("rerank_rl.rewards.grouprank:missing")


def test_file_spec_loads_a_user_reward(tmp_path):
    path = tmp_path / "my_reward.py"
    path.write_text(USER_REWARD)
    reward = get_reward(f"{path}:exact_three")
    assert reward(None, ["[3]", "[1]"]) == [1.0, 0.0]
    totals, parts = score_with_components(reward, None, ["[3]"])
    assert totals == [1.0] and parts == {}
    with pytest.raises(ValueError, match="file not found"):
        get_reward(f"{tmp_path / 'absent.py'}:exact_three")
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        get_reward(f"{path}:nope")
    with pytest.raises(ValueError, match="not callable"):
        get_reward(f"{path}:NOT_CALLABLE")
    with pytest.raises(ValueError, match="takes no options"):
        get_reward(f"{path}:exact_three", weight=2)
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ValueError, match="importing .* failed: RuntimeError: boom"):
        get_reward(f"{broken}:fn")


def test_combine_rewards_weights_and_components(tmp_path):
    path = tmp_path / "bonus.py"
    path.write_text(USER_REWARD)
    combined = combine_rewards(
        {"ndcg@10": 1.0, f"{path}:exact_three": {"weight": 0.5}, "grouprank": {"weight": 2.0, "epsilon": 0.0}}
    )
    texts = ["<answer>[3] > [1]</answer>", "<reason>r</reason><answer>{\"[1]\": 1}</answer>"]
    totals, parts = score_with_components(combined, None, texts, labels=[LABELS, LABELS])
    ndcg_first = get_reward("ndcg@10")(None, texts, labels=[LABELS, LABELS])
    assert totals[0] == pytest.approx(ndcg_first[0] + 0.5 * 1.0 + 2.0 * -0.5)
    assert totals[1] == pytest.approx(ndcg_first[1] + 2.0 * (ndcg_first[1] + 0.2))
    assert "grouprank/ndcg" in parts and parts["format_ok"] == [0.0, 1.0]
    assert combined.__name__ == "combined"
    with pytest.raises(ValueError, match="weight must be a number"):
        combine_rewards({"ndcg@10": "heavy"})


def test_register_reward_function_and_class():
    @register_reward("test_always_one")
    def always_one(prompts, completions, **kwargs):
        return [1.0] * len(completions)

    @register_reward("test_scaled")
    class Scaled(Reward):
        def __init__(self, factor: float = 2.0):
            self.factor, self.name = factor, "test_scaled"

        def compute(self, texts, columns):
            return RewardOutput([self.factor * len(t) for t in texts], {"length": [float(len(t)) for t in texts]})

    assert get_reward("test_always_one")(None, ["a", "b"]) == [1.0, 1.0]
    assert get_reward("test_scaled", factor=3.0)(None, ["ab"]) == [6.0]
    with pytest.raises(ValueError, match="already registered"):
        register_reward("test_always_one")(lambda prompts, completions, **kw: [])
    with pytest.raises(ValueError, match="reward name"):
        register_reward("Bad:Name")


def test_tap_components_reports_to_a_sink():
    seen = []
    tapped = tap_components(get_reward("grouprank"), lambda name, parts: seen.append((name, parts)))
    assert tapped.__name__ == "grouprank"
    assert tapped(prompts=None, completions=["x"], labels=[LABELS]) == [-0.5]
    assert seen[0][0] == "grouprank" and seen[0][1]["format_ok"] == [0.0]


def test_built_in_rewards_pickle():
    import pickle

    for name in list_rewards():
        if name.startswith("test_"):
            continue
        reward = get_reward(name)
        assert pickle.loads(pickle.dumps(reward)).name == reward.name
