"""Evaluation on the GPU when there is one: the engine and device choice, with torch's CUDA check and vLLM mocked
(this machine has neither), and the evaluate stages asking Ray for a GPU when `ray.use_gpu`."""

from __future__ import annotations

import sys
import types

import pytest

from rerank_rl.rl import generation
from rerank_rl.rl.config import CONFIG_DIR, load_recipe


@pytest.fixture
def gpu(monkeypatch):
    """Pretend a GPU is present (torch.cuda.is_available)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


class FakeLLM:
    """vllm.LLM: records its engine options, answers every prompt with one groupwise answer and its log-probs."""

    made: list[dict] = []

    def __init__(self, model, **kwargs):
        FakeLLM.made.append({"model": model, **kwargs})

    def chat(self, conversations, params, use_tqdm=True):
        step = {7: types.SimpleNamespace(decoded_token='"', logprob=-0.5)}
        out = types.SimpleNamespace(text='<answer>{"[1]": 3, "[2]": 9}</answer>', token_ids=[7],
                                    logprobs=[step] if params.logprobs is not None else None)
        return [types.SimpleNamespace(outputs=[out]) for _ in conversations]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.SimpleNamespace(LLM=FakeLLM, SamplingParams=lambda **kw: types.SimpleNamespace(**kw))
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr(generation, "vllm_installed", lambda: True)
    FakeLLM.made.clear()
    return FakeLLM.made


def test_engine_choice():
    assert generation.choose_engine(True) == "transformers"  # no GPU here


def test_engine_choice_on_a_gpu(gpu, monkeypatch):
    monkeypatch.setattr(generation, "vllm_installed", lambda: True)
    assert generation.choose_engine(True, "greedy") == "vllm"
    assert generation.choose_engine(False, "greedy") == "transformers"  # the recipe did not ask for vLLM
    assert generation.choose_engine(True, "expected") == "transformers"  # slot scoring reads the local model
    monkeypatch.setattr(generation, "vllm_installed", lambda: False)
    assert generation.choose_engine(True, "greedy") == "transformers"


@pytest.mark.parametrize("cuda", [False, True])
def test_transformers_generator_goes_to_the_gpu_when_there_is_one(cuda, monkeypatch, tiny_lm_path):
    import torch
    import transformers

    moved = []
    model = types.SimpleNamespace(to=lambda where: moved.append(where) or model)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: model)
    generator = generation.load_hf_generator(str(tiny_lm_path))
    assert moved == ["cuda" if cuda else "cpu"] and generator.model is model


def test_evaluation_decodes_with_vllm_when_the_recipe_rolls_out_with_it(gpu, fake_vllm, tiny_lm_path):
    from rerank_rl.rl.stages.evaluation import rerank_with

    config = load_recipe(CONFIG_DIR / "grouprank_tiny.yaml",
                         ["rl.use_vllm=true", "evaluate.scoring=greedy", "evaluate.window=2", "evaluate.stride=2",
                          "model.bf16_autocast=false", "seed=5"])
    examples = [{"qid": "q", "query": "q?", "doc_ids": ["a", "b"], "doc_texts": ["x", "y"],
                 "first_stage_scores": [2.0, 1.0]}]
    ranked = rerank_with(str(tiny_lm_path), examples, config)
    assert fake_vllm == [{"model": str(tiny_lm_path), "dtype": "float32", "seed": 5}]
    scores = dict(ranked["q"])
    assert scores["b"] == pytest.approx(0.9, abs=1e-4) and scores["a"] == pytest.approx(0.3)  # the engine's answer


def test_vllm_generator_reads_the_drawn_tokens_log_probabilities(fake_vllm):
    engine = generation.VLLMGenerator("m")
    assert engine([[{"role": "user", "content": "x"}]], 8) == ['<answer>{"[1]": 3, "[2]": 9}</answer>']
    [(text, tokens)] = engine.generate_with_logprobs([[{"role": "user", "content": "x"}]], 8)
    assert tokens == [('"', -0.5)]


def test_evaluate_stages_ask_ray_for_a_gpu_when_the_recipe_uses_gpus(tmp_path, monkeypatch):
    from rerank_rl.rl import pipeline, report
    from rerank_rl.rl.stages import evaluation, export, prepare

    placed = []

    class Runner:
        def __init__(self, section, run_dir, quiet=False):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def task(self, fn, *args, num_gpus=0, log=None):
            placed.append((fn.__name__, num_gpus))
            return {}

    monkeypatch.setattr(pipeline, "StageRunner", Runner)
    monkeypatch.setattr(pipeline, "resolve_model", lambda name: name)
    monkeypatch.setattr(report, "write_report", lambda run_dir: None)
    for module, name in ((evaluation, "evaluate_checkpoint"), (prepare, "prepare_data"), (export, "export_run")):
        monkeypatch.setattr(module, name, types.FunctionType((lambda *a: None).__code__, {}, name))
    for use_gpu in (True, False):
        placed.clear()
        config = load_recipe(CONFIG_DIR / "grouprank_tiny.yaml",
                             ["sft.enabled=false", "rl.enabled=false", f"ray.use_gpu={str(use_gpu).lower()}"])
        (tmp_path / str(use_gpu)).mkdir()
        pipeline.run_reranker(config, tmp_path / str(use_gpu))
        gpus = 1 if use_gpu else 0
        assert placed == [("prepare_data", 0), ("evaluate_checkpoint", gpus), ("evaluate_checkpoint", gpus)]
