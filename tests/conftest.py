"""Fixtures shared by the whole suite.

Tests that need ../shared/data skip with a reason when it is absent, but fail under CI (CI=true), where a missing
data folder means a broken set-up rather than a developer's partial checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from clitools import REPO

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHARED_DATA = REPO.parent / "shared" / "data"


def require_path(path: Path) -> Path:
    if path.exists():
        return path
    message = f"{path} not found: the real-data tests read ../shared/data beside the repository"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set, so this is an error)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require_path(SHARED_DATA)


@pytest.fixture(scope="session")
def shared_dataset():
    """`shared_dataset("name")`: a folder of ../shared/data, skipped when missing (failed under CI). A fixture, not an
    import: `from conftest import ...` can resolve to a sub-folder's conftest when the whole suite is collected."""
    return lambda name: require_path(SHARED_DATA / name)


@pytest.fixture(scope="session")
def default_lm_path() -> Path:
    from rerank_rl.rl.models import prepare_default_lm

    return prepare_default_lm()


@pytest.fixture(scope="session")
def tiny_lm_path(tmp_path_factory, default_lm_path) -> Path:  # noqa: ARG001 (prepares the default first)
    """A 2-layer, randomly initialised Llama with SmolLM2's tokenizer and chat template: exercises every training
    code path in seconds. Tests that judge quality use the real default model instead."""
    from rerank_rl.rl.models import build_tiny_lm

    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))
