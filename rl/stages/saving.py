"""What a training stage leaves behind: the merged checkpoint (and the LoRA adapter), written once.

Under DeepSpeed ZeRO-3 every rank holds a slice of every parameter, so rank 0 alone cannot save: all ranks must take
part in gathering them. That is what transformers' `Trainer.save_model` does under DeepSpeed (accelerate's
`get_state_dict` on the engine; with PEFT only the adapter's parameters are gathered), and rank 0 writes. The merged
model is then rebuilt on rank 0 from the start checkpoint on disk plus that adapter, so no rank ever holds the whole
trained model beside its shards. Without ZeRO-3 rank 0 merges and saves the model it holds, as before.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rerank_rl.rl.errors import UserError
from rerank_rl.rl.orchestration import is_main_process
from rerank_rl.rl.stages.common import load_causal_lm, save_merged


def zero3(trainer) -> bool:
    """True when the trainer runs DeepSpeed ZeRO stage 3 (parameters partitioned across ranks)."""
    if not getattr(trainer, "is_deepspeed_enabled", False):
        return False
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    return plugin is not None and plugin.zero_stage == 3


def save_outputs(trainer, tokenizer, out: Path, start_model: str, config, adapter: bool = False) -> Path:
    """Write out/merged (and out/adapter when `adapter` and LoRA is on); every rank must call it. Returns the
    merged path."""
    merged = out / "merged"
    if not zero3(trainer):
        if is_main_process():
            if adapter and config.lora.enabled:
                trainer.model.save_pretrained(out / "adapter")
                tokenizer.save_pretrained(out / "adapter")
            save_merged(trainer.model, tokenizer, merged)
        return merged
    gathered = out / "gathered"
    trainer.save_model(str(gathered))  # every rank: gathers the ZeRO-3 partitions; rank 0 writes
    if not is_main_process():
        return merged
    if not any(gathered.glob("*.safetensors")):
        raise UserError(f"{config.ray.deepspeed}: ZeRO-3 saved no weights: set \"zero_optimization\": "
                        "{\"stage3_gather_16bit_weights_on_model_save\": true} in the DeepSpeed config")
    tokenizer.save_pretrained(gathered)
    if not config.lora.enabled:  # the gathered folder is the whole model already
        shutil.rmtree(merged, ignore_errors=True)
        gathered.rename(merged)
        return merged
    from peft import PeftModel
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    # Training is over: without this, from_pretrained would partition the base model with ZeRO-3 again, a
    # collective that rank 0 alone would wait on forever.
    unset_hf_deepspeed_config()
    base, _ = load_causal_lm(start_model, config.model.dtype)
    save_merged(PeftModel.from_pretrained(base, str(gathered)), tokenizer, merged)
    if adapter:
        shutil.rmtree(out / "adapter", ignore_errors=True)
        gathered.rename(out / "adapter")
    else:
        shutil.rmtree(gathered)
    return merged

