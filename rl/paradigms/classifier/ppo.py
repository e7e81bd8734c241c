"""PPO for multi-label classification.

The policy is the classifier itself: for each offered label, p = sigmoid(logit) and the action is a ~ Bernoulli(p)
("this label applies"). A rollout draws `samples_per_example` action vectors per text from one forward pass; the
reward of a vector is a per-example classification reward (micro-F1 by default) against the gold labels. With a
baseline V (a value head on detached features, else the batch or group mean), the advantage A = R - V is shared by
all labels of that vector, and each label contributes a clipped surrogate min(r A, clip(r, 1-eps, 1+eps) A) with
r = exp(log pi(a) - log pi_old(a)) per label. The rollout's actions and old log-probs stay fixed across the inner
iterations. The loss adds kl_coef * KL(pi || pi_ref) (exact, per label, against the frozen start model) and
subtracts entropy_coef * H(pi), so a positive entropy coefficient encourages exploration.

With a validator, zero-shot macro-F1 on the held-out labels is logged beside the reward every `validate_every`
steps (so a user sees whether RL helps or hurts generalisation), and the stage keeps its best checkpoint, the start
model included: PPO can then never end below the model it started from on those labels.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rerank_rl.rl.errors import UserError

from .config import PPOConfig
from .data import LabelSetSampler
from .model import hidden_size, score
from .trainio import (
    StepLogger, freeze_bottom, param_groups, resume_stage, save_checkpoint, save_model,
)
from .validate import Selection, Validator

RewardFn = Callable[..., np.ndarray]  # (pred (B, L) bool, gold (B, L) bool, mask (B, L) bool) -> (B,)


def resolve_reward(name: str) -> RewardFn:
    """A per-example classification reward from the rewards package: `f1_micro`, `f1_macro`, `accuracy`,
    `recall`, `precision`, `exact_match` (the `label_` prefix of their registry names is accepted), or a
    `module:function` / `file.py:function` array function loaded through the registry."""
    from rerank_rl.rewards import classification
    from rerank_rl.rewards.registry import get_reward

    short = name.strip().removeprefix("label_")
    if short in classification.__all__ and short != "label_matrices":
        return getattr(classification, short)
    if ":" in name:
        try:
            return get_reward(name)
        except ValueError as err:
            raise UserError(str(err)) from None
    names = [n for n in classification.__all__ if n != "label_matrices"]
    raise UserError(f"ppo.reward {name!r} is not a classification reward (one of {', '.join(names)}, "
                    "or module:function)")


# ---- the PPO arithmetic, kept as small pure functions so that tests can pin each one ----------------------------

def bernoulli_log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log pi(a) per label: log sigmoid(z) for a = 1, log sigmoid(-z) for a = 0 (stable for large |z|)."""
    return actions * F.logsigmoid(logits) + (1 - actions) * F.logsigmoid(-logits)


def bernoulli_entropy(logits: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)
    return -(p * F.logsigmoid(logits) + (1 - p) * F.logsigmoid(-logits))


def bernoulli_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """KL(Bern(sigmoid(z)) || Bern(sigmoid(z_ref))) per label, exact; >= 0."""
    p = torch.sigmoid(logits)
    return (p * (F.logsigmoid(logits) - F.logsigmoid(ref_logits))
            + (1 - p) * (F.logsigmoid(-logits) - F.logsigmoid(-ref_logits)))


def advantages(rewards: torch.Tensor, values: torch.Tensor | None, baseline: str) -> torch.Tensor:
    """A = R - V for rewards (G, B): V from the value head (B,), else the batch mean or each example's group mean."""
    if baseline == "value":
        if values is None:
            raise ValueError("baseline 'value' needs values")
        return rewards - values[None, :]
    if baseline == "group_mean":
        return rewards - rewards.mean(dim=0, keepdim=True)
    return rewards - rewards.mean()


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                      eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO policy loss (to minimise) over per-label log-probs (G, B, K) with advantages (G, B); also returns the
    share of real labels whose ratio was clipped."""
    ratio = torch.exp(logp - old_logp)
    adv = adv[..., None]
    objective = torch.min(ratio * adv, ratio.clamp(1 - eps, 1 + eps) * adv)
    mask = mask.expand_as(ratio).float()
    loss = -(objective * mask).sum() / mask.sum().clamp_min(1)
    clipped = ((ratio - 1).abs() > eps).float()
    return loss, (clipped * mask).sum() / mask.sum().clamp_min(1)


class ValueHead(torch.nn.Module):
    """Predicts the expected reward from the (detached) text vector and the mean offered-label vector, so its
    training never moves the policy."""

    def __init__(self, width: int, hidden: int = 128):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2 * width, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))

    @staticmethod
    def features(text: torch.Tensor, classes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.float()[..., None]
        pooled = (classes * weights).sum(1) / weights.sum(1).clamp_min(1)
        return torch.cat([text, pooled], dim=-1).detach()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(-1)


def _rewards(reward_fn: RewardFn, actions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-(sample, example) rewards; padded label slots are masked out so they never count as decisions."""
    gold, real = targets.bool().numpy(), mask.numpy()
    values = [np.asarray(reward_fn(a.bool().numpy(), gold, real), dtype=np.float64) for a in actions]
    return torch.tensor(np.stack(values), dtype=torch.float32)


