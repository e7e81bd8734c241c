"""What both training stages share: per-step logs (JSON lines + TensorBoard) and resumable checkpoints."""

from __future__ import annotations

import json
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from rerank_rl.rl.errors import UserError

from .model import encoder_of, load_model


class StepLogger:
    """Appends one JSON object per logged step to `log.jsonl` and mirrors the scalars to TensorBoard."""

    def __init__(self, folder: Path, tag: str):
        from torch.utils.tensorboard import SummaryWriter

        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "log.jsonl"
        self.tag = tag
        self.writer = SummaryWriter(str(folder / "tensorboard"))

    def log(self, step: int, values: dict[str, float]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **{k: round(float(v), 6) for k, v in values.items()}}) + "\n")
        for key, value in values.items():
            self.writer.add_scalar(f"{self.tag}/{key}", float(value), step)

    def close(self) -> None:
        self.writer.close()


def save_model(folder: Path, model, tokenizer) -> None:
    """Write a loadable model folder atomically: a half-written folder never replaces a good one."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def save_checkpoint(folder: Path, model, tokenizer, state: dict) -> None:
    """Model + training state (optimisers, step, every RNG) so that a resumed run continues the same stream.
    The state holds only tensors and plain Python values, so it loads with `torch.load(weights_only=True)`."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {**state, "rng": {"python": random.getstate(), "numpy": [name, keys.tolist(), pos, has_gauss, gauss],
                              "torch": torch.get_rng_state()}}
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    torch.save(state, tmp / "trainer_state.pt")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def load_checkpoint(folder: Path):
    """(model, tokenizer, state) of a checkpoint, or None when there is none."""
    path = folder / "trainer_state.pt"
    if not path.exists():
        return None
    try:  # weights_only: unpickling a file from elsewhere must not run code
        state = torch.load(path, weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(f"{path}: not a plain training state ({str(err).splitlines()[0]}); it may come from an older "
                        "version or another program: delete the checkpoint folder to start the stage afresh") from None
    model, tokenizer = load_model(folder)
    rng = state.pop("rng")
    random.setstate(rng["python"])
    name, keys, pos, has_gauss, gauss = rng["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(rng["torch"])
    return model, tokenizer, state


def resume_stage(folder: Path, model, tokenizer, sampler, stage: str, total: int, resume: bool, log=print):
    """(model, tokenizer, state) to start a stage from: the checkpoint in `folder` when resuming and there is one
    (the sampler and RNGs restored, state holding the optimiser states), else the given model with {"step": 0}."""
    restored = load_checkpoint(folder) if resume else None
    if restored is None:
        return model, tokenizer, {"step": 0}
    model, tokenizer, state = restored
    sampler.restore(state["sampler"])
    log(f"{stage}: resuming at step {state['step']}/{total}")
    return model, tokenizer, state


def freeze_bottom(model, layers: int = 0) -> None:
    """Keep the encoder's input embeddings (the uni-encoder's added label / separator tokens keep their initial
    vectors) and its lowest `layers` transformer layers fixed."""
    encoder = encoder_of(model)
    encoder.get_input_embeddings().requires_grad_(False)
    if hasattr(encoder, "embeddings"):
        encoder.embeddings.requires_grad_(False)
    blocks = getattr(getattr(encoder, "encoder", None), "layer", None)
    if layers and blocks is None:
        raise UserError("frozen_layers works with BERT-like encoders (encoder.layer); set it to 0 for this model")
    for block in list(blocks or [])[:layers]:
        block.requires_grad_(False)


def param_groups(model, lr: float, head_lr: float, weight_decay: float) -> list[dict]:
    """The pretrained encoder learns slowly; the projectors and logit scale, which start from scratch, faster."""
    encoder, head = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (encoder if ".encoder_model." in f".{name}" else head).append(param)
    return [{"params": encoder, "lr": lr, "weight_decay": weight_decay},
            {"params": head, "lr": head_lr, "weight_decay": 0.0}]
