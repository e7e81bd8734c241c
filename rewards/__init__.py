"""Reward functions, metrics and output parsers for rerank-rl.

The contract is documented in `contract`; rewards are found by name or path with `get_reward`
(built-ins are registered lazily, on first lookup)."""

from .contract import Reward, RewardOutput, completion_text, score_with_components, tap_components
from .registry import combine_rewards, get_reward, list_rewards, register_reward

__all__ = [
    "Reward",
    "RewardOutput",
    "completion_text",
    "score_with_components",
    "tap_components",
    "register_reward",
    "get_reward",
    "combine_rewards",
    "list_rewards",
]
