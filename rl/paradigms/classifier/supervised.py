"""Supervised stage: BCE or focal loss over sigmoid label scores (multi-label), softmax cross-entropy
(single-label) or InfoNCE over the example's label set, on label sets drawn by `LabelSetSampler`."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import SupervisedConfig
from .data import LabelSetSampler
from .model import logit_scale, score
from .trainio import (
    StepLogger, freeze_bottom, param_groups, resume_stage, save_checkpoint, save_model,
)
from .validate import Selection, Validator


def supervised_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, kind: str = "bce",
                    gamma: float = 2.0, alpha: float = -1.0) -> torch.Tensor:
    """Mean loss over the real label slots of a (B, K) batch."""
    mask = mask.bool()
    if kind == "infonce":
        return infonce_loss(logits, targets, mask)
    if kind == "ce":
        log_probs = F.log_softmax(logits.masked_fill(~mask, float("-inf")), dim=-1).masked_fill(~mask, 0.0)
        weights = targets / targets.sum(-1, keepdim=True).clamp_min(1.0)  # several gold labels share the mass
        return -(weights * log_probs).sum(-1).mean()
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if kind == "focal":
        p = torch.sigmoid(logits)
        p_true = p * targets + (1 - p) * (1 - targets)
        loss = loss * (1 - p_true) ** gamma  # well-classified labels (p_true near 1) weigh little
        if alpha >= 0:
            loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return (loss * mask).sum() / mask.sum().clamp_min(1)


def infonce_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over gold labels of -log softmax over {that gold label} + the example's negatives: every gold label is
    pushed above every negative, never against another gold label of the same text (multi-label aware). Rows
    without a gold label or without a negative teach nothing and are left out."""
    gold = targets.bool() & mask
    negatives = mask & ~gold
    # log-sum-exp of each row's negatives, then of (that, one gold logit) per gold slot.
    neg_lse = torch.logsumexp(logits.masked_fill(~negatives, float("-inf")), dim=-1, keepdim=True)
    per_gold = torch.logaddexp(logits, neg_lse) - logits  # (B, K); +inf-free where the row has a negative
    rows = gold.any(-1) & negatives.any(-1)
    used = gold & rows[:, None]
    if not used.any():
        return logits.sum() * 0.0  # keeps the graph (and its device) for a batch with nothing to learn
    per_row = per_gold.masked_fill(~used, 0.0).sum(-1) / used.sum(-1).clamp_min(1)
    return per_row[rows].mean()


class SimilarityTeacher:
    """Cosine similarity of mean-pooled sentence embeddings (sentence-transformers) between a text and each label
    name: the embedding baseline's scores, used as soft targets."""

    def __init__(self, encoder: str, temperature: float, max_length: int | None = None):
        from sentence_transformers import SentenceTransformer

        from rerank_rl.rl.models import resolve_model

        self.model = SentenceTransformer(resolve_model(encoder), device="cpu")
        if max_length:  # read the texts as the student does
            self.model.max_seq_length = min(max_length, self.model.max_seq_length)
        self.temperature = temperature
        self.label_cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def log_probs(self, texts: list[str], label_lists: list[list[str]], mask: torch.Tensor) -> torch.Tensor:
        new = sorted({label for labels in label_lists for label in labels} - set(self.label_cache))
        if new:
            for label, vector in zip(new, self.model.encode(new, convert_to_tensor=True, normalize_embeddings=True)):
                self.label_cache[label] = vector
        text_vectors = self.model.encode(texts, convert_to_tensor=True, normalize_embeddings=True)
        sims = torch.zeros(mask.shape)
        for i, labels in enumerate(label_lists):
            sims[i, : len(labels)] = torch.stack([self.label_cache[label] for label in labels]) @ text_vectors[i]
        return F.log_softmax((sims / self.temperature).masked_fill(~mask, float("-inf")), dim=-1)


def distill_loss(logits: torch.Tensor, teacher_log_probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) between the label distributions (softmax over the offered labels)."""
    student = F.log_softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
    teacher = teacher_log_probs.exp()
    return (teacher * (teacher_log_probs - student)).masked_fill(~mask, 0.0).sum(-1).mean()


CONTENT_FREE = ("", "N/A", "[MASK]", ".")


def prior_loss(model, tokenizer, label_lists: list[list[str]], max_length: int) -> torch.Tensor:
    """Mean squared spread of each row's label logits around their mean when the text is content-free: zero when
    no label is preferred before the text is read (the trained-in form of contextual calibration)."""
    texts = [CONTENT_FREE[i % len(CONTENT_FREE)] for i in range(len(label_lists))]
    scores = score(model, tokenizer, texts, label_lists, max_length)
    mask = scores.mask.float()
    mean = (scores.logits * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp_min(1)
    return ((scores.logits - mean) ** 2 * mask).sum() / mask.sum().clamp_min(1)


def encoder_anchor(model) -> dict[str, torch.Tensor]:
    """A copy of the encoder's weights as they are now (the pretrained ones, before training)."""
    return {name: param.detach().clone() for name, param in model.named_parameters()
            if ".encoder_model." in f".{name}"}


