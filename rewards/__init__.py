"""Reward functions, metrics and output parsers for rerank-rl."""
