"""Helpers shared by the training stages: model loading, LoRA, TRL argument defaults, checkpoints."""

from __future__ import annotations

import re
from pathlib import Path

from rerank_rl.rl.errors import UserError


def last_checkpoint(folder: Path) -> str | None:
    """Newest `checkpoint-N` folder that finished saving (trainer_state.json is written last), else None."""
    found = []
    for path in Path(folder).glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and (path / "trainer_state.json").exists():
            found.append((int(match.group(1)), path))
    return str(max(found)[1]) if found else None


def lora_config(section):
    if not section.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(r=section.r, lora_alpha=section.alpha, lora_dropout=section.dropout,
                      target_modules=section.target_modules, task_type="CAUSAL_LM")


def common_args(config, output_dir: Path, stage_name: str, max_steps: int, learning_rate: float,
                save_steps: int) -> dict:
    """TrainingArguments shared by SFT and RL: fixed steps, frequent checkpoints, tensorboard, seeded."""
    import os

    import torch

    # Set per stage, not once: with Ray off, SFT and RL share one process and RL would log into SFT's folder.
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(output_dir.parent / "tensorboard" / stage_name)
    return dict(
        output_dir=str(output_dir),
        max_steps=max_steps,
        learning_rate=learning_rate,
        logging_steps=1,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=2,
        report_to=["tensorboard"],
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=use_bf16_autocast(config.model.bf16_autocast),
        disable_tqdm=False,
        dataloader_num_workers=0,
        deepspeed=config.ray.deepspeed or None,
        gradient_checkpointing=config.model.gradient_checkpointing,
        # every trainable parameter (LoRA or the whole model) takes part in the loss: the search DDP would make for
        # unused ones costs an extra autograd traversal per step
        ddp_find_unused_parameters=False,
    )


def cpu_has_bf16() -> bool:
    """True when this CPU multiplies bf16 in hardware (Linux flags avx512_bf16 or amx_bf16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def use_bf16_autocast(setting: bool | str) -> bool:
    import torch

    if setting != "auto":
        return bool(setting)
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16()


def inference_dtype(config) -> str:
    """The weights' dtype for evaluation and serving: bf16 where training autocasts to it (scoring then runs
    ~1.5x faster on CPU), else the model's own dtype. Export records it, so a reload scores alike."""
    return "bfloat16" if use_bf16_autocast(config.model.bf16_autocast) else config.model.dtype


def load_causal_lm(path: str, dtype: str = "float32"):
    """(model, tokenizer); for a vision-language model (model, processor), which TRL's trainers also take."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rerank_rl.rl.vlm import is_vision_language, load_vision_language

    if is_vision_language(path):
        return load_vision_language(path, dtype)

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    return model, tokenizer


def freeze_lower_layers(model, count: int) -> None:
    """Keep the token embeddings (tied to the output head in small LMs) and the lowest `count` transformer layers
    fixed: autograd then stops above them, so a step costs their forward pass only."""
    if not count:
        return
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise UserError(f"sft.frozen_layers: {type(model).__name__} has no model.layers to freeze; set it to 0")
    if count >= len(layers):
        raise UserError(f"sft.frozen_layers is {count} but the model has {len(layers)} layers: nothing would train")
    for module in (model.get_input_embeddings(), *layers[:count]):
        module.requires_grad_(False)


def save_merged(model, tokenizer, out: Path) -> Path:
    """Save a full checkpoint; a PEFT model is merged first so the folder loads without peft."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out
