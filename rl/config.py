"""YAML recipes validated against dataclass schemas, with `--set key=value` overrides.

A recipe names its paradigm (`paradigm: groupwise`); the paradigm's schema (a tree of dataclasses registered with
`register_schema`) decides which keys exist and what type each has. Everything is checked before any heavy work,
and a mistake is reported as one line naming the file and the dotted key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from rerank_rl.rl.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
_SCHEMAS: dict[str, type] = {}


def register_schema(paradigm: str):
    """Class decorator: the dataclass is the recipe schema for `paradigm`."""

    def wrap(cls):
        _SCHEMAS[paradigm] = cls
        return cls

    return wrap


class ConfigKeyError(UserError):
    """A bad value or key at a dotted `key` of a config; `detail` is the message without the source."""

    def __init__(self, source: str, key: str, detail: str):
        super().__init__(f"{source}: {detail}")
        self.source, self.key, self.detail = source, key, detail


def _override_for(key: str, overrides: list[str]) -> str | None:
    """The last `--set` item that wrote `key`, a section above it or a key below it (None: the file did)."""
    found = None
    for item in overrides:
        target = item.split("=", 1)[0].strip()
        if key == target or key.startswith((target + ".", target + "[")) or target.startswith(key + "."):
            found = item
    return found


def _parse_override(item: str, source: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise UserError(f"{source}: override {item!r} must look like key.sub=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: list[str], source: str = "--set") -> dict:
    for item in overrides:
        keys, value = _parse_override(item, source)
        node = data
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise UserError(f"{source}: cannot set {'.'.join(keys)}: '{key}' is not a section")
            node = child
        node[keys[-1]] = value
    return data


def _type_name(tp) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (typing.Union, types.UnionType):  # "bool or 'auto'", not "Union"
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is Literal:
        return " or ".join(repr(a) for a in args)
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp, key: str, source: str):
    """Check `value` against annotation `tp`; returns the value (ints widen to floats)."""
    origin, args = get_origin(tp), get_args(tp)
    bad = ConfigKeyError(source, key, f"key '{key}' expects {_type_name(tp)}, got {value!r}")
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key, source)
            except UserError:
                continue
        raise bad
    if origin is Literal:
        if value not in args:
            raise ConfigKeyError(source, key, f"key '{key}' must be one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigKeyError(source, key, f"key '{key}' is a section and needs a mapping, got {value!r}")
        return build(tp, value, source, prefix=key + ".")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad
        return [_coerce(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        return {str(k): _coerce(v, args[1], f"{key}.{k}", source) for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            raise bad from None
    if tp is bool and not isinstance(value, bool):
        raise bad
    if tp in (int, float) and isinstance(value, bool):
        raise bad
    if isinstance(tp, type) and not isinstance(value, tp):
        raise bad
    return value


def build(schema: type, data: dict, source: str, prefix: str = ""):
    """Instantiate dataclass `schema` from `data`, rejecting unknown keys and wrong types."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = prefix + unknown[0]
        raise ConfigKeyError(source, key, f"unknown key '{key}' (known in this section: {', '.join(sorted(fields))})")
    values = {name: _coerce(value, hints[name], prefix + name, source) for name, value in data.items()}
    try:
        obj = schema(**values)
    except TypeError as err:
        raise UserError(f"{source}: section '{prefix.rstrip('.') or 'top level'}': {err}") from None
    check = getattr(obj, "validate", None)
    if check is not None:
        try:
            check()
        except ValueError as err:
            raise UserError(f"{source}: {prefix}{err}") from None
    return obj


INCLUDE = "include"


def read_yaml(path: str | Path, _including: tuple[Path, ...] = ()) -> dict:
    """A recipe file as a mapping, with every `include: FILE` expanded (see `_expand_includes`)."""
    path = Path(path)
    data = _read_mapping(path)
    return _expand_includes(data, path, (*_including, path.resolve()))


def _expand_includes(node, path: Path, including: tuple[Path, ...]):
    """A mapping with `include: FILE` takes FILE's keys (a path relative to the including file), then its own on
    top: mappings merge key by key, anything else (lists too) is replaced. Recipes that share a section (the real-data
    synthesis of the DL recipes) keep it in one file under configs/parts/."""
    if isinstance(node, list):
        return [_expand_includes(item, path, including) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _expand_includes(value, path, including) for key, value in node.items()}
    if INCLUDE not in node:
        return node
    target = node.pop(INCLUDE)
    if not isinstance(target, str) or not target:
        raise UserError(f"{path}: '{INCLUDE}' expects a YAML file path, got {target!r}")
    target = path.parent / target
    if target.resolve() in including:
        chain = " -> ".join(p.name for p in (*including, target))
        raise UserError(f"{path}: '{INCLUDE}' makes a cycle ({chain})")
    if not target.is_file():
        raise UserError(f"{path}: '{INCLUDE}': no such file {target}")
    return merge_mappings(read_yaml(target, including), node)


def merge_mappings(base: dict, top: dict) -> dict:
    """`base` with `top`'s keys on top; nested mappings merge, other values are replaced."""
    merged = dict(base)
    for key, value in top.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge_mappings(merged[key], value) if both else value
    return merged


def _read_mapping(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: no such config file" if not path.exists() else f"{path}: is not a file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read the config ({err})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        reason = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{where}: invalid YAML ({reason})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe must be a YAML mapping")
    return data


def load_recipe(path: str | Path, overrides: list[str] | None = None):
    """Read, override and validate a recipe; returns the paradigm's schema instance. A bad key or value that came
    from an override is reported as `FILE: --set KEY=VALUE: what is wrong`."""
    overrides = list(overrides or [])
    data = apply_overrides(read_yaml(path), overrides)
    paradigm = data.get("paradigm")
    _import_schemas()
    try:
        if paradigm not in _SCHEMAS:
            raise ConfigKeyError(str(path), "paradigm",
                                 f"key 'paradigm' must be one of {sorted(_SCHEMAS)}, got {paradigm!r}")
        config = build(_SCHEMAS[paradigm], data, str(path))
    except ConfigKeyError as err:
        item = _override_for(err.key, overrides)
        if item is None:
            raise
        raise UserError(f"{path}: --set {item}: {err.detail}") from None
    from rerank_rl.rl.paths import resolve_paths

    try:  # once, here: stages run in Ray workers whose working directory is not the user's
        return resolve_paths(config)
    except UserError as err:
        raise UserError(f"{path}: {err}") from None


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def save_resolved(config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def _import_schemas() -> None:
    """Schemas register themselves when their module is imported."""
    import importlib

    for module in ("rerank_rl.rl.recipe", "rerank_rl.rl.paradigms.classifier.config", "rerank_rl.data_synthesis.config"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if not err.name or not module.startswith(err.name):  # a missing optional schema module is fine
                raise
    from rerank_rl.rl.paradigms import import_all

    import_all()  # each paradigm declares its recipe beside it
