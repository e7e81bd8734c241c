"""Recipe paths, made absolute once when the recipe loads, against the directory the user ran from.

Stages do not run where the user typed the command: Ray Train workers change into their own session folder and a
cluster's task workers start wherever `ray start` ran, so a relative path in a recipe would name nothing there (or
the wrong file). Schemas name their path keys and each key's kind in a class attribute, `PATHS: ClassVar[dict]`
(inherited, so a subclass that overrides a field's default keeps it a path); `resolve_paths` rewrites them in place:

  file     a file or folder (data, qrels, caches): made absolute whether or not it exists yet;
  model    a model entry: a local folder becomes absolute, an embedded name or hub id stays as written;
  shipped  a file this package also ships (configs/deepspeed/*.json): the user's own copy first, else the
           package's; it must exist (a one-line error names the key);
  rewards  a {spec: weight} mapping: the file of `path/file.py:function` specs becomes absolute.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from rerank_rl.rewards.registry import is_file_spec
from rerank_rl.rl.errors import UserError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # where configs/ lives, installed or not


def absolute(value: str, base: Path) -> str:
    """`value` as an absolute path (user folder expanded, `..` folded; symlinks kept as the user named them)."""
    return os.path.normpath(Path(base) / Path(value).expanduser())


def _model(value: str, base: Path) -> str:
    local = Path(base) / Path(value).expanduser()
    if value.startswith((".", "/", "~")) or local.exists():
        return absolute(value, base)
    return value  # an embedded default or a hub id


def _shipped(value: str, base: Path, key: str) -> str:
    own = Path(absolute(value, base))
    if own.exists():
        return str(own)
    if not Path(value).is_absolute() and (PACKAGE_ROOT / value).exists():
        return str(PACKAGE_ROOT / value)
    raise UserError(f"key '{key}': {value!r} not found (looked in {base} and {PACKAGE_ROOT})")


def _rewards(specs: dict, base: Path) -> dict:
    out = {}
    for spec, setting in specs.items():
        if isinstance(spec, str) and is_file_spec(spec.strip()):
            target, _, attribute = spec.strip().rpartition(":")
            spec = f"{absolute(target, base)}:{attribute}"
        out[spec] = setting
    return out


def _resolve(kind: str, value: Any, base: Path, key: str) -> Any:
    if kind == "rewards":
        return _rewards(value, base) if isinstance(value, dict) else value
    if not isinstance(value, str) or not value:
        return value
    if kind == "model":
        return _model(value, base)
    if kind == "shipped":
        return _shipped(value, base, key)
    return absolute(value, base)


def resolve_paths(config: Any, base: str | Path | None = None, prefix: str = "") -> Any:
    """Rewrite every marked path of the dataclass tree `config` against `base` (default: the working directory);
    returns `config`. Idempotent: absolute paths stay as they are."""
    base = Path(base or Path.cwd())
    for f in dataclasses.fields(config):
        value, key = getattr(config, f.name), prefix + f.name
        kind = getattr(type(config), "PATHS", {}).get(f.name)
        if kind:
            setattr(config, f.name, _resolve(kind, value, base, key))
        elif dataclasses.is_dataclass(value):
            resolve_paths(value, base, key + ".")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    resolve_paths(item, base, f"{key}[{i}].")
    return config
