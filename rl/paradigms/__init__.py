"""Paradigms: how a family of rerankers turns examples into prompts, completions into predictions, and ranks lists.

Each paradigm is a `Paradigm` object (rl/paradigms/base.py) that stages, serving and synthesis talk to, so they
never know which paradigm they train. Adding one: write its module (a `Paradigm` subclass, its recipe schema, a
module-level `PARADIGM` instance), then add one line to `_MODULES` below.

The classifier (rl/paradigms/classifier) is not a paradigm: it is a sibling recipe with its own pipeline.
"""

from __future__ import annotations

import importlib

from rerank_rl.rl.errors import UserError

_MODULES = {
    "groupwise": "rerank_rl.rl.paradigms.groupwise",
    "setwise": "rerank_rl.rl.paradigms.setwise",
    "pointwise": "rerank_rl.rl.paradigms.pointwise",
    "multimodal": "rerank_rl.rl.paradigms.multimodal",
}


def names() -> list[str]:
    return sorted(_MODULES)


def get_paradigm(name: str):
    """The `Paradigm` registered under `name`."""
    if name not in _MODULES:
        raise UserError(f"unknown paradigm {name!r} (known: {', '.join(names())})")
    return importlib.import_module(_MODULES[name]).PARADIGM


def import_all() -> None:
    """Import every paradigm module, so that their recipe schemas register."""
    for module in _MODULES.values():
        importlib.import_module(module)
