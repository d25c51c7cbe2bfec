"""Strict conversion between plain data (parsed YAML, TOML or JSON) and the package's frozen config dataclasses.

`build_config(cls, data)` checks every key against the dataclass fields (an unknown key is an error that lists the
known ones, so a typo never falls back to a default) and every value against the field's type hint (numbers,
strings, booleans, `Literal` choices, fixed and variable tuples, `X | None`, nested dataclasses). A field may name
its own reader in its metadata (`field(metadata={"parse": reader})`, `reader(value, where)`) when a config file
spells it differently from Python (a preset name for a whole sub-config). Errors are `ConfigError`s that name the
dotted key (`data.degradation.noise1.prob`). Used by `train.config` for the run config and its degradation recipe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from typing import Any, TypeVar

from realbasicvsr.errors import ConfigError, brief

__all__ = ["brief", "build_config", "merge", "to_plain"]

T = TypeVar("T")
# Integers beyond int64 cannot reach torch or numpy; refusing them here gives one line instead of an OverflowError.
INT_LIMIT = 2**63 - 1


def _cut(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build_config(cls: type[T], data: Any, where: str = "") -> T:
    """An instance of the dataclass `cls` from a mapping; `where` is the dotted prefix of its keys ("data.")."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section {where.rstrip('.') or 'top level'} must be a mapping, got {brief(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields), key=str)  # YAML keys may be numbers too
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(_cut(where + str(k)) for k in unknown[:10])}; known in "
            f"{where.rstrip('.') or 'top level'}: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        parse = fields[name].metadata.get("parse")
        kwargs[name] = parse(value, where + name) if parse else _coerce(hints[name], value, where + name)
    try:
        return cls(**kwargs)
    except ConfigError as error:
        if not where or str(error).startswith(where):
            raise
        # Nested configs (the degradation recipe, the model) know their fields but not where they sit in the file.
        raise ConfigError(f"{where.rstrip('.')}: {error}", option=error.option) from error


def to_plain(value: Any) -> Any:
    """Dicts, lists and scalars only (tuples become lists), as YAML/JSON writers want; see `dataclasses.asdict`."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`base` with `update` applied, nested mappings merged key by key (a new copy; neither input changes)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return build_config(hint, value, where + ".")  # type: ignore[arg-type]
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, where)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"config {where} must be one of {', '.join(map(str, args))}, got {brief(value)}")
        return value
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]: any length
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config {where} must be a list, got {brief(value)}")
        return tuple(_coerce(args[0], v, where) for v in value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"config {where} must be a list of {len(args)} values, got {brief(value)}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value))
    if hint is float:
        # YAML 1.1 reads `1e-4` (no dot) as a string; accept it as the number it obviously is.
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value) if abs(value) <= INT_LIMIT or isinstance(value, float) else math.inf
            if not math.isfinite(number):  # NaN or inf would only surface as NaN losses many steps later
                raise ConfigError(f"config {where} must be a finite number, got {brief(value)}")
            return number
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > INT_LIMIT:
                raise ConfigError(f"config {where} must be an integer within ±(2**63 - 1), got {brief(value)}")
            return value
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is str and isinstance(value, str):
        return value
    raise ConfigError(f"config {where} must be {getattr(hint, '__name__', hint)}, got {brief(value)}")
