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
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError
from ..stream.topics import OutputTopics, TopicTemplate, filters_overlap, validate_output_prefix
from .config_parse import coerce, from_env, read_toml

ENV_PREFIX = "EDGE_LSTM_"
# Variables read by other parts of edge-lstm (interpreter choice, CLI, test tooling), not
# settings of the daemon; any other EDGE_LSTM_* is a typo and an error. Add new ones here.
_OTHER_ENV = frozenset(
    {"EDGE_LSTM_BACKEND", "EDGE_LSTM_CONFIG", "EDGE_LSTM_REQUIRE_ALL", "EDGE_LSTM_CRASH_SEED"}
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

log = logging.getLogger(__name__)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class Config:
    """Every setting of ``edge-lstm run``; build it with :meth:`Config.load`."""

    # --- broker ---
    broker: str = field(
        default="localhost:1883",
        metadata=_help(
            "MQTT broker as HOST:PORT, HOST (port 1883) or [IPv6]:PORT; no scheme (TLS: tls_ca)."
        ),
    )
    client_id: str = field(
        default="edge-lstm",
        metadata=_help(
            "Fixed MQTT client id; the persistent session (queued QoS 1 readings) is keyed by it."
        ),
    )
    username: str | None = field(default=None, metadata=_help("MQTT user name."))
    password_file: Path | None = field(
        default=None,
        metadata=_help(
            "File holding the MQTT password (e.g. a systemd credential), never the config."
        ),
    )
    tls_ca: Path | None = field(
        default=None, metadata=_help("CA certificate file; setting it turns TLS on.")
    )
    tls_cert: Path | None = field(
        default=None, metadata=_help("Client certificate file (mutual TLS).")
    )
    tls_key: Path | None = field(
        default=None, metadata=_help("Client private key file (mutual TLS).")
    )
    tls_insecure: bool = field(
        default=False,
        metadata=_help("Skip the broker host name check (self-signed test setups only)."),
    )
    keepalive_s: int = field(
        default=30, metadata=_help("MQTT keepalive in seconds (5..65535, an MQTT limit).")
    )
    reconnect_min_s: int = field(
        default=1, metadata=_help("First reconnect delay in seconds (doubles).")
    )
    reconnect_max_s: int = field(default=30, metadata=_help("Longest reconnect delay in seconds."))
    mqtt_version: Literal["5", "3.1.1"] = field(
        default="5",
        metadata=_help(
            "MQTT protocol: 5 (session expiry, a wide receive window) or 3.1.1 (old brokers; "
            "then raise Mosquitto's max_inflight_messages for throughput)."
        ),
    )
    qos: int = field(
        default=1,
        metadata=_help("QoS of the subscriptions: 1 for no lost readings (0 or 1)."),
    )
    forecast_qos: int = field(
        default=0,
        metadata=_help(
            "QoS of the forecast publishes (0 or 1). 0: each forecast is superseded by the next "
            "step's, and QoS 1 costs the broker, the daemon and every subscriber an "
            "acknowledgement per forecast."
        ),
    )
    # --- model and input ---
    model: Path | None = field(
        default=None, metadata=_help("Model file (.tflite with its .json sidecar).")
    )
    topics: tuple[str, ...] = field(
        default=("sensors/{sensor}",),
        metadata=_help(
            "Input topic templates; {sensor} is the sensor id segment, + matches any segment."
        ),
    )
    horizon: int | None = field(
        default=None,
        metadata=_help("Forecast steps to publish (default: the model's horizon)."),
    )
    max_gap_steps: int = field(
        default=3,
        metadata=_help(
            "Missing steps filled with the model's own predictions; a longer gap resets the sensor."
        ),
    )
    max_clock_skew_s: float = field(
        default=300.0,
        metadata=_help(
            "A reading whose ts is more than this many seconds ahead of its arrival is refused "
            "(future); clocks behind ours are fine."
        ),
    )
    grace_s: float = field(
        default=2.0,
        metadata=_help(
            "Seconds after a step's end before the wall clock closes it (late readings)."
        ),
    )
    max_sensors: int = field(
        default=10_000,
        metadata=_help(
            "Most sensors kept in memory (1..1,000,000). When all are live, a new sensor is "
            "refused (sensor_limit); one silent longer than a fillable gap may be replaced."
        ),
    )
    max_payload_bytes: int = field(default=1024, metadata=_help("Larger payloads are rejected."))
    queue_size: int = field(
        default=100_000,
        metadata=_help(
            "Bounded intake queue between the MQTT thread and the worker (overflow is counted)."
        ),
    )
    batch_max: int = field(
        default=5_000, metadata=_help("Most messages the worker handles in one batch.")
    )
    batch_wait_ms: float = field(
        default=10.0,
        metadata=_help(
            "How long the worker waits for more messages to fill a batch: one interpreter call "
            "serves the whole batch, so a few ms buy throughput for little latency."
        ),
    )
    # --- output ---
    output_prefix: str = field(
        default="edge-lstm",
        metadata=_help(
            "Prefix of published topics: PREFIX/SENSOR/forecast, PREFIX/status, PREFIX/health."
        ),
    )
    retain_forecasts: bool = field(default=False, metadata=_help("Publish forecasts retained."))
    health_interval_s: float = field(
        default=30.0, metadata=_help("Seconds between health messages (retained).")
    )
    homeassistant: bool = field(
        default=False, metadata=_help("Publish Home Assistant MQTT discovery configs.")
    )
    homeassistant_prefix: str = field(
        default="homeassistant", metadata=_help("Home Assistant discovery prefix.")
    )
    # --- state ---
    state_dir: Path | None = field(
        default=None,
        metadata=_help(
            "Directory for state snapshots (systemd: StateDirectory); unset: no snapshots."
        ),
    )
    snapshot_interval_s: float = field(
        default=300.0, metadata=_help("Seconds between state snapshots.")
    )
    durability: Literal["snapshot", "wal"] = field(
        default="snapshot",
        metadata=_help(
            "snapshot: state as of the last snapshot survives a crash; wal: every accepted reading "
            "is journaled before it is acknowledged and replayed after a crash."
        ),
    )
    wal_fsync: bool = field(
        default=True, metadata=_help("fsync the write-ahead log on every append (durability=wal).")
    )
    wal_max_bytes: int = field(
        default=16 * 2**20,
        metadata=_help(
            "Largest write-ahead log: a snapshot is taken before it grows past this (bytes)."
        ),
    )
    # --- scaling (docs/scaling.md) ---
    shard: str = field(
        default="0/1",
        metadata=_help(
            "I/N: this daemon is number I (from 0) of N and forecasts only the sensors whose "
            "stable id hash falls in its share (N 1..1000); others are skipped as other_shard."
        ),
    )
    shared_group: str | None = field(
        default=None,
        metadata=_help(
            "Subscribe as $share/NAME/... (MQTT 5 shared subscription) so the broker splits the "
            "stream; NAME is one topic level. Needs a broker that dispatches by topic hash."
        ),
    )
    broker_state: bool = field(
        default=False,
        metadata=_help(
            "Publish each sensor's state retained to PREFIX/state/SENSOR at each snapshot and "
            "shutdown, and resume sensors warm from it (same model only)."
        ),
    )
    # --- process ---
    log_level: str = field(default="INFO", metadata=_help("DEBUG, INFO, WARNING or ERROR."))

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

    @property
    def shard_index(self) -> int:
        """I of ``shard = "I/N"``: this daemon's number, from 0."""
        return parse_shard(self.shard)[0]

    @property
    def shard_count(self) -> int:
        """N of ``shard = "I/N"``: how many daemons share the sensors."""
        return parse_shard(self.shard)[1]

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
            values.update(read_toml(path, FIELDS))
        values.update(from_env(env or {}, FIELDS, ENV_PREFIX, _OTHER_ENV))
        for key, value in (overrides or {}).items():
            if key not in FIELDS:
                raise ConfigError(f"unknown setting {key!r}")
            if value is not None:
                values[key] = value
        typed = {key: coerce(key, value, FIELDS[key]) for key, value in values.items()}
        try:
            return cls(**typed)  # type: ignore[arg-type]
        except TypeError as exc:  # pragma: no cover - _coerce already checked every key
            raise ConfigError(str(exc)) from exc


BROKER_FORMS = "HOST:PORT, HOST (port 1883) or [IPv6]:PORT, e.g. 'pi.local:1883'"


def split_broker(broker: str) -> tuple[str, int]:
    """``"host:1883"`` -> ``("host", 1883)``; a bare host gets port 1883; ``[::1]:1883`` works.

    The one parser of broker addresses. A URL scheme is refused with the accepted forms:
    ``mqtt://host`` would otherwise be read as host ``mqtt`` and port ``//host``.
    """
    text = broker.strip()
    scheme, sep, rest = text.partition("://")
    if sep:
        tls = " (TLS: set tls_ca, usually with port 8883)" if scheme.lower() in _TLS_SCHEMES else ""
        raise ConfigError(
            f"broker {broker!r}: no URL scheme ({scheme}://); give {BROKER_FORMS}, "
            f"here {rest.split('/')[0]!r}{tls}"
        )
    if text.startswith("["):
        host, bracket, tail = text[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ConfigError(f"broker {broker!r}: expected {BROKER_FORMS}")
        port_text = tail[1:] if tail else "1883"
    elif text.count(":") > 1:  # a bare IPv6 address
        host, port_text = text, "1883"
    else:
        host, _, port_text = text.partition(":")
        port_text = port_text if ":" in text else "1883"
    if not host or any(c.isspace() or c in "/@?#" for c in host):
        raise ConfigError(f"broker {broker!r}: bad host {host!r}; expected {BROKER_FORMS}")
    if not port_text.isdigit():
        raise ConfigError(
            f"broker {broker!r}: port {port_text!r} is not a number; expected {BROKER_FORMS}"
        )
    port = int(port_text)
    if not 0 < port < 65536:
        raise ConfigError(f"broker {broker!r}: port must be 1..65535")
    return host, port


_TLS_SCHEMES = frozenset({"mqtts", "ssl", "tls", "wss"})


MAX_SHARDS = 1_000
_SHARD = re.compile(r"([0-9]{1,4})/([0-9]{1,4})")


def parse_shard(text: str) -> tuple[int, int]:
    """``"1/3"`` -> ``(1, 3)``: daemon I of N, ``0 <= I < N``, ``1 <= N <= 1000``."""
    found = _SHARD.fullmatch(text.strip())
    if found is None:
        raise ConfigError(f"shard {text!r}: expected I/N, e.g. '0/3' (daemon 0 of 3)")
    index, count = int(found[1]), int(found[2])
    if not 1 <= count <= MAX_SHARDS:
        raise ConfigError(f"shard {text!r}: N must be between 1 and {MAX_SHARDS:,}")
    if index >= count:
        raise ConfigError(f"shard {text!r}: I must be between 0 and N-1 ({count - 1})")
    return index, count


def check_topic_level(name: str, text: str) -> str:
    """One MQTT topic level: non-empty, no '/', '+', '#', no control or format character."""
    if not text or any(c in text for c in "/+#\x00"):
        raise ConfigError(f"{name} {text!r}: must be one topic level, without '/', '+' or '#'")
    validate_output_prefix(text, name)
    return text


def field_help(name: str) -> str:
    """The help text of one setting."""
    return str(_FIELD_OBJECTS[name].metadata.get("help", ""))


# (low, high) of every numeric setting, from what MQTT, paho and a Pi accept. Inclusive.
RANGES: dict[str, tuple[float, float]] = {
    "keepalive_s": (5, 65_535),  # MQTT's keepalive is a 16-bit field; paho dies beyond it
    "reconnect_min_s": (1, 3_600),
    "reconnect_max_s": (1, 3_600),
    "horizon": (1, 1_000),
    "max_gap_steps": (0, 1_000_000),
    "max_clock_skew_s": (0, 10 * 366 * 86_400),
    "grace_s": (0, 86_400),
    # Each sensor holds its LSTM state in memory and in every batched interpreter call.
    "max_sensors": (1, 1_000_000),
    "max_payload_bytes": (16, 1_048_576),
    "queue_size": (1, 10_000_000),
    "batch_max": (1, 1_000_000),
    "batch_wait_ms": (0, 1_000),
    "health_interval_s": (0.1, 86_400),
    "snapshot_interval_s": (0.1, 7 * 86_400),
    "wal_max_bytes": (65_536, 2**40),
}


def _check(c: Config) -> None:
    split_broker(c.broker)
    if not c.client_id or len(c.client_id) > 128 or not c.client_id.isprintable():
        raise ConfigError("client_id must be 1..128 printable characters")
    if not c.topics:
        raise ConfigError("topics must list at least one template")
    for template in c.topics:
        TopicTemplate(template)  # raises ConfigError naming the template
    validate_output_prefix(c.output_prefix, "output_prefix")
    validate_output_prefix(c.homeassistant_prefix, "homeassistant_prefix")
    parse_shard(c.shard)
    if c.shared_group is not None:
        check_topic_level("shared_group", c.shared_group)
    _check_no_feedback(c)
    if c.qos not in (0, 1):
        raise ConfigError(f"qos must be 0 or 1, not {c.qos}")
    if c.forecast_qos not in (0, 1):
        raise ConfigError(f"forecast_qos must be 0 or 1, not {c.forecast_qos}")
    if c.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, not {c.log_level!r}")
    if c.durability not in ("snapshot", "wal"):
        raise ConfigError(f"durability must be 'snapshot' or 'wal', not {c.durability!r}")
    if c.durability == "wal" and c.state_dir is None:
        raise ConfigError("durability = 'wal' needs state_dir")
    if (c.tls_cert is None) != (c.tls_key is None):
        raise ConfigError("tls_cert and tls_key must be given together")
    for key, (low, high) in RANGES.items():
        value = getattr(c, key)
        if value is None:
            continue
        if not (math.isfinite(value) and low <= value <= high):
            raise ConfigError(
                f"{key} must be between {_number(low)} and {_number(high)}, not {_number(value)}"
            )
    if c.reconnect_max_s < c.reconnect_min_s:
        raise ConfigError("reconnect_max_s must be >= reconnect_min_s")
    if c.batch_max > c.queue_size:
        raise ConfigError("batch_max must be <= queue_size")


def _number(value: float) -> str:
    """1000000 -> "1,000,000"; 0.1 -> "0.1"."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e18:
        return f"{int(value):,}"
    return f"{value:g}"


def _check_no_feedback(c: Config) -> None:
    """Refuse input templates that match the daemon's own output: it would read itself.

    The fixed topics (status, health) must not match at all; per-sensor topics
    (``PREFIX/<sensor>/forecast``) must not be matched for every sensor. A template such as
    ``PREFIX/sensors/{sensor}`` only meets the forecasts of a sensor named ``sensors``, whose
    documents would be refused as readings: allowed.
    """
    out = OutputTopics(c.output_prefix)
    fixed = [out.status, out.health]
    per_sensor = [out.forecast("+"), out.accuracy("+")]
    if c.homeassistant:
        per_sensor.append(f"{c.homeassistant_prefix}/sensor/edge_lstm/+/config")
    for template in c.templates():
        sub = template.subscription
        hits = [t for t in fixed if filters_overlap(sub, t)]
        hits += [t for t in per_sensor if _matches_every_sensor(sub, t)]
        if hits:
            raise ConfigError(
                f"topic template {template.template!r} matches the daemon's own output "
                f"{hits[0]!r} (output_prefix {c.output_prefix!r}): it would read what it "
                "publishes; choose another output_prefix or template"
            )


def _matches_every_sensor(subscription: str, pattern: str) -> bool:
    """Whether ``subscription`` matches ``pattern``'s topic for every value of its ``+``."""
    left, right = subscription.split("/"), pattern.split("/")
    if len(left) != len(right):
        return False
    return all(s == "+" or (p != "+" and s == p) for s, p in zip(left, right, strict=True))


_HINTS = typing.get_type_hints(Config)
_FIELD_OBJECTS = {f.name: f for f in dataclasses.fields(Config)}
FIELDS: dict[str, Any] = {name: _HINTS[name] for name in _FIELD_OBJECTS}
"""Setting name -> its type, in declaration order."""
