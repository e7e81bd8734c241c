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


@pytest.mark.parametrize("recipe", ["rank_r1.yaml", "erank.yaml", "mm_r5.yaml"])
def test_training_probes_are_refused_once_for_paradigms_they_cannot_read(recipe):
    from rerank_rl.rl.errors import UserError

    with pytest.raises(UserError, match="evaluate.probe_every: training probes .* read groupwise answers"):
        load_recipe(CONFIG_DIR / recipe, ["evaluate.probe_every=5"])
    assert load_recipe(CONFIG_DIR / "grouprank.yaml", ["evaluate.probe_every=5"]).evaluate.probe_every == 5