def l2sp_penalty(model, anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """L2-SP (Li et al. 2018): squared distance of the trainable encoder weights from `anchor`, summed. Unlike
    weight decay, which pulls towards zero, it pulls towards what the encoder knew."""
    terms = [((param - anchor[name]) ** 2).sum() for name, param in model.named_parameters()
             if param.requires_grad and name in anchor]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def mix_weights(pretrained: dict[str, torch.Tensor], trained: dict[str, torch.Tensor], alpha: float) -> dict:
    """alpha * trained + (1 - alpha) * pretrained for every floating-point tensor (integer buffers such as position
    ids are the same in both and are kept)."""
    return {name: alpha * value + (1 - alpha) * pretrained[name] if value.is_floating_point() else value
            for name, value in trained.items()}


def _schedule(optimizer, steps: int, warmup: float):
    warm = max(1, int(steps * warmup))

    def factor(step: int) -> float:  # linear warm-up, then linear decay to zero
        return min((step + 1) / warm, max(0.0, (steps - step) / max(1, steps - warm)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_supervised(model, tokenizer, sampler: LabelSetSampler, cfg: SupervisedConfig, max_length: int,
                     out_dir: Path, resume: bool = False, log=print, frozen: int | None = None,
                     teacher: SimilarityTeacher | None = None, validator: Validator | None = None):
    """Train for `cfg.steps` steps; returns (model, summary). Writes periodic checkpoints and out_dir/final: with a
    validator and `cfg.validate_every`, the best checkpoint on the held-out labels (step 0, the untrained model,
    included; the last weights go to out_dir/last), else the last weights."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / "checkpoint"
    anchor = encoder_anchor(model) if cfg.l2sp_weight > 0 else {}  # taken before a checkpoint replaces the model
    pretrained = {k: v.detach().clone() for k, v in model.state_dict().items()} if cfg.interpolate else {}
    model, tokenizer, state = resume_stage(ckpt, model, tokenizer, sampler, "supervised", cfg.steps, resume, log)
    start = state["step"]
    if frozen is not None:
        freeze_bottom(model, frozen)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.lr, cfg.head_lr, cfg.weight_decay))
    scheduler = _schedule(optimizer, cfg.steps, cfg.warmup)
    if start:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    logger = StepLogger(out_dir, "supervised")
    selection = Selection(validator, out_dir / "final", cfg.validate_every, cfg.patience, log, logger,
                          state.get("selection"), cfg.choice_confidence)
    model.train()
    started, first_loss, loss_value, stopped_at = time.time(), None, float("nan"), None
    if selection.active and not start:
        selection.check(0, model, tokenizer)
    for step in range(start, cfg.steps):
        batch = sampler.batch(cfg.batch_size)
        scores = score(model, tokenizer, batch.texts, batch.labels, max_length)
        # Open-vocabulary labels (known False) have no target: only the teacher's distillation term trains them.
        known = scores.mask & batch.known
        loss = supervised_loss(scores.logits, batch.targets, known, cfg.loss, cfg.focal_gamma, cfg.focal_alpha)
        if teacher is not None and cfg.distill_weight > 0:
            target = teacher.log_probs(batch.texts, batch.labels, scores.mask)
            loss = loss + cfg.distill_weight * distill_loss(scores.logits, target, scores.mask)
        if cfg.prior_weight > 0:
            loss = loss + cfg.prior_weight * prior_loss(model, tokenizer, batch.labels, max_length)
        drift = l2sp_penalty(model, anchor) if anchor else None
        if drift is not None:
            loss = loss + cfg.l2sp_weight * drift
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        loss_value = loss.item()
        first_loss = loss_value if first_loss is None else first_loss
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            scale = logit_scale(model)
            values = {"loss": loss_value, "logit_scale": scale, "lr": scheduler.get_last_lr()[0]}
            if drift is not None:
                values["l2sp_drift"] = drift.item()
            logger.log(step + 1, values)
            log(f"supervised step {step + 1}/{cfg.steps} loss {loss_value:.4f} scale {scale:.2f}"
                + (f" drift {drift.item():.4f}" if drift is not None else ""))
        if selection.due(step + 1, cfg.steps):
            selection.check(step + 1, model, tokenizer, {"loss": loss_value})
            if selection.stop():
                stopped_at = step + 1
                log(f"supervised: no better held-out figure in {cfg.patience} validations; stopping at step "
                    f"{stopped_at}")
                break
        if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
            save_checkpoint(ckpt, model, tokenizer, {"step": step + 1, "sampler": sampler.state(),
                                                     "optimizer": optimizer.state_dict(),
                                                     "scheduler": scheduler.state_dict(),
                                                     "selection": selection.state})
    if pretrained and selection.active:
        last = {k: v.detach().clone() for k, v in model.state_dict().items()}
        for alpha in cfg.interpolate:
            model.load_state_dict(mix_weights(pretrained, last, alpha))
            selection.check(stopped_at or cfg.steps, model, tokenizer, {"interpolation": alpha})
        model.load_state_dict(last)
    logger.close()
    model.eval()
    save_model(out_dir / ("last" if selection.active else "final"), model, tokenizer)
    return model, {"steps": cfg.steps, "resumed_at": start, "stopped_at": stopped_at, "first_loss": first_loss,
                   "last_loss": loss_value, "wall_s": round(time.time() - started, 2),
                   "distinct_labels": sampler.distinct_labels(), **selection.summary()}
