"""The settings machinery: each setting is declared once, and its checks, flag, variable and docs
row all come from that declaration. TOML, environment strings, type and range checks. Pure.

Why our own small table and not a validating library (issue 10): measured on the development
machine (x86_64, Python 3.11, min of 15 runs), msgspec 0.22 adds 8 ms of import and 0.8-1.0 MiB
of RSS to a process that already holds the daemon's modules (38.6 MiB), and 22 ms / 1.8 MiB to a
bare interpreter; this module and config.py add 0.1 MiB and ~4 ms. A Pi's budget is 100 MB at
10,000 sensors, and msgspec would still need our own code for what the tests pin: the
comma-separated and yes/no environment forms, the one-line messages that name the key, the
TOML-number spelling of ``mqtt_version`` and the list hint for ``topics``. pydantic is heavier.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10 only
    import tomli as tomllib


@dataclass(frozen=True)
class About:
    """What a setting means and what it accepts, beyond its type: its one declaration."""

    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[object, ...] = ()
    flag: str | None = None

    def limits(self) -> str:
        """``"5..65,535"`` or ``"0 or 1"``: what the help, the docs and the errors show."""
        if self.low is not None and self.high is not None:
            return f"{number(self.low)}..{number(self.high)}"
        if self.choices:
            shown = [str(c) for c in self.choices]
            return " or ".join(shown) if len(shown) == 2 else "one of " + ", ".join(shown)
        return ""


def about(
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[object, ...] = (),
    flag: str | None = None,
) -> dict[str, About]:
    """A config field's ``metadata``: ``field(default=30, metadata=about("...", low=5))``."""
    return {"about": About(help, low, high, choices, flag)}


class Schema:
    """The settings of a frozen dataclass whose fields carry :func:`about` metadata."""

    def __init__(self, cls: type, env_prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        self.fields = {f.name: f for f in dataclasses.fields(cls)}
        self.types: dict[str, Any] = {name: hints[name] for name in self.fields}
        self.env_prefix = env_prefix

    def about(self, name: str) -> About:
        found = self.fields[name].metadata.get("about")
        return found if isinstance(found, About) else About("")

    def help(self, name: str) -> str:
        """The help text, with the accepted range or choices appended as a sentence."""
        about = self.about(name)
        if about.low is not None and about.high is not None:
            return f"{about.help} Range: {about.limits()}."
        if about.choices:
            return f"{about.help} Choices: {', '.join(str(c) for c in about.choices)}."
        return about.help

    def flag(self, name: str) -> str:
        return self.about(name).flag or "--" + name.replace("_", "-")

    def env(self, name: str) -> str:
        return self.env_prefix + name.upper()

    def default(self, name: str) -> object:
        spec = self.fields[name]
        if spec.default_factory is not dataclasses.MISSING:
            return spec.default_factory()
        return None if spec.default is dataclasses.MISSING else spec.default

    def check(self, name: str, value: object) -> None:
        """The range or choice check of one value; ``ConfigError`` in one line naming it."""
        about = self.about(name)
        if value is None:
            return
        if about.choices:
            shown = value.upper() if isinstance(value, str) else value
            if shown not in about.choices:
                raise ConfigError(f"{name} must be {about.limits()}, not {value!r}")
        if about.low is not None and about.high is not None:
            assert isinstance(value, (int, float))  # coerce() let only numbers through
            if not (math.isfinite(value) and about.low <= value <= about.high):
                raise ConfigError(
                    f"{name} must be between {number(about.low)} and {number(about.high)}, "
                    f"not {number(value)}"
                )

    def docs_table(self) -> str:
        """The settings table of docs/daemon.md (a test keeps the file equal to it)."""
        rows = [
            "| key | flag | environment | default | meaning |",
            "|---|---|---|---|---|",
        ]
        for name in self.fields:
            default = self.default(name)
            shown = "unset" if default is None else f"`{toml_value(default)}`"
            rows.append(
                f"| `{name}` | `{self.flag(name)}` | `{self.env(name)}` | {shown} "
                f"| {self.help(name)} |"
            )
        return "\n".join(rows) + "\n"

    def read_toml(self, path: Path) -> dict[str, object]:
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
            if key not in self.fields:
                raise ConfigError(f"config file {path}: unknown key {key!r}")
        return dict(doc)

    def from_env(self, env: Mapping[str, str], ignore: frozenset[str]) -> dict[str, object]:
        """Settings from ``PREFIX<NAME>`` variables; unknown ones (not in ``ignore``) are errors."""
        out: dict[str, object] = {}
        for name, text in env.items():
            if not name.startswith(self.env_prefix) or name in ignore:
                continue
            key = name[len(self.env_prefix) :].lower()
            if key not in self.fields:
                raise ConfigError(f"unknown environment variable {name}")
            out[key] = _parse_text(key, text, self.types[key])
        return out

    def merge(
        self,
        path: Path | None,
        env: Mapping[str, str],
        overrides: Mapping[str, object],
        ignore_env: frozenset[str],
    ) -> dict[str, object]:
        """Typed values of TOML < environment < overrides (None overrides nothing), checked."""
        values: dict[str, object] = {}
        if path is not None:
            values.update(self.read_toml(path))
        values.update(self.from_env(env, ignore_env))
        for key, value in overrides.items():
            if key not in self.fields:
                raise ConfigError(f"unknown setting {key!r}")
            if value is not None:
                values[key] = value
        return {key: coerce(key, value, self.types[key]) for key, value in values.items()}


def to_toml(values: Mapping[str, object]) -> str:
    """Settings as the flat TOML file ``Config.load`` reads (None values are left out)."""
    return "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items() if v is not None)


def toml_value(value: object) -> str:
    """A default as TOML spells it: ``"text"``, ``30``, ``300.0``, ``false``, ``["a", "b"]``."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value)


def number(value: float) -> str:
    """1000000 -> "1,000,000"; 0.1 -> "0.1"."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e18:
        return f"{int(value):,}"
    return f"{value:g}"


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
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if is_number and str(value) in choices:
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
