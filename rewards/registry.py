"""Reward registry: find a reward by name, by `package.module:function` or by `path/to/file.py:function`, and
combine several with weights, so that adding a reward never means editing this package.

Spec forms accepted by `get_reward`:

* `"grouprank"`, `"rank_r1"`, ... a registered name (see `list_rewards()`);
* `"ndcg@10"`, `"recall@20"`, ... a registered name with `@K`, which sets the option `k=K`;
* `"my_pkg.rewards:exact_match"`, an importable module and an attribute;
* `"path/to/my_reward.py:exact_match"`, a Python file loaded by path (relative paths from the working directory).

What a spec names may be a plain reward function (used as is) or a `Reward` subclass (instantiated with the options
given to `get_reward`). Config files give options and weights through `combine_rewards`:

    combine_rewards({"grouprank": {"weight": 1.0, "gamma": 0.3}, "my_reward.py:bonus": 0.5})
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .contract import Reward, RewardOutput, score_with_components

__all__ = ["register_reward", "get_reward", "combine_rewards", "list_rewards", "WeightedSum"]

_REGISTRY: dict[str, Callable] = {}
_BUILTINS = ("ranking", "grouprank", "pointwise", "setwise", "formats", "classification")
_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")
_PARAMETRIC = re.compile(r"^(?P<name>[a-z][a-z0-9_\-]*)@(?P<k>\d+)$")


def register_reward(name: str) -> Callable:
    """Decorator: register a reward function, or a `Reward` subclass whose options come from the spec/config."""
    if not _NAME.match(name):
        raise ValueError(f"reward name {name!r}: use lowercase letters, digits, '_' or '-' (no '@' or ':')")

    def decorate(obj: Callable) -> Callable:
        known = _REGISTRY.get(name)
        if known is not None and known is not obj and _qualname(known) != _qualname(obj):
            raise ValueError(f"reward name {name!r} is already registered to {_qualname(known)}")
        _REGISTRY[name] = obj
        return obj

    return decorate


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _load_builtins() -> None:
    for module in _BUILTINS:
        importlib.import_module(f"{__package__}.{module}")


def list_rewards() -> list[str]:
    """Registered reward names (built-ins included)."""
    _load_builtins()
    return sorted(_REGISTRY)


def _instantiate(obj: Any, spec: str, options: dict[str, Any]) -> Callable:
    if inspect.isclass(obj):
        try:
            return obj(**options)
        except TypeError as error:
            raise ValueError(f"reward {spec!r}: bad options {sorted(options)}: {error}") from None
    if options:
        raise ValueError(f"reward {spec!r} is a plain function and takes no options (got {sorted(options)})")
    if not callable(obj):
        raise ValueError(f"reward {spec!r} is not callable")
    return obj


def _load_file(path_text: str, spec: str) -> Any:
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"reward {spec!r}: file not found: {path}")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module_name = f"rerank_rl_user_reward_{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ValueError(f"reward {spec!r}: cannot load {path} as Python")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        raise ValueError(f"reward {spec!r}: importing {path} failed: {type(error).__name__}: {error}") from None
    return module


def is_file_spec(spec: str) -> bool:
    """True for a spec that names a Python file (`dir/file.py:function`), not a module or a registry name."""
    target, _, attribute = spec.rpartition(":")
    return bool(target and attribute) and (target.endswith(".py") or "/" in target or "\\" in target)


def spec_label(spec: str) -> str:
    """How a spec is named in logs: a file plug-in by its file name (recipes hold its absolute path, see
    rl/paths.py, which would make every logged component name a long, machine-specific path)."""
    if not is_file_spec(spec):
        return spec
    target, _, attribute = spec.rpartition(":")
    return f"{Path(target).name}:{attribute}"


def _load_external(spec: str) -> Any:
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute:
        raise ValueError(f"reward {spec!r}: expected 'module:function' or 'path/file.py:function'")
    if is_file_spec(spec):
        module = _load_file(target, spec)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as error:
            raise ValueError(f"reward {spec!r}: cannot import module {target!r}: {error}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"reward {spec!r}: {target} has no attribute {attribute!r}") from None


def get_reward(spec: str | Callable, **options: Any) -> Callable:
    """The reward a spec names (see module docstring), built with `options`; ValueError naming the spec if not."""
    if callable(spec) and not isinstance(spec, str):
        return _instantiate(spec, getattr(spec, "__name__", repr(spec)), options)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"reward spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if ":" in spec and not _PARAMETRIC.match(spec):
        return _instantiate(_load_external(spec), spec, options)
    _load_builtins()
    parametric = _PARAMETRIC.match(spec)
    name = parametric.group("name") if parametric else spec
    if name not in _REGISTRY:
        raise ValueError(f"unknown reward {spec!r}; registered: {', '.join(sorted(_REGISTRY))}")
    obj = _REGISTRY[name]
    if parametric:
        if not inspect.isclass(obj) or "k" not in inspect.signature(obj).parameters:
            raise ValueError(f"reward {spec!r}: {name!r} takes no '@K' cut-off")
        options = {**options, "k": int(parametric.group("k"))}
    return _instantiate(obj, spec, options)


class WeightedSum(Reward):
    """Σ weight · reward. A row's total is None only when every part is None; parts that are None count as 0.
    Components: each part's total under its spec, and its own components as `spec/component`; `format_ok` is the
    minimum over the parts that report one. The documented range assumes [0, 1] for plain functions."""

    def __init__(self, parts: list[tuple[str, Callable, float]], name: str = "combined"):
        self.parts = parts
        self.name = name
        self.low = sum(min(w * getattr(r, "low", 0.0), w * getattr(r, "high", 1.0)) for _, r, w in parts)
        self.high = sum(max(w * getattr(r, "low", 0.0), w * getattr(r, "high", 1.0)) for _, r, w in parts)

    def score(self, prompts=None, completions=None, **columns) -> RewardOutput:
        completions = list(completions or [])
        totals: list[float | None] = [None] * len(completions)
        components: dict[str, list[float | None]] = {}
        format_ok: list[float | None] = [None] * len(completions)
        for spec, reward, weight in self.parts:
            values, parts = score_with_components(reward, prompts, completions, **columns)
            components[spec] = values
            for key, series in parts.items():
                components[f"{spec}/{key}"] = series
            for row, value in enumerate(values):
                if value is not None:
                    totals[row] = (totals[row] or 0.0) + weight * value
            for row, ok in enumerate(parts.get("format_ok", [])):
                if ok is not None:
                    format_ok[row] = min(ok, 1.0 if format_ok[row] is None else format_ok[row])
        if any(v is not None for v in format_ok):
            components["format_ok"] = format_ok
        return RewardOutput(totals, components)


def combine_rewards(weights: Mapping[str | Callable, float | Mapping[str, Any]], name: str = "combined") -> Reward:
    """A weighted sum of rewards from `{spec: weight}` or `{spec: {"weight": w, **options}}`."""
    if not weights:
        raise ValueError("combine_rewards needs at least one reward")
    parts = []
    for spec, setting in weights.items():
        options = dict(setting) if isinstance(setting, Mapping) else {"weight": setting}
        weight = options.pop("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ValueError(f"reward {spec!r}: weight must be a number, got {weight!r}")
        reward = get_reward(spec, **options)
        label = spec_label(spec.strip()) if isinstance(spec, str) else getattr(spec, "__name__", repr(spec))
        parts.append((label, reward, float(weight)))
    return WeightedSum(parts, name=name)
