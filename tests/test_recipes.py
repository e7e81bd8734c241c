"""Every shipped recipe validates, and its rewards resolve in the registry."""

from pathlib import Path

import pytest

from rerank_rl.rl.config import CONFIG_DIR, load_recipe

RECIPES = sorted(p for p in Path(CONFIG_DIR).glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_validates(path):
    config = load_recipe(path)
    if config.paradigm == "groupwise":
        from rerank_rl.rewards.registry import combine_rewards

        assert combine_rewards(config.rl.rewards).parts
        deepspeed = config.ray.deepspeed
        assert not deepspeed or (CONFIG_DIR.parent / deepspeed).exists()
