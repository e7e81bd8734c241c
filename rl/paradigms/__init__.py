"""Paradigms: how a family of rerankers turns examples into prompts, completions into predictions, and ranks lists.

A paradigm knows four things (DESIGN.md §1): the training prompt for a (query, candidates, labels) example, the
parser for a completion, the rewards that apply by default, and how to rank a full candidate list at inference
(`rank_candidates(..., stats=dict)` also reports what the model answered; `describe_answers` puts that in words).
Trainers and stages only talk to this interface, so they never know which paradigm they train.
"""

from __future__ import annotations

import importlib

from rerank_rl.rl.errors import UserError

_MODULES = {"groupwise": "rerank_rl.rl.paradigms.groupwise"}


def get_paradigm(name: str):
    """The paradigm module registered under `name` (it exposes the functions of the interface above)."""
    if name not in _MODULES:
        raise UserError(f"unknown paradigm {name!r} (known: {', '.join(sorted(_MODULES))}, classifier)")
    return importlib.import_module(_MODULES[name])
