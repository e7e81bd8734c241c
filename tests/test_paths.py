"""Recipe paths are made absolute once, at load, against the directory the user ran from (rl/paths.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerank_rl.rl.config import CONFIG_DIR, load_recipe, save_resolved
from rerank_rl.rl.errors import UserError

PLUGIN = "def bonus(prompts, completions, **columns):\n    return [0.5 for _ in completions]\n"


def _user_folder(root: Path) -> Path:
    """A folder a user runs from: a plug-in, a DeepSpeed config and a model folder, named relatively."""
    (root / "rewards").mkdir(parents=True)
    (root / "rewards" / "mine.py").write_text(PLUGIN)
    (root / "ds").mkdir()
    (root / "ds" / "z2.json").write_text((CONFIG_DIR / "deepspeed" / "zero2.json").read_text())
    (root / "models" / "tiny").mkdir(parents=True)
    (root / "recipe.yaml").write_text(
        "paradigm: groupwise\n"
        "model: {name: models/tiny}\n"
        "data:\n  train: [{format: rank_llm, path: data/train.json, qrels: ../qrels.txt}]\n"
        "rl:\n  rewards: {grouprank_answer_only: 1.0, 'rewards/mine.py:bonus': 0.5}\n"
        "ray: {deepspeed: ds/z2.json}\n")
    return root


def test_relative_paths_become_absolute_against_the_working_directory(tmp_path, monkeypatch):
    user = _user_folder(tmp_path / "user")
    monkeypatch.chdir(user)
    config = load_recipe("recipe.yaml")
    assert config.model.name == str(user / "models" / "tiny")
    assert config.ray.deepspeed == str(user / "ds" / "z2.json")
    assert config.data.train[0].path == str(user / "data" / "train.json")  # need not exist yet
    assert config.data.train[0].qrels == str(tmp_path / "qrels.txt")  # `..` folded
    assert config.output_dir == str(user / "runs")
    assert list(config.rl.rewards) == ["grouprank_answer_only", f"{user}/rewards/mine.py:bonus"]

    # Somewhere else (a Ray worker's session folder) the loaded recipe still names the same files.
    monkeypatch.chdir(tmp_path)
    from rerank_rl.rewards.registry import combine_rewards

    reward = combine_rewards(config.rl.rewards)
    assert [label for label, _, _ in reward.parts] == ["grouprank_answer_only", "mine.py:bonus"]  # logs stay short
    save_resolved(config, tmp_path / "config.yaml")  # --resume reads this one: it must not move again
    again = load_recipe(tmp_path / "config.yaml")
    assert (again.model.name, again.ray.deepspeed, again.rl.rewards) == \
        (config.model.name, config.ray.deepspeed, config.rl.rewards)


def test_names_that_are_not_paths_stay_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text("paradigm: groupwise\nmodel: {name: Qwen/Qwen2.5-7B-Instruct}\n"
                                     "rl: {rewards: {ndcg@10: 1.0, 'rewards.ranking:NDCG': 1.0}}\n")
    config = load_recipe("r.yaml")
    assert config.model.name == "Qwen/Qwen2.5-7B-Instruct"  # a hub id, no such folder here
    assert list(config.rl.rewards) == ["ndcg@10", "rewards.ranking:NDCG"]
    assert load_recipe("r.yaml", ["model.name=smollm2-135m-instruct"]).model.name == "smollm2-135m-instruct"


def test_shipped_deepspeed_configs_are_found_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_recipe(CONFIG_DIR / "grouprank_cluster.yaml")
    assert config.ray.deepspeed == str(CONFIG_DIR / "deepspeed" / "zero2.json")
    with pytest.raises(UserError) as err:
        load_recipe(CONFIG_DIR / "grouprank.yaml", ["ray.deepspeed=configs/deepspeed/zero9.json"])
    assert "key 'ray.deepspeed'" in str(err.value) and "\n" not in str(err.value)


def test_synthesis_paths_resolve_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_recipe(CONFIG_DIR / "synthesis_tiny.yaml")
    assert Path(config.sources.path).is_absolute()
    assert config.teacher.model == "smollm2-135m-instruct" and config.labels.encoder.model == "minilm"
