"""Typed run configuration: dataclasses <-> TOML recipes <-> command-line overrides.

A run's configuration is a tree of dataclasses. It is loaded from a TOML recipe, overridden from the
command line with ``section.key=value`` pairs, checked field by field against the dataclass types
(an unknown key or a value of the wrong type is a UserError naming it), and written back as TOML
next to the run's outputs, so that every run records exactly what it did.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from ckdsnn_events.atomic import atomic_path
from ckdsnn_events.errors import UserError

T = TypeVar("T")


def to_dict(config: Any) -> dict:
    """A dataclass tree as plain dicts; ``None`` fields are left out (TOML has no null)."""
    out = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value is None:
            continue
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[field.name] = value
    return out


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check/convert one value against a type annotation; raise UserError naming ``where``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except UserError as err:
                errors.append(str(err))
        raise UserError(errors[0] if errors else f"{where}: unexpected value {value!r}")
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise UserError(f"{where} must be one of {', '.join(map(repr, choices))}; got {value!r}.")
        return value
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise UserError(f"{where} must be a table of settings, got {value!r}.")
        return from_dict(annotation, value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where} must be a list, got {value!r}.")
        args = typing.get_args(annotation)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise UserError(f"{where} must have {len(args)} entries, got {len(value)}.")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise UserError(f"{where} must be true or false, got {value!r}.")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where} must be a whole number, got {value!r}.")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where} must be a number, got {value!r}.")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise UserError(f"{where} must be a string, got {value!r}.")
        return value
    return value


def from_dict(cls: type[T], data: dict, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``, recursively; missing keys take their defaults.

    Raises:
        UserError: an unknown key (listing the valid ones) or a value of the wrong type.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(
            f"unknown setting(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
            f"valid keys of [{where}]: {', '.join(fields)}."
        )
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise UserError(f"{where}: {err}") from None


def load_toml(path: str | os.PathLike) -> dict:
    """Read a TOML file; a missing or malformed file is a UserError naming it."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"recipe '{path}' does not exist.") from None
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"recipe '{path}' is not valid TOML: {err}.") from None
    except UnicodeDecodeError as err:  # tomllib decodes UTF-8 itself and lets this through
        raise UserError(f"recipe '{path}' is not UTF-8 text ({err.reason} at byte {err.start}).") from None
    except OSError as err:
        raise UserError(f"cannot read recipe '{path}': {err.strerror or err}.") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=0.05"`` -> (["optim", "lr"], 0.05). Values are TOML literals; bare words are strings."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"--set '{text}' must look like section.key=value (e.g. --set optim.lr=0.05).")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def set_value(data: dict, path: list[str], value: Any, source: str) -> None:
    """Set ``data[path[0]][path[1]]... = value`` in place, making sections as needed.

    ``source`` names where the value came from (an option, a ``--set``), for the error raised
    when a part of ``path`` is a value rather than a section.
    """
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"{source}: '{part}' is a value, not a section.")
    node[path[-1]] = value


def apply_values(data: dict, values: dict[str, Any]) -> dict:
    """A copy of nested ``data`` with each dotted key of ``values`` (``{"optim.lr": 0.05}``) set.

    The values are typed already (from command-line options, not text); ``None`` values are
    skipped, so that an option the user did not give leaves the recipe's setting.
    """
    import copy

    data = copy.deepcopy(data)
    for key, value in values.items():
        if value is not None:
            set_value(data, key.split("."), value, key)
    return data


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Return a copy of nested ``data`` with each ``section.key=value`` override (text) applied."""
    import copy

    data = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        set_value(data, path, value, f"--set '{text}'")
    return data


def write_toml(config: Any, path: str | os.PathLike) -> None:
    """Write a dataclass tree as TOML, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            tomli_w.dump(to_dict(config), f)
