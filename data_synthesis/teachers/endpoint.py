"""Any OpenAI-compatible chat endpoint as teacher (a hosted API, `vllm serve`, llama.cpp's server, TGI, ...).

Requests go out concurrently from a thread pool through the `openai` client (its own retries switched off, so
that every attempt is counted here). A request is retried with exponential backoff and jitter on connection
errors, timeouts, 408/409/429/5xx and responses that are not a chat completion; 400/401/403/404/422 mean the
request itself is wrong and fail at once. After `max_retries` retries the request is reported as failed.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from rerank_rl.data_synthesis.teachers.base import Reply, Request

_FATAL_STATUS = {400, 401, 403, 404, 422}


class EndpointTeacher:
    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 timeout_s: float = 60.0, max_retries: int = 3, backoff_s: float = 0.5, backoff_max_s: float = 20.0,
                 seed: int = 0, identity: str = "", prefill: bool = False):
        import openai

        self._openai = openai
        self.client = openai.OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env) or "EMPTY",
                                    max_retries=0, timeout=timeout_s)
        self.model = model
        self.concurrency = concurrency
        self.chunk_size = concurrency * 4
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.seed = seed
        # the URL is left out on purpose: the same model behind another address shares the cache
        self.identity = identity or f"openai:{model}"
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="teacher")
        self._rng = random.Random(seed)
        # vLLM's server continues a final assistant message when asked; other servers may not, so it is opt-in
        self.prefill = prefill

    def _retryable(self, err: Exception) -> bool:
        status = getattr(err, "status_code", None)
        return status not in _FATAL_STATUS

    def _wait(self, attempt: int, err: Exception) -> None:
        delay = min(self.backoff_max_s, self.backoff_s * 2**attempt) * (0.5 + 0.5 * self._rng.random())
        response = getattr(err, "response", None)
        hint = response.headers.get("retry-after") if response is not None else None
        if hint:
            try:
                delay = min(self.backoff_max_s, max(delay, float(hint)))
            except ValueError:
                pass
        time.sleep(delay)

    def _one(self, request: Request) -> Reply:
        error = "no attempt made"
        messages, extra, head = request.messages, None, ""
        if request.prefill and self.prefill:
            messages = messages + [{"role": "assistant", "content": request.prefill}]
            extra, head = {"continue_final_message": True, "add_generation_prompt": False}, request.prefill
        for attempt in range(self.max_retries + 1):
            try:
                response = self.client.chat.completions.create(
                    model=self.model, messages=messages, max_tokens=request.max_new_tokens,
                    temperature=request.temperature, top_p=request.top_p, seed=self.seed * 1_000_003 + request.sample,
                    extra_body=extra,
                )
                choices = getattr(response, "choices", None)
                if not choices or getattr(choices[0].message, "content", None) is None:
                    raise ValueError(f"response is not a chat completion: {str(response)[:120]!r}")
                return Reply(text=head + choices[0].message.content, calls=attempt + 1)
            except Exception as err:
                error = f"{type(err).__name__}: {err}"
                if not self._retryable(err) or attempt == self.max_retries:
                    return Reply(error=error, calls=attempt + 1)
                self._wait(attempt, err)
        return Reply(error=error, calls=self.max_retries + 1)

    def generate(self, requests: Sequence[Request]) -> list[Reply]:
        return list(self._pool.map(self._one, requests))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.client.close()
