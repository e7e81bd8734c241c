"""DUQGen sampling math, the vLLM backend (GPU only), and a small synthesis with the default model as teacher."""

from __future__ import annotations

import numpy as np
import pytest

from rerank_rl.data_synthesis.queries import allocate, sample_across_clusters


def test_allocate_is_proportional_and_exact():
    assert allocate([50, 30, 20], 10) == [5, 3, 2]
    assert allocate([1, 1, 1], 2) == [1, 1, 0]  # equal remainders: first clusters first
    assert allocate([7, 2, 1], 5) == [4, 1, 0]  # exact 3.5 / 1 / 0.5: largest remainders win
    assert allocate([2, 100], 50) == [1, 49]
    assert allocate([3, 1], 10) == [3, 1]  # never more than a cluster holds
    assert sum(allocate([13, 8, 5, 3], 11)) == 11


def test_sampling_spreads_documents_across_clusters():
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16) * 10
    sizes = [40, 30, 20, 10]
    points = np.concatenate([c + rng.normal(size=(n, 16)) for c, n in zip(centres, sizes)])
    picked = sample_across_clusters(points.astype(np.float32), clusters=4, total=10, seed=0)
    assert len(picked) == 10 and len({i for i, _ in picked}) == 10
    per_cluster = sorted(np.bincount([c for _, c in picked]).tolist(), reverse=True)
    assert per_cluster == [4, 3, 2, 1]
    assert picked == sample_across_clusters(points.astype(np.float32), 4, 10, seed=0)  # seeded


def test_vllm_backend_generates_when_vllm_is_installed():
    pytest.importorskip("vllm", reason="vLLM is the optional GPU extra (rerank-rl[vllm])")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a GPU")
    from rerank_rl.data_synthesis.teachers import Request
    from rerank_rl.data_synthesis.teachers.vllm_offline import VLLMTeacher

    teacher = VLLMTeacher(engine_kwargs={"gpu_memory_utilization": 0.3, "max_model_len": 2048})
    replies = teacher.generate([Request([{"role": "user", "content": "Say hi."}], 8),
                                Request([{"role": "user", "content": "Grade: 'sky is blue'"}], 4, prefill="<answer>")])
    assert all(r.text for r in replies) and replies[1].text.startswith("<answer>")


def test_vllm_backend_without_vllm_is_a_clear_user_error():
    try:
        import vllm  # noqa: F401

        pytest.skip("vLLM is installed")
    except ImportError:
        pass
    from rerank_rl.data_synthesis.teachers.vllm_offline import VLLMTeacher
    from rerank_rl.rl.errors import UserError

    with pytest.raises(UserError, match="rerank-rl\\[vllm\\]"):
        VLLMTeacher()


@pytest.mark.slow
@pytest.mark.data
def test_tiny_scifact_synthesis_with_the_default_model(shared_data, tmp_path):
    """Two train claims, 5-document pools, the embedded SmolLM2-135M on CPU; then a re-run from the cache."""
    from datasets import load_from_disk

    from rerank_rl.data_synthesis.stage import synthesize
    from rerank_rl.rl.config import load_recipe

    overrides = [f"sources.path={shared_data / 'beir_scifact'}", "sources.max_queries=2", "pools.top_k=3",
                 "pools.sample=2", "labels.pointwise_samples=1", "labels.listwise_window=5", "labels.max_chars=200",
                 "traces.samples=1", "traces.group_sizes=[3]", f"teacher.cache_dir={tmp_path / 'cache'}",
                 "teacher.threads=1"]
    cfg = load_recipe("configs/synthesis_tiny.yaml", overrides)
    first = synthesize(cfg, tmp_path / "a")
    assert first["counts"]["pools"] == 2 and first["teacher_calls"] > 0
    assert first["labels"]["pools_labeled"] + first["labels"]["pools_without_teacher_labels"] == 2
    assert first["teacher"]["requests"] == first["teacher"]["ok"] + first["teacher"]["invalid"]
    assert load_from_disk(str(tmp_path / "a" / "pools"))["teacher"] == ["transformers:smollm2-135m-instruct"] * 2
    second = synthesize(cfg, tmp_path / "b")
    assert second["teacher_calls"] == 0 and second["cache_hits"] > 0
    labels = [load_from_disk(str(tmp_path / run / "pools"))["labels"] for run in ("a", "b")]
    assert labels[0] == labels[1]
