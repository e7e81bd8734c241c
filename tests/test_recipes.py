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


def test_open_vocabulary_labels_need_the_teacher():
    from rerank_rl.rl.errors import UserError

    assert load_recipe(CONFIG_DIR / "gliclass.yaml", ["data.vocab_labels=4"]).data.vocab_labels == 4
    with pytest.raises(UserError, match="data.vocab_labels needs supervised.distill_weight > 0"):
        load_recipe(CONFIG_DIR / "gliclass.yaml", ["data.vocab_labels=4", "supervised.distill_weight=0"])
