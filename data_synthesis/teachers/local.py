"""A local transformers model as teacher: chat template, left padding, batched `generate` (CPU by default).

Requests are grouped by sampling parameters and sorted by prompt length before batching, so a batch wastes little
on padding. Sampled batches are seeded from the teacher seed and the batch's first sample index, which makes a
re-run with the same requests reproduce the same text (the cache makes that moot, but it helps debugging).
"""

from __future__ import annotations

from collections.abc import Sequence

from rerank_rl.data_synthesis.teachers.base import Reply, Request


class LocalTeacher:
    def __init__(self, model: str = "smollm2-135m-instruct", batch_size: int = 8, device: str = "cpu",
                 dtype: str = "float32", seed: int = 0, identity: str = "", threads: int = 0):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rerank_rl.rl.models import resolve_model

        self._torch = torch
        if threads > 0:  # on a busy machine fewer threads than cores can be faster
            torch.set_num_threads(threads)
        path = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        self.tokenizer.truncation_side = "left"  # an over-long prompt loses its oldest text, never the question
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.chunk_size = batch_size * 4
        self.seed = seed
        self.identity = identity or f"transformers:{model}"
        self.context = int(getattr(self.model.config, "max_position_embeddings", 4096))

    def _prompt(self, request: Request) -> str:
        text = self.tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
        return text + request.prefill

    def _run_batch(self, batch: Sequence[Request]) -> list[str]:
        torch = self._torch
        first = batch[0]
        budget = max(1, self.context - first.max_new_tokens)
        enc = self.tokenizer([self._prompt(r) for r in batch], return_tensors="pt", padding=True,
                             truncation=True, max_length=budget, add_special_tokens=False).to(self.device)
        kwargs = {"max_new_tokens": first.max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if first.temperature > 0:
            kwargs.update(do_sample=True, temperature=first.temperature, top_p=first.top_p)
            torch.manual_seed(self.seed * 1_000_003 + first.sample)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1]:]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [r.prefill + t for r, t in zip(batch, texts)]

    def generate(self, requests: Sequence[Request]) -> list[Reply]:
        replies: list[Reply | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.max_new_tokens, r.temperature, r.top_p), []).append(i)
        for members in groups.values():
            members.sort(key=lambda i: sum(len(m["content"]) for m in requests[i].messages))
            for start in range(0, len(members), self.batch_size):
                idx = members[start : start + self.batch_size]
                try:
                    texts = self._run_batch([requests[i] for i in idx])
                    for i, text in zip(idx, texts):
                        replies[i] = Reply(text=text)
                except Exception as err:  # e.g. out of memory: these requests fail, the run goes on
                    for i in idx:
                        replies[i] = Reply(error=f"{type(err).__name__}: {err}")
        return replies  # type: ignore[return-value]

    def close(self) -> None:
        self.model = None
