"""`rl.trl_args` and `sft.trl_args`: options of TRL's trainer configs that the recipe schema does not name, passed
through as they are (e.g. `rl.trl_args: {top_p: 0.95, mask_truncated_completions: true}`).

They are checked when the recipe loads, against the fields of the config class the stage will build, so a typo stops
the run before any heavy work with one line naming the key. A field the recipe already sets from a key of its own
is refused and that key named: a recipe says each thing once.
"""

from __future__ import annotations

import dataclasses
import difflib

# TRL fields set from the recipe's own keys, by every training stage (rl/stages/common.py common_args)
COMMON = {"output_dir": "the run folder", "max_steps": "{section}.max_steps",
          "learning_rate": "{section}.learning_rate", "save_steps": "{section}.save_steps", "seed": "seed",
          "data_seed": "seed", "deepspeed": "ray.deepspeed", "bf16": "model.bf16_autocast",
          "gradient_checkpointing": "model.gradient_checkpointing"}
RL = {"per_device_train_batch_size": "rl.micro_batch_size",
      "gradient_accumulation_steps": "rl.prompts_per_step x rl.num_generations / rl.micro_batch_size",
      **{name: f"rl.{name}" for name in (
          "num_generations", "max_completion_length", "temperature", "beta", "loss_type",
          "importance_sampling_level", "use_vllm", "vllm_mode", "vllm_server_host", "vllm_server_port",
          "vllm_gpu_memory_utilization", "vllm_tensor_parallel_size", "vllm_enable_sleep_mode")},
      "shuffle_dataset": "the paradigm (lists kept whole per step)"}
SFT = {"per_device_train_batch_size": "sft.batch_size",
       "gradient_accumulation_steps": "sft.gradient_accumulation_steps", "max_length": "sft.max_length"}


def rl_config_class(trainer: str):
    from trl import GRPOConfig, RLOOConfig

    return GRPOConfig if trainer == "grpo" else RLOOConfig


def sft_config_class(loss: str):
    """TRL's SFTConfig for the token loss; the slot loss runs in a plain transformers Trainer."""
    if loss == "slots":
        from transformers import TrainingArguments

        return TrainingArguments
    from trl import SFTConfig

    return SFTConfig


def check_trl_args(options: dict, config_cls, section: str, owned: dict) -> None:
    """ValueError (`trl_args.KEY: why`, the caller prefixes the section) for the first option that is not a field
    of `config_cls` or that the recipe sets itself."""
    fields = {f.name for f in dataclasses.fields(config_cls) if f.init}
    for key in options:
        if key in owned or key in COMMON:
            recipe_key = (owned.get(key) or COMMON[key]).format(section=section)
            raise ValueError(f"trl_args.{key}: the recipe sets it from {recipe_key}; set that instead")
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"trl_args.{key}: not an option of {config_cls.__name__}{hint}")
