"""Recipe loading: schema checks name the file and the dotted key, `--set` overrides, YAML errors, round trip."""

from __future__ import annotations

import pytest

from rerank_rl.rl.config import CONFIG_DIR, apply_overrides, load_recipe, save_resolved
from rerank_rl.rl.errors import UserError

GROUPRANK = CONFIG_DIR / "grouprank.yaml"


def recipe(tmp_path, body: str, name: str = "recipe.yaml"):
    path = tmp_path / name
    path.write_text("paradigm: groupwise\n" + body)
    return path


def error_of(path, overrides=None) -> str:
    with pytest.raises(UserError) as caught:
        load_recipe(path, overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults_fill_missing_keys(tmp_path):
    config = load_recipe(recipe(tmp_path, "rl:\n  max_steps: 3\n"))
    assert config.rl.max_steps == 3 and config.rl.num_generations == 4
    assert config.model.name == "smollm2-135m-instruct"


def test_unknown_key_names_file_and_dotted_key(tmp_path):
    path = recipe(tmp_path, "rl:\n  max_stpes: 3\n")
    message = error_of(path)
    assert message.startswith(f"{path}: unknown key 'rl.max_stpes'")
    assert "max_steps" in message  # the known keys of the section are listed
    nested = recipe(tmp_path, "data:\n  train:\n    - format: builtin\n      dept: 5\n", "nested.yaml")
    assert "unknown key 'data.train[0].dept'" in error_of(nested)
    assert "unknown key 'bogus'" in error_of(recipe(tmp_path, "bogus: 1\n", "top.yaml"))


@pytest.mark.parametrize(
    "body, key, expected",
    [
        ("rl:\n  max_steps: ten\n", "rl.max_steps", "expects int"),
        ("rl:\n  learning_rate: fast\n", "rl.learning_rate", "expects float"),
        ("lora:\n  enabled: 3\n", "lora.enabled", "expects bool"),
        ("rl:\n  max_steps: true\n", "rl.max_steps", "expects int"),  # a bool is not an int
        ("rl: 5\n", "rl", "is a section and needs a mapping"),
        ("data:\n  group_sizes: [4, x]\n", "data.group_sizes[1]", "expects int"),
        ("rl:\n  rewards: {grouprank: high}\n", "rl.rewards.grouprank", "expects"),
        ("model:\n  bf16_autocast: maybe\n", "model.bf16_autocast", "expects bool or 'auto'"),
    ],
)
def test_wrong_type_names_key(tmp_path, body, key, expected):
    path = recipe(tmp_path, body)
    message = error_of(path)
    assert message.startswith(f"{path}: key '{key}'") and expected in message


@pytest.mark.parametrize("body", ["evaluate:\n  window: 4\n  stride: 5\n", "evaluate:\n  stride: 0\n"])
def test_eval_stride_must_fit_the_window(tmp_path, body):
    path = recipe(tmp_path, body)
    assert error_of(path).startswith(f"{path}: evaluate.stride must be between 1 and window")


def test_int_widens_to_float(tmp_path):
    config = load_recipe(recipe(tmp_path, "rl:\n  learning_rate: 1\n"))
    assert config.rl.learning_rate == 1.0 and isinstance(config.rl.learning_rate, float)


def test_literal_choices_are_listed(tmp_path):
    message = error_of(recipe(tmp_path, "rl:\n  trainer: ppo\n"))
    assert "key 'rl.trainer' must be one of ['grpo', 'rloo'], got 'ppo'" in message
    assert "must be one of" in error_of(recipe(tmp_path, "model:\n  dtype: int8\n", "dtype.yaml"))


def test_unknown_paradigm(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("paradigm: pairwise\n")
    assert "key 'paradigm' must be one of" in error_of(path)


def test_set_overrides_nested_keys_and_dicts():
    config = load_recipe(GROUPRANK, ["rl.max_steps=3", "evaluate.fusion_weight=0.4", "data.eval.depth=7"])
    assert config.rl.max_steps == 3 and config.evaluate.fusion_weight == 0.4 and config.data.eval.depth == 7
    config = load_recipe(GROUPRANK, ["rl.rewards={grouprank_answer_only: 0.5, ndcg@10: {weight: 0.5, k: 5}}"])
    assert config.rl.rewards == {"grouprank_answer_only": 0.5, "ndcg@10": {"weight": 0.5, "k": 5}}
    before = load_recipe(GROUPRANK).rl.rewards
    config = load_recipe(GROUPRANK, ["rl.rewards.ndcg@10=0.25"])  # a key added inside a dict
    assert config.rl.rewards == {**before, "ndcg@10": 0.25}
    config = load_recipe(GROUPRANK, ["data.group_sizes=[5, 10]", "name=my run", "ray.address="])
    assert config.data.group_sizes == [5, 10] and config.name == "my run" and config.ray.address == ""


def test_set_errors_name_the_override():
    message = error_of(GROUPRANK, ["bogus.key=1"])
    assert message.startswith(f"{GROUPRANK}: --set bogus.key=1: unknown key 'bogus'")
    message = error_of(GROUPRANK, ["rl.max_steps=3", "rl.max_steps=many"])  # the last one wins and is named
    assert "--set rl.max_steps=many: key 'rl.max_steps' expects int" in message
    assert "--set rl.trainer=ppo: key 'rl.trainer' must be one of" in error_of(GROUPRANK, ["rl.trainer=ppo"])
    with pytest.raises(UserError, match="must look like key.sub=value"):
        load_recipe(GROUPRANK, ["rl.max_steps"])
    with pytest.raises(UserError, match="'name' is not a section"):
        load_recipe(GROUPRANK, ["name.first=x"])


def test_file_errors_are_not_blamed_on_unrelated_overrides(tmp_path):
    path = recipe(tmp_path, "rl:\n  max_stpes: 3\n")
    assert error_of(path, ["sft.max_steps=2"]).startswith(f"{path}: unknown key 'rl.max_stpes'")


def test_recipe_validate_error(tmp_path):
    message = error_of(recipe(tmp_path, "rl:\n  num_generations: 1\n"))
    assert "rl.num_generations must be at least 2" in message
    assert "data.group_sizes needs sizes of at least 1" in error_of(GROUPRANK, ["data.group_sizes=[0, 4]"])
    assert "rl.micro_batch_size must divide prompts_per_step x num_generations = 4 (got 3)" in error_of(
        GROUPRANK, ["rl.micro_batch_size=3"])
    assert "data.train[0].path is required for format 'rank_llm'" in error_of(
        recipe(tmp_path, "data:\n  train:\n    - format: rank_llm\n", "source.yaml"))


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("paradigm: groupwise\nrl:\n  max_steps: [1, 2\nsft:\n  max_steps: 3\n")
    message = error_of(path)
    assert message.startswith(f"{path}:") and "invalid YAML" in message
    line = int(message[len(str(path)) + 1 :].split(":", 1)[0])
    assert 3 <= line <= 4
    tabs = tmp_path / "tabs.yaml"
    tabs.write_text("paradigm: groupwise\nrl:\n\tmax_steps: 3\n")
    assert error_of(tabs).startswith(f"{tabs}:3: invalid YAML")


def test_not_a_mapping_and_missing_file(tmp_path):
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    assert "a recipe must be a YAML mapping" in error_of(listed)
    assert "no such config file" in error_of(tmp_path / "absent.yaml")
    assert "is not a file" in error_of(tmp_path)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"paradigm: \xff\xfe\n")
    assert "cannot read the config" in error_of(binary)


def test_save_resolved_round_trip(tmp_path):
    config = load_recipe(GROUPRANK, ["rl.max_steps=2", "evaluate.fusion_weight=0.6"])
    saved = tmp_path / "config.yaml"
    save_resolved(config, saved)
    again = load_recipe(saved)
    assert again == config
    save_resolved(again, tmp_path / "second.yaml")
    assert (tmp_path / "second.yaml").read_text() == saved.read_text()


def test_apply_overrides_parses_yaml_values():
    data = apply_overrides({}, ["a.b=3", "a.c=[1, 2]", "a.d=null", "e=text with = sign", "f=[unclosed"])
    assert data == {"a": {"b": 3, "c": [1, 2], "d": None}, "e": "text with = sign", "f": "[unclosed"}


def test_a_reward_of_another_answer_format_fails_at_load(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("paradigm: groupwise\nrl:\n  rewards: {erank_rr: 1.0}\n")
    message = error_of(path)
    assert message.count("\n") == 0
    assert "'erank_rr' reads 'grade' answers, but the groupwise paradigm writes 'scores' answers" in message
    path.write_text("paradigm: groupwise\nrl:\n  rewards: {answer_format: {weight: 1.0, answer: choice}}\n")
    assert "'answer_format' reads 'choice' answers" in error_of(path)
    path.write_text("paradigm: groupwise\nrl:\n  rewards: {grouprank_answer_only: 1.0, format: 0.1}\n")
    assert load_recipe(path).rl.rewards["format"] == 0.1  # tag-only rewards read no answer: any paradigm


def test_include_merges_a_shared_section_under_the_recipes_own_keys(tmp_path):
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "rl.yaml").write_text("max_steps: 7\nlearning_rate: 1.0e-5\nrewards: {format: 1.0}\n")
    path = recipe(tmp_path, "rl:\n  include: parts/rl.yaml\n  learning_rate: 2.0e-5\n  rewards: {ndcg: 1.0}\n")
    config = load_recipe(path, ["rl.max_steps=9"])
    # the part's key survives, the recipe's own keys win, a mapping the recipe names is merged, --set wins last
    assert config.rl.max_steps == 9 and config.rl.learning_rate == 2.0e-5
    assert config.rl.rewards == {"format": 1.0, "ndcg": 1.0}
    assert load_recipe(path).rl.max_steps == 7


def test_include_errors_name_the_file(tmp_path):
    missing = recipe(tmp_path, "rl:\n  include: nowhere.yaml\n", "missing.yaml")
    assert error_of(missing).startswith(f"{missing}: 'include': no such file")
    (tmp_path / "a.yaml").write_text("include: b.yaml\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\n")
    assert "makes a cycle (a.yaml -> b.yaml -> a.yaml)" in error_of(tmp_path / "a.yaml")
    (tmp_path / "broken.yaml").write_text("max_steps: [1\n")
    broken_part = recipe(tmp_path, "rl:\n  include: broken.yaml\n", "uses_broken.yaml")
    assert error_of(broken_part).startswith(f"{tmp_path / 'broken.yaml'}:")
    assert "expects a YAML file path" in error_of(recipe(tmp_path, "rl:\n  include: [a, b]\n", "listed.yaml"))


def test_the_dl_recipes_share_one_synthesis_section():
    names = ("grouprank_dl", "rank_r1_dl", "erank_dl")
    sections = [load_recipe(CONFIG_DIR / f"{name}.yaml").synthesize for name in names]
    assert sections[0] == sections[1] == sections[2]
    assert sections[0].extra_sources[1].max_queries == 200 and sections[0].labels.teacher == "encoder"
