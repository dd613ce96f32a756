"""The daemon's typed, closed configuration: TOML file < ``EDGE_LSTM_*`` environment < CLI flags.

Every setting is one field below, documented where it is declared; the same help text feeds
``edge-lstm run --help`` and ``docs/daemon.md``. Keys are flat (``broker = "pi:1883"``) so the
TOML key, the flag (``--broker``) and the variable (``EDGE_LSTM_BROKER``) are the same word.
Pure: no network, no interpreter.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError
from .topics import TopicTemplate, validate_output_prefix

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10 only
    import tomli as tomllib

ENV_PREFIX = "EDGE_LSTM_"
# Variables read by other parts of edge-lstm, not settings of the daemon.
_OTHER_ENV = frozenset({"EDGE_LSTM_BACKEND", "EDGE_LSTM_CONFIG"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

log = logging.getLogger(__name__)


def _doc(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass(frozen=True)
class Config:
    """Every setting of ``edge-lstm run``; build it with :meth:`Config.load`."""

    # --- broker ---
    broker: str = _doc("MQTT broker as HOST:PORT.", default="localhost:1883")
    client_id: str = _doc(
        "Fixed MQTT client id; the persistent session (queued QoS 1 readings) is keyed by it.",
        default="edge-lstm",
    )
    username: str | None = _doc("MQTT user name.", default=None)
    password_file: Path | None = _doc(
        "File holding the MQTT password (e.g. a systemd credential); never put it in the config.",
        default=None,
    )
    tls_ca: Path | None = _doc("CA certificate file; setting it turns TLS on.", default=None)
    tls_cert: Path | None = _doc("Client certificate file (mutual TLS).", default=None)
    tls_key: Path | None = _doc("Client private key file (mutual TLS).", default=None)
    tls_insecure: bool = _doc(
        "Skip the broker host name check (self-signed test setups only).", default=False
    )
    keepalive_s: int = _doc("MQTT keepalive in seconds.", default=30)
    reconnect_min_s: int = _doc("First reconnect delay in seconds (doubles).", default=1)
    reconnect_max_s: int = _doc("Longest reconnect delay in seconds.", default=30)
    qos: int = _doc("QoS of the subscriptions and of the forecasts (0 or 1).", default=1)
    # --- model and input ---
    model: Path | None = _doc("Model file (.tflite with its .json sidecar).", default=None)
    topics: tuple[str, ...] = _doc(
        "Input topic templates; {sensor} is the sensor id segment, + matches any segment.",
        default=("sensors/{sensor}",),
    )
    horizon: int | None = _doc(
        "Forecast steps to publish (default and maximum: the model's horizon).", default=None
    )
    max_gap_steps: int = _doc(
        "Missing steps filled with the model's own predictions; a longer gap resets the sensor.",
        default=3,
    )
    grace_s: float = _doc(
        "Seconds after a step's end before the wall clock closes it (late readings).", default=2.0
    )
    max_sensors: int = _doc("Most sensors kept in memory; new ones beyond are rejected.", default=10_000)
    max_payload_bytes: int = _doc("Larger payloads are rejected.", default=1024)
    queue_size: int = _doc(
        "Bounded intake queue between the MQTT thread and the worker (overflow is counted).",
        default=100_000,
    )
    batch_max: int = _doc("Most messages the worker handles in one batch.", default=5_000)
    # --- output ---
    output_prefix: str = _doc(
        "Prefix of published topics: PREFIX/SENSOR/forecast, PREFIX/status, PREFIX/health.",
        default="edge-lstm",
    )
    retain_forecasts: bool = _doc("Publish forecasts retained.", default=False)
    health_interval_s: float = _doc("Seconds between health messages (retained).", default=30.0)
    homeassistant: bool = _doc("Publish Home Assistant MQTT discovery configs.", default=False)
    homeassistant_prefix: str = _doc("Home Assistant discovery prefix.", default="homeassistant")
    # --- state ---
    state_dir: Path | None = _doc(
        "Directory for state snapshots (systemd: StateDirectory); unset: no snapshots.",
        default=None,
    )
    snapshot_interval_s: float = _doc("Seconds between state snapshots.", default=300.0)
    durability: Literal["snapshot", "wal"] = _doc(
        "snapshot: state as of the last snapshot survives a crash; wal: every accepted reading "
        "is journaled before it is acknowledged and replayed after a crash.",
        default="snapshot",
    )
    wal_fsync: bool = _doc("fsync the write-ahead log on every append (durability=wal).", default=True)
    # --- process ---
    log_level: str = _doc("DEBUG, INFO, WARNING or ERROR.", default="INFO")

    def __post_init__(self) -> None:
        _check(self)

    @property
    def broker_host(self) -> str:
        """Host part of ``broker``."""
        return split_broker(self.broker)[0]

    @property
    def broker_port(self) -> int:
        """Port part of ``broker``."""
        return split_broker(self.broker)[1]

    def templates(self) -> tuple[TopicTemplate, ...]:
        """The parsed input topic templates."""
        return tuple(TopicTemplate(t) for t in self.topics)

    def password(self) -> str | None:
        """The password read from ``password_file`` (trailing newline stripped)."""
        if self.password_file is None:
            return None
        try:
            return self.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"password_file {self.password_file}: {exc.strerror}") from exc

    def to_dict(self) -> dict[str, object]:
        """JSON-able view (paths as strings), for ``--validate-config`` and logs."""
        out: dict[str, object] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out

    @classmethod
    def load(
        cls,
        path: Path | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, object] | None = None,
    ) -> Config:
        """Defaults < TOML file at ``path`` < ``EDGE_LSTM_*`` in ``env`` < ``overrides``.

        Raises ``ConfigError`` naming the key for unknown keys, wrong types and bad values.
        """
        values: dict[str, object] = {}
        if path is not None:
            values.update(_read_toml(path))
        values.update(_from_env(env or {}))
        for key, value in (overrides or {}).items():
            if key not in FIELDS:
                raise ConfigError(f"unknown setting {key!r}")
            if value is not None:
                values[key] = value
        typed = {key: _coerce(key, value, FIELDS[key]) for key, value in values.items()}
        try:
            return cls(**typed)  # type: ignore[arg-type]
        except TypeError as exc:  # pragma: no cover - _coerce already checked every key
            raise ConfigError(str(exc)) from exc


def split_broker(broker: str) -> tuple[str, int]:
    """``"host:1883"`` -> ``("host", 1883)``; a bare host gets port 1883; ``[::1]:1883`` works."""
    host, sep, port_text = broker.rpartition(":")
    if not sep or (host.count(":") and not host.startswith("[")):
        host, port_text = broker, "1883"
    host = host.strip("[]")
    if not host:
        raise ConfigError(f"broker {broker!r}: missing host (expected HOST:PORT)")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"broker {broker!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"broker {broker!r}: port must be 1..65535")
    return host, port


def field_help(name: str) -> str:
    """The help text of one setting."""
    return str(_FIELD_OBJECTS[name].metadata.get("help", ""))


def _check(c: Config) -> None:
    split_broker(c.broker)
    if not c.client_id or len(c.client_id) > 128:
        raise ConfigError("client_id must be 1..128 characters")
    if not c.topics:
        raise ConfigError("topics must list at least one template")
    for template in c.topics:
        TopicTemplate(template)  # raises ConfigError naming the template
    validate_output_prefix(c.output_prefix, "output_prefix")
    validate_output_prefix(c.homeassistant_prefix, "homeassistant_prefix")
    if c.qos not in (0, 1):
        raise ConfigError(f"qos must be 0 or 1, not {c.qos}")
    if c.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, not {c.log_level!r}")
    if c.durability not in ("snapshot", "wal"):
        raise ConfigError(f"durability must be 'snapshot' or 'wal', not {c.durability!r}")
    if c.horizon is not None and c.horizon < 1:
        raise ConfigError("horizon must be >= 1")
    if (c.tls_cert is None) != (c.tls_key is None):
        raise ConfigError("tls_cert and tls_key must be given together")
    positive = {
        "keepalive_s": c.keepalive_s,
        "reconnect_min_s": c.reconnect_min_s,
        "max_sensors": c.max_sensors,
        "max_payload_bytes": c.max_payload_bytes,
        "queue_size": c.queue_size,
        "batch_max": c.batch_max,
        "health_interval_s": c.health_interval_s,
        "snapshot_interval_s": c.snapshot_interval_s,
    }
    for key, value in positive.items():
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"{key} must be > 0, not {value}")
    if c.reconnect_max_s < c.reconnect_min_s:
        raise ConfigError("reconnect_max_s must be >= reconnect_min_s")
    if c.max_gap_steps < 0:
        raise ConfigError("max_gap_steps must be >= 0")
    if not (c.grace_s >= 0 and math.isfinite(c.grace_s)):
        raise ConfigError("grace_s must be >= 0")


def _read_toml(path: Path) -> dict[str, object]:
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
        if key not in FIELDS:
            raise ConfigError(f"config file {path}: unknown key {key!r}")
    return dict(doc)


def _from_env(env: Mapping[str, str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX) or name in _OTHER_ENV:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in FIELDS:
            raise ConfigError(f"unknown environment variable {name}")
        out[key] = _parse_text(key, text, FIELDS[key])
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


def _coerce(key: str, value: object, kind: Any) -> object:
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
            return (value,)
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
    elif typing.get_origin(base) is Literal:
        if value in typing.get_args(base):
            return value
        choices = ", ".join(repr(a) for a in typing.get_args(base))
        raise ConfigError(f"{key}: must be one of {choices}, not {value!r}")
    elif base is str and isinstance(value, str):
        return value
    raise ConfigError(f"{key}: expected {_type_name(base)}, not {type(value).__name__} {value!r}")


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


_HINTS = typing.get_type_hints(Config)
_FIELD_OBJECTS = {f.name: f for f in dataclasses.fields(Config)}
FIELDS: dict[str, Any] = {name: _HINTS[name] for name in _FIELD_OBJECTS}
"""Setting name -> its type, in declaration order."""
