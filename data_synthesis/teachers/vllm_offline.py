"""A vLLM offline engine as teacher (GPU). vLLM is an optional extra (`pip install 'rerank-rl[vllm]'` in a CUDA
environment) and is imported only when this backend is chosen. Each request carries its own seed, so samples are
reproducible whatever the batch composition."""

from __future__ import annotations

from collections.abc import Sequence

from rerank_rl.data_synthesis.teachers.base import Reply, Request
from rerank_rl.rl.errors import UserError


class VLLMTeacher:
    def __init__(self, model: str = "smollm2-135m-instruct", seed: int = 0, identity: str = "",
                 engine_kwargs: dict | None = None, chunk_size: int = 256):
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise UserError("teacher.backend 'vllm' needs vLLM on a CUDA machine: pip install 'rerank-rl[vllm]' "
                            "(or use backend 'transformers', or 'openai' against a `vllm serve` endpoint)") from None
        from rerank_rl.rl.models import resolve_model

        self._params = SamplingParams
        self.llm = LLM(model=resolve_model(model), seed=seed, **(engine_kwargs or {}))
        self.seed = seed
        self.chunk_size = chunk_size
        self.identity = identity or f"vllm:{model}"

    def generate(self, requests: Sequence[Request]) -> list[Reply]:
        params = [self._params(max_tokens=r.max_new_tokens, temperature=r.temperature, top_p=r.top_p,
                               seed=self.seed * 1_000_003 + r.sample) for r in requests]
        replies: list[Reply | None] = [None] * len(requests)
        # a prefilled reply is continued from a final assistant message, which vLLM does per call, not per request
        for prefilled in (False, True):
            idx = [i for i, r in enumerate(requests) if bool(r.prefill) == prefilled]
            if not idx:
                continue
            convs = [requests[i].messages + ([{"role": "assistant", "content": requests[i].prefill}] if prefilled
                                              else []) for i in idx]
            try:
                outputs = self.llm.chat(convs, sampling_params=[params[i] for i in idx], use_tqdm=False,
                                        add_generation_prompt=not prefilled, continue_final_message=prefilled)
            except Exception as err:  # the whole call fails together; the client records each request
                for i in idx:
                    replies[i] = Reply(error=f"{type(err).__name__}: {err}")
                continue
            for i, out in zip(idx, outputs):
                replies[i] = (Reply(text=requests[i].prefill + out.outputs[0].text) if out.outputs
                              else Reply(error="empty output"))
        return replies  # type: ignore[return-value]

    def close(self) -> None:
        self.llm = None
