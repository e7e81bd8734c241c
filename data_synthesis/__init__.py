"""Readers, schemas and synthesis of training data for rerank-rl."""

from rerank_rl.rl import _env  # noqa: F401
