"""The teacher interface every backend implements, and the client that adds caching, re-asks and accounting.

A backend turns chat requests into replies: `generate(requests) -> replies`, one reply per request, in order, with
either `text` or `error` set (a backend never raises for a single bad request; it retries transport errors itself
and reports how many attempts it spent in `calls`). `TeacherClient.ask` then

* serves what it can from the disk cache (counted as cache hits, zero calls),
* validates each reply with the task's parser (a parser that raises counts as "invalid", never as a crash),
* re-asks invalid replies up to `invalid_retries` times with another sample index (greedy requests are re-asked
  at `retry_temperature`, otherwise they would repeat themselves), and
* records per task kind: requests, cache hits, backend calls, ok / invalid / failed, and a few error messages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rerank_rl.data_synthesis.cache import ReplyCache, request_key

RETRY_SAMPLE_STRIDE = 1000  # sample index offset per re-ask, far from the indices callers use for k samples


@dataclass
class Request:
    messages: list[dict]
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    sample: int = 0  # which of several samples of the same prompt; part of the cache key and of the seed
    # start of the assistant's reply written for the model (e.g. "<answer>"): weak teachers then keep the format.
    # Backends return it as part of the reply text.
    prefill: str = ""

    def params(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "sample": self.sample, "prefill": self.prefill}


@dataclass
class Reply:
    text: str | None = None
    error: str | None = None
    calls: int = 1  # backend attempts this reply cost (1 + transport retries)


class Backend(Protocol):
    identity: str
    chunk_size: int

    def generate(self, requests: Sequence[Request]) -> list[Reply]: ...

    def close(self) -> None: ...


@dataclass
class Outcome:
    text: str | None  # the last reply text, also when it did not validate
    value: Any = None  # what the validator returned (None unless status is "ok")
    status: str = "failed"  # ok | invalid (replied, never parsed) | failed (no reply after retries)
    error: str | None = None


@dataclass
class KindStats:
    requests: int = 0
    cache_hits: int = 0
    calls: int = 0
    ok: int = 0
    invalid: int = 0
    failed: int = 0
    reasked: int = 0
    errors: list[str] = field(default_factory=list)

    def note_error(self, message: str) -> None:
        if len(self.errors) < 5 and message not in self.errors:
            self.errors.append(message[:300])


def _safe(validate: Callable[[str], Any], text: str) -> Any:
    try:
        return validate(text)
    except Exception:  # parsing teacher output must never stop a run
        return None


class TeacherClient:
    def __init__(self, backend: Backend, cache: ReplyCache | None = None, invalid_retries: int = 1,
                 retry_temperature: float = 0.7, progress: bool = True, prefill: bool = True):
        self.backend = backend
        self.prefill = prefill
        self.cache = cache
        self.invalid_retries = invalid_retries
        self.retry_temperature = retry_temperature
        self.progress = progress
        self.stats: dict[str, KindStats] = {}

    @property
    def identity(self) -> str:
        return self.backend.identity

    def _variant(self, request: Request, attempt: int) -> Request:
        if request.prefill and not self.prefill:
            request = dataclasses.replace(request, prefill="")
        if attempt == 0:
            return request
        temperature = request.temperature if request.temperature > 0 else self.retry_temperature
        return dataclasses.replace(request, sample=request.sample + RETRY_SAMPLE_STRIDE * attempt,
                                   temperature=temperature)

    def ask(self, requests: Sequence[Request], kind: str,
            validate: Callable[[str], Any] | Sequence[Callable[[str], Any]] | None = None) -> list[Outcome]:
        """One outcome per request, in order. `validate(text)` returns the parsed value, or None when unusable;
        pass one validator for all requests or a list aligned with them."""
        validate = validate or (lambda text: text if text.strip() else None)
        checks = list(validate) if isinstance(validate, Sequence) else [validate] * len(requests)
        stats = self.stats.setdefault(kind, KindStats())
        stats.requests += len(requests)
        outcomes = [Outcome(None) for _ in requests]
        pending = list(range(len(requests)))
        for attempt in range(self.invalid_retries + 1):
            if not pending:
                break
            if attempt:
                stats.reasked += len(pending)
            texts, errors = self._fetch({i: self._variant(requests[i], attempt) for i in pending}, stats, kind)
            still = []
            for i in pending:
                if i not in texts:
                    outcomes[i] = Outcome(None, None, "failed", errors.get(i, "no reply"))
                    continue
                value = _safe(checks[i], texts[i])
                if value is None:
                    outcomes[i] = Outcome(texts[i], None, "invalid", "reply could not be parsed")
                    still.append(i)
                else:
                    outcomes[i] = Outcome(texts[i], value, "ok")
            pending = still
        for outcome in outcomes:
            setattr(stats, outcome.status, getattr(stats, outcome.status) + 1)
            if outcome.status == "failed":
                stats.note_error(outcome.error or "no reply")
        return outcomes

    def _fetch(self, variants: dict[int, Request], stats: KindStats, kind: str):
        identity = self.backend.identity
        keys = {i: request_key(identity, r.messages, r.params()) for i, r in variants.items()}
        cached = self.cache.get_many(list(set(keys.values()))) if self.cache is not None else {}
        texts = {i: cached[k] for i, k in keys.items() if k in cached}
        stats.cache_hits += len(texts)
        misses = [i for i in variants if i not in texts]
        errors: dict[int, str] = {}
        step = max(1, getattr(self.backend, "chunk_size", 32))
        bar = None
        if self.progress and misses:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(misses), desc=f"teacher {kind}", unit="req", leave=False)
        for start in range(0, len(misses), step):
            chunk = misses[start : start + step]
            replies = self.backend.generate([variants[i] for i in chunk])
            fresh = []
            for i, reply in zip(chunk, replies):
                stats.calls += max(0, reply.calls)
                if reply.text is not None:
                    texts[i] = reply.text
                    fresh.append((keys[i], reply.text))
                else:
                    errors[i] = reply.error or "no reply"
            if self.cache is not None:
                self.cache.put_many(fresh, identity)  # written per chunk: a killed run keeps what it paid for
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        return texts, errors

    def totals(self) -> dict:
        keys = ("requests", "cache_hits", "calls", "ok", "invalid", "failed", "reasked")
        out = {k: sum(getattr(s, k) for s in self.stats.values()) for k in keys}
        out["by_kind"] = {kind: dataclasses.asdict(s) for kind, s in self.stats.items()}
        return out

    def close(self) -> None:
        self.backend.close()
        if self.cache is not None:
            self.cache.close()
