"""Training, stages, paradigms, orchestration and the command line of rerank-rl."""

from rerank_rl.rl import _env  # noqa: F401  (sets offline defaults before any HF import)
