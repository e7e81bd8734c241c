"""SFT warm-start: teach the answer format (and a first sense of relevance) before RL.

With `sft.teacher: gold` the target completion is the gold grades rendered in the paradigm's answer format (the
built-in teacher); with `synthesized` the stage reads the SFT dataset the synthesis stage wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

from datasets import Dataset, load_from_disk

from rerank_rl.rl.console import progress_callback, warn
from rerank_rl.rl.errors import UserError
from rerank_rl.rl.orchestration import is_main_process
from rerank_rl.rl.paradigms import get_paradigm
from rerank_rl.rl.probe import attach_probe
from rerank_rl.rl.stages.common import common_args, freeze_lower_layers, last_checkpoint, load_causal_lm, lora_config
from rerank_rl.rl.stages.saving import save_outputs


def sft_dataset(config, groups: Dataset, run_dir: Path) -> Dataset:
    if config.sft.teacher == "synthesized":
        path = run_dir / "synthesis" / "sft"
        if not path.exists():
            raise UserError(f"sft.teacher is 'synthesized' but {path} does not exist: run the synthesize stage first")
        return load_from_disk(str(path)).select_columns(["prompt", "completion"])
    rows = get_paradigm(config.paradigm).sft_rows(groups, config)
    return rows if isinstance(rows, Dataset) else Dataset.from_list(rows)  # a Dataset: rows with images


def run_sft(config, run_dir: Path, base_model: str, resume: bool = False) -> Path:
    """Train, then save a merged checkpoint to run_dir/sft/merged and return its path."""
    out = run_dir / "sft"
    groups = load_from_disk(str(run_dir / "data" / "train_groups"))
    model, tokenizer = load_causal_lm(base_model, config.model.dtype)
    freeze_lower_layers(model, config.sft.frozen_layers)
    if config.sft.loss == "slots":
        trainer = slot_trainer(config, out, groups, model, tokenizer, base_model)
    else:
        trainer = token_trainer(config, out, sft_dataset(config, groups, run_dir), model, tokenizer)
    attach_probe(trainer, config, run_dir, "sft")
    trainer.add_callback(progress_callback(run_dir, "sft", "loss"))
    trainer.train(resume_from_checkpoint=last_checkpoint(out) if resume else None)
    trainer.save_state()
    return save_outputs(trainer, tokenizer, out, base_model, config)


def count_truncated(dataset: Dataset, tokenizer, max_length: int) -> dict:
    """How many examples exceed `max_length` tokens (prompt + answer, as TRL tokenizes them). TRL keeps the first
    max_length tokens, so these lose the end of their answer, and one whose prompt alone fills max_length is dropped
    (nothing left to learn)."""
    # a vision-language processor renders the prompt; its text tokenizer counts (an image counts as one token)
    text_tokenizer = getattr(tokenizer, "tokenizer", tokenizer)

    def length(messages: list, answer: bool) -> int:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=not answer)
        return len(text_tokenizer(text, add_special_tokens=False)["input_ids"])

    dataset = dataset.select_columns(["prompt", "completion"])  # leaves page images undecoded
    totals = [length(row["prompt"] + row["completion"], True) for row in dataset]
    prompts = [length(row["prompt"], False) for row, total in zip(dataset, totals) if total > max_length]
    return {"max_length": max_length, "examples": len(totals), "truncated": len(prompts),
            "dropped": sum(p >= max_length for p in prompts), "longest": max(totals, default=0)}


def report_truncation(counts: dict, out: Path) -> None:
    """sft/lengths.json, and a warning on the console when answers are cut (main process only)."""
    if not is_main_process():
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / "lengths.json").write_text(json.dumps(counts, indent=2))
    if counts["truncated"]:
        warn(out.parent, f"sft.max_length={counts['max_length']} cuts the answer of {counts['truncated']} of "
                         f"{counts['examples']} SFT examples ({counts['dropped']} lose all of it and are left out; "
                         f"longest {counts['longest']} tokens): raise sft.max_length or shrink data.group_sizes / "
                         "data.max_doc_chars")


def token_trainer(config, out: Path, dataset: Dataset, model, tokenizer):
    """TRL's SFTTrainer on the answer text (completion tokens only)."""
    from trl import SFTConfig, SFTTrainer

    report_truncation(count_truncated(dataset, tokenizer, config.sft.max_length), out)
    options = {
        **common_args(config, out, "sft", config.sft.max_steps, config.sft.learning_rate, config.sft.save_steps),
        "per_device_train_batch_size": config.sft.batch_size,
        "gradient_accumulation_steps": config.sft.gradient_accumulation_steps,
        "completion_only_loss": True,
        "max_length": config.sft.max_length,
        # checked at load (getattr: a config pickled by a driver that predates the key)
        **getattr(config.sft, "trl_args", {}),
    }
    try:
        args = SFTConfig(**options)
    except ValueError as err:
        raise UserError(f"sft section rejected by TRL: {err}") from None
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                      peft_config=lora_config(config.lora))


def slot_trainer(config, out: Path, groups: Dataset, model, tokenizer, base_model: str):
    """The slot loss (rl/stages/slot_sft.py) in a transformers Trainer; batch_size counts queries."""
    from transformers import TrainingArguments

    from rerank_rl.rl.stages.slot_sft import build_slot_trainer, check_slot_tokenizer

    check_slot_tokenizer(tokenizer, base_model)
    args = TrainingArguments(**{
        **common_args(config, out, "sft", config.sft.max_steps, config.sft.learning_rate, config.sft.save_steps),
        "per_device_train_batch_size": config.sft.batch_size,
        "gradient_accumulation_steps": config.sft.gradient_accumulation_steps,
        "remove_unused_columns": False,
        **getattr(config.sft, "trl_args", {}),
    })
    return build_slot_trainer(config, model, tokenizer, groups, args)