def train_ppo(model, tokenizer, sampler: LabelSetSampler, cfg: PPOConfig, max_length: int, out_dir: Path,
              reward_fn: RewardFn, resume: bool = False, log=print, frozen: int | None = None,
              validator: Validator | None = None):
    """Run `cfg.steps` PPO steps from `model` (also the frozen reference); returns (model, summary). out_dir/final
    is the best validated checkpoint with a validator, else the last weights."""
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    ckpt = out_dir / "checkpoint"
    model, tokenizer, state = resume_stage(ckpt, model, tokenizer, sampler, "ppo", cfg.steps, resume, log)
    start = state["step"]
    if frozen is not None:
        freeze_bottom(model, frozen)
    value_head = ValueHead(hidden_size(model))
    optimizer = torch.optim.AdamW(param_groups(model, cfg.lr, cfg.head_lr, 0.0))
    value_optimizer = torch.optim.Adam(value_head.parameters(), lr=cfg.value_lr)
    if start:
        optimizer.load_state_dict(state["optimizer"])
        value_head.load_state_dict(state["value_head"])
        value_optimizer.load_state_dict(state["value_optimizer"])
    # Dropout off throughout: the ratio must compare the same function before and after an update.
    model.eval()
    logger = StepLogger(out_dir, "ppo")
    selection = Selection(validator, out_dir / "final", cfg.validate_every, cfg.patience, log, logger,
                          state.get("selection"), cfg.choice_confidence)
    if selection.active and not start:
        selection.check(0, model, tokenizer)
    started, history, stopped_at = time.time(), [], None
    for step in range(start, cfg.steps):
        batch = sampler.batch(cfg.batch_size)
        with torch.no_grad():
            old = score(model, tokenizer, batch.texts, batch.labels, max_length, embeddings=True)
            ref_logits = score(reference, tokenizer, batch.texts, batch.labels, max_length).logits
            probs = torch.sigmoid(old.logits).expand(cfg.samples_per_example, -1, -1)
            actions = torch.bernoulli(probs) * old.mask  # (G, B, K)
            old_logp = bernoulli_log_prob(old.logits, actions)
            rewards = _rewards(reward_fn, actions, batch.targets, old.mask)
            features = ValueHead.features(old.text_embeddings, old.class_embeddings, old.mask)
            if step == 0 and cfg.baseline == "value":
                # Start V at the first rollout's mean reward: an untrained head (V ~ 0) would make every advantage
                # positive and reinforce whatever was sampled, collapsing the policy's entropy.
                value_head.net[-1].bias.fill_(rewards.mean().item())
            values = value_head(features) if cfg.baseline == "value" else None
            adv = advantages(rewards, values, cfg.baseline)
        for _ in range(cfg.inner_iters):
            new = score(model, tokenizer, batch.texts, batch.labels, max_length)
            logp = bernoulli_log_prob(new.logits, actions)
            policy_loss, clip_frac = clipped_surrogate(logp, old_logp, adv, old.mask, cfg.clip_eps)
            real = old.mask.float()
            kl = (bernoulli_kl(new.logits, ref_logits) * real).sum() / real.sum()
            entropy = (bernoulli_entropy(new.logits) * real).sum() / real.sum()
            loss = policy_loss + cfg.kl_coef * kl - cfg.entropy_coef * entropy
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
        value_loss = torch.tensor(0.0)
        if cfg.baseline == "value":  # fit V to this rollout's returns after the policy used it as a baseline
            value_loss = F.mse_loss(value_head(features), rewards.mean(0))
            value_optimizer.zero_grad(set_to_none=True)
            value_loss.backward()
            value_optimizer.step()
        stats = {"reward": rewards.mean().item(), "kl": kl.item(), "entropy": entropy.item(),
                 "clip_frac": clip_frac.item(), "policy_loss": policy_loss.item(), "value_loss": value_loss.item(),
                 "adv_std": adv.std().item(), "gold_prob": _gold_prob(new.logits, batch.targets, old.mask)}
        history.append(stats)
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            logger.log(step + 1, stats)
            log(f"ppo step {step + 1}/{cfg.steps} " + " ".join(f"{k} {v:.4f}" for k, v in stats.items()))
        if selection.due(step + 1, cfg.steps):
            selection.check(step + 1, model, tokenizer, {"reward": stats["reward"]})
            if selection.stop():
                stopped_at = step + 1
                log(f"ppo: no better held-out figure in {cfg.patience} validations; stopping at step {stopped_at}")
                break
        if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
            save_checkpoint(ckpt, model, tokenizer, {
                "step": step + 1, "sampler": sampler.state(), "optimizer": optimizer.state_dict(),
                "value_head": value_head.state_dict(), "value_optimizer": value_optimizer.state_dict(),
                "selection": selection.state})
    logger.close()
    save_model(out_dir / ("last" if selection.active else "final"), model, tokenizer)
    summary = {"steps": cfg.steps, "resumed_at": start, "stopped_at": stopped_at,
               "wall_s": round(time.time() - started, 2), **selection.summary()}
    if history:
        head, tail = history[: max(1, len(history) // 5)], history[-max(1, len(history) // 5):]
        for key in ("reward", "kl", "clip_frac", "gold_prob"):
            summary[f"{key}_first"] = float(np.mean([h[key] for h in head]))
            summary[f"{key}_last"] = float(np.mean([h[key] for h in tail]))
    return model, summary


def _gold_prob(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean probability the policy gives gold labels (a quick health signal in the logs)."""
    gold = targets.bool() & mask
    return torch.sigmoid(logits.detach())[gold].mean().item() if gold.any() else float("nan")
