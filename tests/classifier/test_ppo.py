"""PPO arithmetic, one piece at a time, and a short run in which a reward for correct labels must raise the
probability of the gold labels."""

import math

import numpy as np
import pytest
import torch

from rerank_rl.rewards.classification import f1_micro
from rerank_rl.rl.errors import UserError
from rerank_rl.rl.paradigms.classifier.config import DataConfig, ModelConfig, PPOConfig
from rerank_rl.rl.paradigms.classifier.data import LabelSetSampler
from rerank_rl.rl.paradigms.classifier.model import build_model, score
from rerank_rl.rl.paradigms.classifier.ppo import (
    _rewards, advantages, bernoulli_entropy, bernoulli_kl, bernoulli_log_prob, clipped_surrogate,
    resolve_reward, train_ppo,
)


def test_log_prob_and_entropy_match_torch():
    logits = torch.tensor([[-30.0, -1.0, 0.0, 2.5, 30.0]])
    actions = torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0]])
    dist = torch.distributions.Bernoulli(logits=logits)
    assert torch.allclose(bernoulli_log_prob(logits, actions), dist.log_prob(actions), atol=1e-6)
    assert torch.isfinite(bernoulli_log_prob(logits, actions)).all()  # no log(0) at extreme logits
    assert torch.allclose(bernoulli_entropy(logits), dist.entropy(), atol=1e-6)


def test_kl_is_nonnegative_and_zero_at_the_reference():
    torch.manual_seed(0)
    p, q = torch.randn(200) * 4, torch.randn(200) * 4
    kl = bernoulli_kl(p, q)
    assert (kl >= -1e-7).all() and kl.max() > 0.1
    assert torch.allclose(bernoulli_kl(p, p), torch.zeros(200), atol=1e-6)
    expected = torch.distributions.kl_divergence(torch.distributions.Bernoulli(logits=p),
                                                 torch.distributions.Bernoulli(logits=q))
    assert torch.allclose(kl, expected, atol=1e-5)


def test_advantages_per_baseline():
    rewards = torch.tensor([[1.0, 0.0], [0.5, 0.0]])  # (G=2 samples, B=2 examples)
    assert torch.allclose(advantages(rewards, torch.tensor([0.5, 0.25]), "value"),
                          torch.tensor([[0.5, -0.25], [0.0, -0.25]]))
    assert torch.allclose(advantages(rewards, None, "batch_mean"), rewards - 0.375)
    assert torch.allclose(advantages(rewards, None, "group_mean"), torch.tensor([[0.25, 0.0], [-0.25, 0.0]]))


def test_clipped_surrogate_values_gradients_and_clip_fraction():
    old = torch.zeros(1, 1, 4)
    # ratios 1.5, 0.5, 1.1, 1.0 with advantages +1 for all labels of the example.
    logp = torch.log(torch.tensor([[[1.5, 0.5, 1.1, 1.0]]])).requires_grad_()
    mask = torch.tensor([[True, True, True, True]])
    loss, clip_frac = clipped_surrogate(logp, old, torch.tensor([[1.0]]), mask, eps=0.2)
    # objective = min(r, clip(r)) * A = [1.2, 0.5, 1.1, 1.0]
    assert math.isclose(loss.item(), -(1.2 + 0.5 + 1.1 + 1.0) / 4, rel_tol=1e-6)
    assert math.isclose(clip_frac.item(), 0.5)  # 1.5 and 0.5 are outside [0.8, 1.2]
    loss.backward()
    # The clipped ratio above 1 + eps with A > 0 gets no gradient; the pessimistic 0.5 keeps its gradient.
    assert logp.grad[0, 0, 0] == 0 and logp.grad[0, 0, 1] != 0
    # With A < 0 the clip acts below 1 - eps instead.
    neg, _ = clipped_surrogate(logp.detach(), old, torch.tensor([[-1.0]]), mask, eps=0.2)
    assert math.isclose(neg.item(), (1.5 + 0.8 + 1.1 + 1.0) / 4, rel_tol=1e-6)
    # Padded labels count for nothing.
    half, frac = clipped_surrogate(logp.detach(), old, torch.tensor([[1.0]]),
                                   torch.tensor([[False, False, True, True]]), eps=0.2)
    assert math.isclose(half.item(), -(1.1 + 1.0) / 2, rel_tol=1e-6) and frac.item() == 0


def test_rewards_come_from_the_registry_and_ignore_padding():
    assert resolve_reward("f1_micro") is f1_micro and resolve_reward("label_f1_micro") is f1_micro
    with pytest.raises(UserError, match="not a classification reward"):
        resolve_reward("ndcg")
    actions = torch.tensor([[[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]])  # G=1, B=2, K=3 (example 2 has 2 real labels)
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    got = _rewards(f1_micro, actions, targets, mask)
    assert torch.allclose(got, torch.tensor([[1.0, 2 / 3]]))
    assert np.allclose(_rewards(resolve_reward("recall"), actions, targets, mask).numpy(), [[1.0, 1.0]])


@pytest.mark.parametrize("baseline", ["value", "batch_mean"])
def test_ppo_raises_the_gold_label_probability(tiny_encoder, toy_sets, tmp_path, baseline):
    torch.manual_seed(0)
    # A small logit scale starts the policy near p = 0.5, leaving room to move.
    model, tokenizer = build_model(ModelConfig(encoder=tiny_encoder, dropout=0.0, logit_scale=1.0))
    data = DataConfig(max_labels=3, other_negatives=1, shuffle_labels=False)
    probe = LabelSetSampler(toy_sets, data, seed=1).batch(8)

    def gold_prob():
        with torch.no_grad():
            s = score(model, tokenizer, probe.texts, probe.labels, 64)
        gold = probe.targets.bool() & s.mask
        wrong = ~probe.targets.bool() & s.mask
        return torch.sigmoid(s.logits)[gold].mean().item(), torch.sigmoid(s.logits)[wrong].mean().item()

    gold_before, wrong_before = gold_prob()
    cfg = PPOConfig(steps=12, batch_size=8, samples_per_example=4, inner_iters=3, lr=3e-3, head_lr=3e-3,
                    kl_coef=0.01, entropy_coef=0.001, baseline=baseline, log_every=4, save_every=0)
    model, summary = train_ppo(model, tokenizer, LabelSetSampler(toy_sets, data, seed=0), cfg, 64, tmp_path,
                               f1_micro, log=lambda _: None)
    gold_after, wrong_after = gold_prob()
    assert gold_after > gold_before + 0.05 and wrong_after < wrong_before - 0.05
    assert summary["reward_last"] > summary["reward_first"]
    assert summary["kl_last"] >= 0 and (tmp_path / "final" / "config.json").exists()
    logged = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(logged) == 3 and all(k in logged[0] for k in ("reward", "kl", "entropy", "clip_frac"))
