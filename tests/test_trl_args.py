"""TRL options the schema does not name (`rl.trl_args`, `sft.trl_args`), vLLM settings, and `sft.max_length`."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset

from rerank_rl.rl.config import CONFIG_DIR, load_recipe
from rerank_rl.rl.errors import UserError

TINY = CONFIG_DIR / "grouprank_tiny.yaml"


def _error(*overrides: str) -> str:
    with pytest.raises(UserError) as err:
        load_recipe(TINY, list(overrides))
    assert "\n" not in str(err.value)
    return str(err.value)


def test_unknown_or_owned_trl_options_fail_at_load_naming_the_key():
    assert "rl.trl_args.top_pp: not an option of GRPOConfig (did you mean 'top_p'?)" in _error("rl.trl_args={top_pp: 0.9}")
    assert "not an option of RLOOConfig" in _error("rl.trainer=rloo", "rl.trl_args={delta: 2.0}")
    assert "rl.trl_args.learning_rate: the recipe sets it from rl.learning_rate" in \
        _error("rl.trl_args={learning_rate: 0.1}")
    assert "from rl.micro_batch_size" in _error("rl.trl_args={per_device_train_batch_size: 2}")
    assert "sft.trl_args.max_length: the recipe sets it from sft.max_length" in _error("sft.trl_args={max_length: 9}")
    # the slot loss runs in a transformers Trainer: SFTConfig's own options are not there
    assert load_recipe(TINY, ["sft.trl_args={packing: true}"]).sft.trl_args == {"packing": True}
    assert "sft.trl_args.packing: not an option of TrainingArguments" in \
        _error("sft.loss=slots", "sft.trl_args={packing: true}")


def test_trl_options_and_vllm_settings_reach_the_trainer_config(tmp_path):
    from rerank_rl.rl.stages.grpo import rl_args

    config = load_recipe(TINY, ["rl.trl_args={top_p: 0.9, logging_steps: 3}", "rl.use_vllm=true",
                                "rl.vllm_mode=server", "rl.vllm_server_host=10.0.0.7", "rl.vllm_server_port=8011",
                                "rl.vllm_gpu_memory_utilization=0.5", "rl.vllm_tensor_parallel_size=2",
                                "rl.vllm_enable_sleep_mode=true"])
    args = rl_args(config, tmp_path / "rl")
    assert (args.top_p, args.logging_steps) == (0.9, 3)  # a pass-through option also overrides a stage default
    assert (args.use_vllm, args.vllm_mode, args.vllm_server_host, args.vllm_server_port) == \
        (True, "server", "10.0.0.7", 8011)
    assert (args.vllm_gpu_memory_utilization, args.vllm_tensor_parallel_size, args.vllm_enable_sleep_mode) == \
        (0.5, 2, True)


def test_truncated_sft_targets_are_counted_and_warned_about(tmp_path, tiny_lm_path, capsys):
    """The count must agree with what TRL's SFTTrainer actually cuts and drops."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rerank_rl.rl.stages.sft import token_trainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)

    def row(prompt: str, answer: str) -> dict:
        return {"prompt": [{"role": "user", "content": prompt}], "completion": [{"role": "assistant", "content": answer}]}

    rows = [row("short", "ok"), row("short", "word " * 60), row("word " * 200, "ok")]
    text = tokenizer.apply_chat_template(rows[0]["prompt"] + rows[0]["completion"], tokenize=False)
    limit = len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 8  # the first row fits, by 8 tokens
    config = load_recipe(TINY, [f"sft.max_length={limit}", "sft.max_steps=1", "lora.enabled=false"])
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    trainer = token_trainer(config, tmp_path / "sft", Dataset.from_list(rows), model, tokenizer)

    counts = json.loads((tmp_path / "sft" / "lengths.json").read_text())
    assert (counts["examples"], counts["truncated"], counts["dropped"]) == (3, 2, 1)
    assert counts["longest"] > 200
    assert f"sft.max_length={limit} cuts the answer of 2 of 3 SFT examples (1 lose all of it" in \
        capsys.readouterr().err
    kept = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    assert len(kept) == 2 and max(kept) == limit  # TRL: one cut to max_length, the prompt-only one dropped
