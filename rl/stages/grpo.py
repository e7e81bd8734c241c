"""The RL stage: TRL's GRPOTrainer (any of its loss types; GSPO through sequence-level importance sampling) or
RLOOTrainer, with rewards from the registry, LoRA from the config, and zero-variance groups filtered and counted.

Batch semantics, stated once: every optimizer step draws `prompts_per_step` prompts on each training worker and
samples `num_generations` completions for each, so with N workers (`ray.num_workers`; 1 without Ray) one step scores
N x prompts_per_step x num_generations completions, and a reward call always holds every completion of a prompt
(group-aware rewards see whole groups). `micro_batch_size` splits a worker's share into forward/backward passes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from datasets import Dataset, load_from_disk

from rerank_rl.rewards.contract import tap_components
from rerank_rl.rewards.registry import combine_rewards
from rerank_rl.rl.console import progress_callback
from rerank_rl.rl.errors import UserError
from rerank_rl.rl.paradigms import get_paradigm
from rerank_rl.rl.probe import attach_probe
from rerank_rl.rl.stages.common import common_args, last_checkpoint, load_causal_lm, lora_config
from rerank_rl.rl.stages.saving import save_outputs
from rerank_rl.rl.vllm_rollouts import ServerRollouts, rollout_server

def check_whole_lists(dataset: Dataset, per_step: int) -> None:
    """UserError when consecutive blocks of `per_step` rows (one RL step's prompts) would split a list: rows of a
    list share its `qid`, and a list-aware reward (ERank's r_RR) must see all of them in one call."""
    qids = dataset["qid"]
    for start in range(0, len(qids), per_step):
        split = set(qids[start:start + per_step]) & (set(qids[:start]) | set(qids[start + per_step:]))
        if split:
            raise UserError(f"RL step {start // per_step + 1} would split list {sorted(split)[0]!r} across reward "
                            f"calls: rl.prompts_per_step ({per_step}) must be a multiple of the list size")


def rl_dataset(config, groups: Dataset) -> Dataset:
    """Prompt column (chat messages) plus the columns rewards read (the paradigm decides both); TRL passes the
    extra columns to rewards."""
    return get_paradigm(config.paradigm).rl_rows(groups, config)


class ZeroVarianceFilter:
    """Mixin for TRL's GRPO/RLOO trainers. A group whose completions all earned the same reward has zero advantage:
    it teaches nothing, yet its tokens still enter the loss normaliser and the KL term. Such groups are masked out of
    the loss, and their count is logged as `zero_variance_groups` (and their share as `frac_zero_variance`)."""

    filter_zero_variance = True

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        advantages, mask = output["advantages"], output["completion_mask"]
        size = self.num_generations
        if not self.filter_zero_variance or advantages.numel() % size:
            return output
        flat = (advantages.abs() < 1e-6).view(-1, size).all(dim=1)
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["zero_variance_groups"].append(float(flat.sum().item()))
        self._metrics[mode]["frac_zero_variance"].append(float(flat.float().mean().item()))
        if flat.all():  # nothing would remain: keep the batch (its loss is the KL term alone)
            return output
        keep = (~flat).repeat_interleave(size).to(mask.dtype).unsqueeze(1)
        output["completion_mask"] = mask * keep
        return output


def _component_logger(holder: list):
    """Sink for reward components: appends each component's batch mean to the trainer's logged metrics."""

    def sink(reward_name: str, components: dict) -> None:
        if not holder:
            return
        metrics = holder[0]._metrics["train"]
        for key, values in components.items():
            present = [v for v in values if v is not None]
            if present:
                metrics[f"reward_components/{key}"].append(float(np.mean(present)))

    return sink


def _trainer_classes(kind: str):
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    if kind == "grpo":
        return GRPOConfig, type("FilteredGRPOTrainer", (ZeroVarianceFilter, GRPOTrainer), {})
    return RLOOConfig, type("FilteredRLOOTrainer", (ZeroVarianceFilter, RLOOTrainer), {})


def vllm_args(section) -> dict:
    """TRL's vLLM settings from the rl section (ignored by TRL unless use_vllm)."""
    on_cpu_server = section.vllm_mode == "cpu_server"  # rollouts through rollout_func, not TRL's own vLLM
    return {"use_vllm": section.use_vllm and not on_cpu_server,
            "vllm_mode": "colocate" if on_cpu_server else section.vllm_mode,
            "vllm_server_host": section.vllm_server_host, "vllm_server_port": section.vllm_server_port,
            "vllm_gpu_memory_utilization": section.vllm_gpu_memory_utilization,
            "vllm_tensor_parallel_size": section.vllm_tensor_parallel_size,
            "vllm_enable_sleep_mode": section.vllm_enable_sleep_mode}


def rl_args(config, out: Path):
    """The TRL GRPOConfig / RLOOConfig of the RL stage: the recipe's keys, then `rl.trl_args` (checked at load)."""
    section = config.rl
    config_cls, _ = _trainer_classes(section.trainer)
    generation_batch = section.prompts_per_step * section.num_generations
    micro = section.micro_batch_size or generation_batch
    extra = {"loss_type": section.loss_type, "importance_sampling_level": section.importance_sampling_level} \
        if section.trainer == "grpo" else {}
    if get_paradigm(config.paradigm).whole_lists_per_step:  # rows stay in list order: each step holds whole lists
        extra["shuffle_dataset"] = False
    options = {
        **common_args(config, out, "rl", section.max_steps, section.learning_rate, section.save_steps),
        # TRL generates (and scores, and filters) all gradient_accumulation_steps x micro completions at once,
        # then trains on them micro at a time: one optimizer step per generation batch either way.
        "per_device_train_batch_size": micro,
        "gradient_accumulation_steps": generation_batch // micro,
        "num_generations": section.num_generations,
        "max_completion_length": section.max_completion_length,
        "temperature": section.temperature,
        "beta": section.beta,
        "log_completions": False,
        **vllm_args(section),
        **extra,
        # TRL options the recipe does not name (getattr: a config pickled by a driver that predates the key)
        **getattr(section, "trl_args", {}),
    }
    try:
        return config_cls(**options)
    except ValueError as err:  # TRL's own checks (e.g. batch divisibility): say which recipe keys are involved
        raise UserError(f"rl section rejected by TRL ({err}); one step draws rl.prompts_per_step x "
                        f"rl.num_generations = {generation_batch} completions per training worker") from None


def run_rl(config, run_dir: Path, start_model: str, resume: bool = False, callbacks: list | None = None,
           rollout_func=None) -> Path:
    """Train with RL from `start_model`; save a merged checkpoint to run_dir/rl/merged and the adapter to
    run_dir/rl/adapter. Returns the merged path. `callbacks` are extra transformers TrainerCallbacks;
    `rollout_func` replaces TRL's generation (GRPO only; e.g. rl/vllm_rollouts.py)."""
    section = config.rl
    out = run_dir / "rl"
    dataset = rl_dataset(config, load_from_disk(str(run_dir / "data" / "train_groups")))
    try:
        reward = combine_rewards(section.rewards, name="reward")
    except ValueError as err:
        raise UserError(f"rl.rewards: {err}") from None
    holder: list = []
    reward_fn = tap_components(reward, _component_logger(holder))
    if get_paradigm(config.paradigm).whole_lists_per_step:
        check_whole_lists(dataset, section.prompts_per_step)
    args = rl_args(config, out)
    _, trainer_cls = _trainer_classes(section.trainer)
    if rollout_func is not None and section.trainer != "grpo":
        raise UserError("rl.trainer: rollouts from a server need grpo (TRL's RLOO trainer takes no rollout_func)")
    with rollout_server(config, start_model, run_dir) as server:  # None unless rl.vllm_mode: cpu_server
        if server is not None:
            rollout_func = ServerRollouts(server, out / "rollout_adapters")
        extra = {"rollout_func": rollout_func} if rollout_func is not None else {}
        model, tokenizer = load_causal_lm(start_model, config.model.dtype)
        trainer = trainer_cls(model=model, reward_funcs=[reward_fn], args=args, train_dataset=dataset,
                              processing_class=tokenizer, peft_config=lora_config(config.lora), callbacks=callbacks,
                              **extra)
        trainer.filter_zero_variance = section.filter_zero_variance
        holder.append(trainer)
        attach_probe(trainer, config, run_dir, "rl")
        trainer.add_callback(progress_callback(run_dir, "rl", "reward"))
        trainer.train(resume_from_checkpoint=last_checkpoint(out) if resume else None)
        trainer.save_state()
    return save_outputs(trainer, tokenizer, out, start_model, config, adapter=True)
