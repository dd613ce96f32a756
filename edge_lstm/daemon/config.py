"""The daemon's typed, closed configuration: TOML file < ``EDGE_LSTM_*`` environment < CLI flags.

Every setting is one field below, documented where it is declared; the same help text feeds
``edge-lstm run --help`` and ``docs/daemon.md``. Keys are flat (``broker = "pi:1883"``) so the
TOML key, the flag (``--broker``) and the variable (``EDGE_LSTM_BROKER``) are the same word.
Pure: no network, no interpreter.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError
from ..stream.address import BrokerAddress, parse_broker
from ..stream.topics import OutputTopics, TopicTemplate, filters_overlap, validate_output_prefix
from .config_parse import Schema, about, to_toml

ENV_PREFIX = "EDGE_LSTM_"
# Variables read by other parts of edge-lstm (interpreter choice, CLI, test tooling), not
# settings of the daemon; any other EDGE_LSTM_* is a typo and an error. Add new ones here.
_OTHER_ENV = frozenset(
    {"EDGE_LSTM_BACKEND", "EDGE_LSTM_CONFIG", "EDGE_LSTM_REQUIRE_ALL", "EDGE_LSTM_CRASH_SEED"}
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config:
    """Every setting of ``edge-lstm run``; build it with :meth:`Config.load`."""

    # --- broker ---
    broker: str = field(
        default="localhost:1883",
        metadata=about(
            "MQTT broker: HOST[:PORT], [IPv6]:PORT, mqtt://HOST[:PORT] or mqtts://HOST[:PORT] "
            "(TLS with the system's CAs, port 8883; tls_ca for your own CA)."
        ),
    )
    client_id: str = field(
        default="edge-lstm",
        metadata=about(
            "Fixed MQTT client id; the persistent session (queued QoS 1 readings) is keyed by it."
        ),
    )
    username: str | None = field(default=None, metadata=about("MQTT user name."))
    password_file: Path | None = field(
        default=None,
        metadata=about(
            "File holding the MQTT password (e.g. a systemd credential), never the config."
        ),
    )
    tls_ca: Path | None = field(
        default=None,
        metadata=about("CA certificate file; setting it turns TLS on (as mqtts:// does)."),
    )
    tls_cert: Path | None = field(
        default=None, metadata=about("Client certificate file (mutual TLS).")
    )
    tls_key: Path | None = field(
        default=None, metadata=about("Client private key file (mutual TLS).")
    )
    tls_insecure: bool = field(
        default=False,
        metadata=about("Skip the broker host name check (self-signed test setups only)."),
    )
    keepalive_s: int = field(
        default=30,
        metadata=about(
            "MQTT keepalive in seconds; MQTT sends it in 16 bits (paho dies beyond).",
            low=5,
            high=65_535,
        ),
    )
    reconnect_min_s: int = field(
        default=1, metadata=about("First reconnect delay in seconds (doubles).", low=1, high=3_600)
    )
    reconnect_max_s: int = field(
        default=30, metadata=about("Longest reconnect delay in seconds.", low=1, high=3_600)
    )
    mqtt_version: Literal["5", "3.1.1"] = field(
        default="5",
        metadata=about(
            "MQTT protocol: 5 (session expiry, a wide receive window) or 3.1.1 (old brokers; "
            "then raise Mosquitto's max_inflight_messages for throughput)."
        ),
    )
    qos: int = field(
        default=1,
        metadata=about("QoS of the subscriptions: 1 for no lost readings.", choices=(0, 1)),
    )
    forecast_qos: int = field(
        default=0,
        metadata=about(
            "QoS of the forecast publishes. 0: each forecast is superseded by the next "
            "step's, and QoS 1 costs the broker, the daemon and every subscriber an "
            "acknowledgement per forecast.",
            choices=(0, 1),
        ),
    )
    # --- model and input ---
    model: Path | None = field(
        default=None, metadata=about("Model file (.tflite with its .json sidecar).")
    )
    topics: tuple[str, ...] = field(
        default=("sensors/{sensor}",),
        metadata=about(
            "Input topic templates; {sensor} is the sensor id segment, + matches any segment.",
            flag="--topic",
        ),
    )
    horizon: int | None = field(
        default=None,
        metadata=about(
            "Forecast steps to publish (default: the model's horizon).", low=1, high=1_000
        ),
    )
    max_gap_steps: int = field(
        default=3,
        metadata=about(
            "Missing steps filled with the model's own predictions; a longer gap resets the "
            "sensor.",
            low=0,
            high=1_000_000,
        ),
    )
    max_clock_skew_s: float = field(
        default=300.0,
        metadata=about(
            "A reading whose ts is more than this many seconds ahead of its arrival is refused "
            "(future); clocks behind ours are fine.",
            low=0,
            high=10 * 366 * 86_400,
        ),
    )
    grace_s: float = field(
        default=2.0,
        metadata=about(
            "Seconds after a step's end before the wall clock closes it (late readings).",
            low=0,
            high=86_400,
        ),
    )
    max_sensors: int = field(
        default=10_000,
        metadata=about(
            "Most sensors kept in memory; each holds its LSTM state in every batched call. When "
            "all are live, a new sensor is "
            "refused (sensor_limit); one silent longer than a fillable gap may be replaced.",
            low=1,
            high=1_000_000,
        ),
    )
    max_payload_bytes: int = field(
        default=1024, metadata=about("Larger payloads are rejected.", low=16, high=1_048_576)
    )
    queue_size: int = field(
        default=100_000,
        metadata=about(
            "Bounded intake queue between the MQTT thread and the worker (overflow is counted).",
            low=1,
            high=10_000_000,
        ),
    )
    batch_max: int = field(
        default=5_000,
        metadata=about("Most messages the worker handles in one batch.", low=1, high=1_000_000),
    )
    batch_wait_ms: float = field(
        default=10.0,
        metadata=about(
            "How long the worker waits for more messages to fill a batch: one interpreter call "
            "serves the whole batch, so a few ms buy throughput for little latency.",
            low=0,
            high=1_000,
        ),
    )
    # --- output ---
    output_prefix: str = field(
        default="edge-lstm",
        metadata=about(
            "Prefix of published topics: PREFIX/SENSOR/forecast, PREFIX/status, PREFIX/health."
        ),
    )
    retain_forecasts: bool = field(default=False, metadata=about("Publish forecasts retained."))
    health_interval_s: float = field(
        default=30.0,
        metadata=about("Seconds between health messages (retained).", low=0.1, high=86_400),
    )
    homeassistant: bool = field(
        default=False, metadata=about("Publish Home Assistant MQTT discovery configs.")
    )
    homeassistant_prefix: str = field(
        default="homeassistant", metadata=about("Home Assistant discovery prefix.")
    )
    # --- state ---
    state_dir: Path | None = field(
        default=None,
        metadata=about(
            "Directory for state snapshots (systemd: StateDirectory); unset: no snapshots."
        ),
    )
    snapshot_interval_s: float = field(
        default=300.0, metadata=about("Seconds between state snapshots.", low=0.1, high=7 * 86_400)
    )
    durability: Literal["snapshot", "wal"] = field(
        default="snapshot",
        metadata=about(
            "snapshot: state as of the last snapshot survives a crash; wal: every accepted reading "
            "is journaled before it is acknowledged and replayed after a crash."
        ),
    )
    wal_fsync: bool = field(
        default=True, metadata=about("fsync the write-ahead log on every append (durability=wal).")
    )
    wal_max_bytes: int = field(
        default=16 * 2**20,
        metadata=about(
            "Largest write-ahead log: a snapshot is taken before it grows past this (bytes).",
            low=65_536,
            high=2**40,
        ),
    )
    # --- scaling (docs/scaling.md) ---
    shard: str = field(
        default="0/1",
        metadata=about(
            "I/N: this daemon is number I (from 0) of N and forecasts only the sensors whose "
            "stable id hash falls in its share (N 1..1000); others are skipped as other_shard."
        ),
    )
    shared_group: str | None = field(
        default=None,
        metadata=about(
            "Subscribe as $share/NAME/... (MQTT 5 shared subscription) so the broker splits the "
            "stream; NAME is one topic level. Needs a broker that dispatches by topic hash."
        ),
    )
    broker_state: bool = field(
        default=False,
        metadata=about(
            "Publish each sensor's state retained to PREFIX/state/SENSOR at each snapshot and "
            "shutdown, and resume sensors warm from it (same model only)."
        ),
    )
    # --- process ---
    log_level: str = field(default="INFO", metadata=about("Log level.", choices=LOG_LEVELS))

    def __post_init__(self) -> None:
        _check(self)

    @property
    def broker_address(self) -> BrokerAddress:
        """``broker`` parsed: host, port, and whether it said ``mqtts://``."""
        return parse_broker(self.broker)

    @property
    def broker_host(self) -> str:
        """Host part of ``broker``."""
        return self.broker_address.host

    @property
    def broker_port(self) -> int:
        """Port part of ``broker``."""
        return self.broker_address.port

    @property
    def tls(self) -> bool:
        """TLS is on when ``broker`` is ``mqtts://...`` or ``tls_ca`` is set."""
        return self.broker_address.tls or self.tls_ca is not None

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

    def to_toml(self) -> str:
        """The settings as a TOML config file that :meth:`load` reads back to an equal Config."""
        return to_toml(self.to_dict())

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
        typed = SCHEMA.merge(path, env or {}, overrides or {}, _OTHER_ENV)
        try:
            return cls(**typed)  # type: ignore[arg-type]
        except TypeError as exc:  # pragma: no cover - _coerce already checked every key
            raise ConfigError(str(exc)) from exc


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
    """The help text of one setting, with its range or choices."""
    return SCHEMA.help(name)


def _check(c: Config) -> None:
    parse_broker(c.broker)
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
    for name in SCHEMA.fields:
        SCHEMA.check(name, getattr(c, name))  # each setting's declared range or choices
    if c.durability not in ("snapshot", "wal"):
        raise ConfigError(f"durability must be 'snapshot' or 'wal', not {c.durability!r}")
    if c.durability == "wal" and c.state_dir is None:
        raise ConfigError("durability = 'wal' needs state_dir")
    if (c.tls_cert is None) != (c.tls_key is None):
        raise ConfigError("tls_cert and tls_key must be given together")
    if c.reconnect_max_s < c.reconnect_min_s:
        raise ConfigError("reconnect_max_s must be >= reconnect_min_s")
    if c.batch_max > c.queue_size:
        raise ConfigError("batch_max must be <= queue_size")


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


SCHEMA = Schema(Config, ENV_PREFIX)
FIELDS: dict[str, Any] = SCHEMA.types
"""Setting name -> its type, in declaration order."""
