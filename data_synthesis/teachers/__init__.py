"""Teachers behind one interface (see base.py): a local transformers model, a vLLM offline engine, or an
OpenAI-compatible endpoint, wrapped by `TeacherClient` for caching, re-asks and accounting."""

from __future__ import annotations

from pathlib import Path

from rerank_rl.data_synthesis.cache import ReplyCache
from rerank_rl.data_synthesis.teachers.base import Outcome, Reply, Request, TeacherClient

__all__ = ["Outcome", "Reply", "Request", "TeacherClient", "make_backend", "make_client", "synthesis_cache_dir",
           "teacher_identity"]


def synthesis_cache_dir(cfg) -> Path:
    """Where replies and corpus embeddings are cached: teacher.cache_dir, else <model cache>/synthesis."""
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    from rerank_rl.rl.models import cache_dir

    return cache_dir() / "synthesis"


def make_backend(cfg):
    """The backend named by a TeacherConfig (vLLM is imported only when asked for)."""
    if cfg.backend == "openai":
        from rerank_rl.data_synthesis.teachers.endpoint import EndpointTeacher

        return EndpointTeacher(cfg.base_url, cfg.model, cfg.api_key_env, cfg.concurrency, cfg.timeout_s,
                               cfg.max_retries, cfg.backoff_s, cfg.backoff_max_s, cfg.seed, teacher_identity(cfg),
                               cfg.endpoint_prefill)
    if cfg.backend == "vllm":
        from rerank_rl.data_synthesis.teachers.vllm_offline import VLLMTeacher

        return VLLMTeacher(cfg.model, cfg.seed, teacher_identity(cfg), cfg.engine_kwargs)
    from rerank_rl.data_synthesis.teachers.local import LocalTeacher

    return LocalTeacher(cfg.model, cfg.batch_size, cfg.device, cfg.dtype, cfg.seed, teacher_identity(cfg), cfg.threads)


def teacher_identity(cfg) -> str:
    return cfg.identity or f"{cfg.backend}:{cfg.model}"


class LazyBackend:
    """Builds the backend on the first cache miss, so a re-run served from the cache never loads a model."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.identity = teacher_identity(cfg)
        self.chunk_size = {"openai": cfg.concurrency * 4, "vllm": 256}.get(cfg.backend, cfg.batch_size * 4)
        self._backend = None

    def generate(self, requests):
        if self._backend is None:
            self._backend = make_backend(self.cfg)
        return self._backend.generate(requests)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()


def make_client(cfg, progress: bool = True) -> TeacherClient:
    cache = ReplyCache(synthesis_cache_dir(cfg) / "replies.sqlite") if cfg.cache else None
    return TeacherClient(LazyBackend(cfg), cache, cfg.invalid_retries, cfg.retry_temperature, progress, cfg.prefill)
