"""Parsing helpers of the config: TOML, environment strings, type checks. Pure."""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10 only
    import tomli as tomllib


def read_toml(path: Path, fields: Mapping[str, Any]) -> dict[str, object]:
    """The top-level keys of a TOML file; an unknown key is a ``ConfigError`` naming it."""
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    for key in doc:
        if key not in fields:
            raise ConfigError(f"config file {path}: unknown key {key!r}")
    return dict(doc)


def from_env(
    env: Mapping[str, str], fields: Mapping[str, Any], prefix: str, ignore: frozenset[str]
) -> dict[str, object]:
    """Settings from ``PREFIX<NAME>`` variables; unknown ones (not in ``ignore``) are errors."""
    out: dict[str, object] = {}
    for name, text in env.items():
        if not name.startswith(prefix) or name in ignore:
            continue
        key = name[len(prefix) :].lower()
        if key not in fields:
            raise ConfigError(f"unknown environment variable {name}")
        out[key] = _parse_text(key, text, fields[key])
    return out


def _parse_text(key: str, text: str, kind: Any) -> object:
    """An environment string to the field's type (lists are comma-separated)."""
    base, optional = _unwrap(kind)
    if optional and text == "":
        return None
    if base is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true/false, not {text!r}")
    if base is int or base is float:
        try:
            return base(text)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, not {text!r}") from None
    if typing.get_origin(base) is tuple:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return text


def coerce(key: str, value: object, kind: Any) -> object:
    """Check a TOML/override value against the field's type; ints are fine where floats are."""
    base, optional = _unwrap(kind)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key}: a value is required")
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif base is Path:
        if isinstance(value, (str, Path)) and str(value):
            return Path(value)
    elif typing.get_origin(base) is tuple:
        if isinstance(value, str):
            # Explicitly an error: silently taking "a/{sensor}" as one template hides the
            # difference between the TOML list and the comma-separated environment form.
            raise ConfigError(
                f"{key}: expected a list of strings, e.g. {key} = [{_toml_string(value)}], "
                f"not the string {_toml_string(value)}"
            )
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
    elif typing.get_origin(base) is Literal:
        choices = typing.get_args(base)
        if value in choices:
            return value
        # `mqtt_version = 5` in TOML is an integer; the choices are strings ("3.1.1" cannot be
        # a TOML number), so a number that spells one of them is taken as it.
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and str(value) in choices:
            return str(value)
        names = ", ".join(_toml_string(str(a)) for a in choices)
        raise ConfigError(f"{key}: must be one of {names} (a string), not {value!r}")
    elif base is str and isinstance(value, str):
        return value
    raise ConfigError(f"{key}: expected {_type_name(base)}, not {type(value).__name__} {value!r}")


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unwrap(kind: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return args[0], True
    return kind, False


def _type_name(base: Any) -> str:
    if typing.get_origin(base) is tuple:
        return "a list of strings"
    return {bool: "true/false", int: "an integer", float: "a number", Path: "a path"}.get(
        base, "a string"
    )
