"""Helpers for the fault, security, fuzz and soak tests: the daemon as a real subprocess.

``DaemonProcess`` runs ``edge-lstm run --config FILE`` (a TOML file written per test), and can be
killed with SIGKILL, stopped with SIGTERM and restarted with the same settings. ``Observer``
collects what the daemon publishes; ``Publisher`` sends readings at QoS 1 from a persistent
session. ``expected_forecasts`` computes, in-process with the real interpreter, the forecasts an
uninterrupted run must publish. Every wait is bounded in time.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.mosquitto import Mosquitto, rss_bytes

# 2024-01-01T00:00:00Z: inside messages.MIN_TS..MAX_TS and aligned to any step that divides a day.
BASE_TS = 1_704_067_200.0
WAIT_S = 30.0

_LAUNCH = "from edge_lstm.cli.app import app; app()"


def toml_value(value: object) -> str:
    """A Python value as a TOML literal (str, bool, int, float, Path, list of str)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def daemon_settings(
    broker: Mosquitto, model: Path, prefix: str, **more: object
) -> dict[str, object]:
    """Settings of a daemon under test: topics, output prefix and client id under ``prefix``."""
    return {
        "broker": broker.url,
        "model": model,
        "topics": [f"{prefix}/s/{{sensor}}"],
        "output_prefix": f"{prefix}/out",
        "client_id": f"{prefix}-daemon",
        "health_interval_s": 0.5,
        **more,
    }


def wait_until(
    predicate: Callable[[], bool], timeout_s: float = WAIT_S, step_s: float = 0.05
) -> bool:
    """Poll ``predicate`` until true or ``timeout_s``; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()


class DaemonProcess:
    """``edge-lstm run`` as a subprocess with a generated config file."""

    def __init__(self, workdir: Path, settings: Mapping[str, object]) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "edge-lstm.toml"
        self.settings = dict(settings)
        self.config_path.write_text(
            "".join(f"{k} = {toml_value(v)}\n" for k, v in self.settings.items())
        )
        self.log_path = workdir / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, extra_env: Mapping[str, str] | None = None) -> DaemonProcess:
        """Start the process (returns at once; use ``Observer.wait_online``)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_LSTM_")}
        env.pop("NOTIFY_SOCKET", None)
        env.update(extra_env or {})
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1}\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _LAUNCH, "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        """The running process id."""
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> int:
        """Resident memory of the daemon in bytes."""
        return rss_bytes(self.pid)

    def log(self) -> str:
        """Everything the daemon wrote to stdout/stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, like a power cut for the process."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=WAIT_S)

    def terminate(self, timeout_s: float = 15.0) -> int:
        """SIGTERM and wait; the exit code (SIGKILL after ``timeout_s``)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=WAIT_S)
                return -9
        return self.proc.returncode

    def wait_exit(self, timeout_s: float = WAIT_S) -> int | None:
        """Exit code once the process ends, None if it is still running after ``timeout_s``."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def cleanup(self) -> None:
        """Make sure the process is gone (finally blocks)."""
        if self.alive:
            self.kill9()


def _client(client_id: str = "", clean: bool = True) -> mqtt.Client:
    return mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean
    )


ClientSetup = Callable[[mqtt.Client], None]
"""Applied to a test client before it connects (TLS, credentials)."""


def _connect(client: mqtt.Client, broker: Mosquitto) -> None:
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: connected.set() if not rc.is_failure else None
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    if not connected.wait(WAIT_S):
        client.loop_stop()
        raise RuntimeError("test client could not connect")


class Observer:
    """Collects the daemon's output topics: forecasts per sensor, status and health."""

    def __init__(
        self,
        broker: Mosquitto,
        out_prefix: str,
        client_id: str = "",
        setup: ClientSetup | None = None,
    ) -> None:
        self.out_prefix = out_prefix
        self.lock = threading.Lock()
        self.forecasts: dict[str, list[dict[str, Any]]] = {}
        self.statuses: list[str] = []
        self.health: dict[str, Any] = {}
        self.health_count = 0
        self.raw_count = 0
        self.raw: list[bytes] = []
        # With a client id: a persistent session, so forecasts published while the broker was
        # away from us are still delivered.
        self.client = _client(client_id, clean=not client_id)
        self.client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        self.client.on_message = self._on_message
        if setup is not None:
            setup(self.client)
        connected = threading.Event()

        def on_connect(c: mqtt.Client, u: object, f: object, rc: Any, p: object) -> None:
            c.subscribe(f"{out_prefix}/#", qos=1)
            connected.set()

        self.client.on_connect = on_connect
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        if not connected.wait(WAIT_S):
            raise RuntimeError("observer could not connect")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic[len(self.out_prefix) + 1 :]
        with self.lock:
            self.raw_count += 1
            if len(self.raw) < 10_000:
                self.raw.append(msg.topic.encode() + b" " + msg.payload)
            if topic == "status":
                if msg.retain:
                    return  # replayed by the broker on (re)subscribe: says nothing new
                self.statuses.append(msg.payload.decode("utf-8", "replace"))
            elif topic == "health":
                self.health = json.loads(msg.payload)
                self.health_count += 1
            elif topic.endswith("/forecast"):
                doc = json.loads(msg.payload)
                self.forecasts.setdefault(doc["sensor"], []).append(doc)

    def status(self) -> str | None:
        """The latest availability message."""
        with self.lock:
            return self.statuses[-1] if self.statuses else None

    def wait_online(self, daemon: DaemonProcess | None = None, timeout_s: float = WAIT_S) -> None:
        """Wait for ``online`` after the current number of status messages."""
        with self.lock:
            seen = len(self.statuses)

        def ok() -> bool:
            with self.lock:
                return "online" in self.statuses[seen:]

        with self.lock:
            health_seen = self.health_count
        if not wait_until(ok, timeout_s) or (daemon is not None and not daemon.alive):
            log = daemon.log()[-3000:] if daemon is not None else ""
            raise AssertionError(f"daemon did not come online; log:\n{log}")
        # "online" is published before the daemon subscribes; a health message after it comes
        # over the same connection, so once it is here the subscriptions are in place and a
        # reading published now is not lost to a race (tests use short health intervals).
        assert wait_until(lambda: self.health_count > health_seen, timeout_s), "no health"

    def fresh_health(self, timeout_s: float = WAIT_S) -> dict[str, Any]:
        """The next health document published after this call."""
        with self.lock:
            seen = self.health_count
        assert wait_until(lambda: self.health_count > seen, timeout_s), "no health published"
        with self.lock:
            return dict(self.health)

    def last_obs(self, sensor: str) -> str | None:
        """``last_obs_at`` of the newest forecast for ``sensor``."""
        with self.lock:
            docs = self.forecasts.get(sensor)
            return docs[-1]["last_obs_at"] if docs else None

    def has_forecast_for(self, sensor: str, iso_time: str) -> bool:
        """True once a forecast for ``sensor`` after the bucket at ``iso_time`` arrived."""
        with self.lock:
            return any(d["last_obs_at"] == iso_time for d in self.forecasts.get(sensor, ()))

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


class Publisher:
    """Publishes readings at QoS 1 from a persistent session (survives broker restarts)."""

    def __init__(self, broker: Mosquitto, client_id: str, setup: ClientSetup | None = None) -> None:
        self.client = _client(client_id, clean=False)
        if setup is not None:
            setup(self.client)
        self.client.max_queued_messages_set(0)  # unbounded: nothing is dropped while away
        self.client.reconnect_delay_set(0.05, 0.5)  # type: ignore[arg-type]
        _connect(self.client, broker)
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        """Queue one message (paho resends it after a reconnect until the broker has it)."""
        self.infos.append(self.client.publish(topic, payload, qos=qos))

    def wait_all_acked(self, timeout_s: float = 60.0) -> bool:
        """True once the broker acknowledged every QoS 1 message published so far."""
        return wait_until(lambda: all(i.is_published() for i in self.infos), timeout_s, 0.05)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def reading_payload(values: Sequence[float], ts: float) -> bytes:
    """The JSON payload of one reading with an explicit timestamp."""
    value: object = list(values) if len(values) > 1 else values[0]
    return json.dumps({"value": value, "ts": ts}).encode()


def series(n_sensors: int, n_steps: int, n_features: int, seed: int = 7) -> np.ndarray:
    """Smooth, deterministic readings: ``(n_sensors, n_steps, n_features)`` around 20/50."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps)[None, :, None]
    phase = rng.uniform(0, 2 * math.pi, (n_sensors, 1, n_features))
    base = np.array([20.0, 50.0, 10.0, 1.0][:n_features])[None, None, :]
    noise = rng.normal(0, 0.2, (n_sensors, n_steps, n_features))
    return np.round(base + 3 * np.sin(t / 6 + phase) + noise, 3)


def expected_forecasts(
    model: Path, ids: Sequence[str], data: np.ndarray, horizon: int | None = None
) -> dict[str, list[np.ndarray]]:
    """Per sensor, the forecast after each step of an uninterrupted run, ``(H, F)`` each."""
    from edge_lstm.model.forecaster import Forecaster

    forecaster = Forecaster.load(model)
    out: dict[str, list[np.ndarray]] = {s: [] for s in ids}
    for k in range(data.shape[1]):
        forecaster.observe_batch({s: data[i, k] for i, s in enumerate(ids)})
        batch = forecaster.forecast_batch(list(ids), horizon)
        for i, s in enumerate(ids):
            out[s].append(np.asarray(batch[i], dtype=np.float64))
    return out


def doc_values(doc: Mapping[str, Any], features: Sequence[str]) -> np.ndarray:
    """A forecast document's ``v`` values as ``(H, F)``."""
    rows = []
    for step in doc["forecast"]:
        v = step["v"]
        rows.append([v[f] for f in features] if isinstance(v, dict) else [v])
    return np.asarray(rows, dtype=np.float64)


def step_index(doc: Mapping[str, Any], step_s: float) -> int:
    """Which step of the series (0-based from ``BASE_TS``) a forecast document follows."""
    from datetime import datetime

    t = datetime.fromisoformat(doc["last_obs_at"].replace("Z", "+00:00")).timestamp()
    return round((t - BASE_TS) / step_s)


def iso_of_step(k: int, step_s: float) -> str:
    """ISO time of step ``k`` as the daemon writes ``last_obs_at``."""
    from edge_lstm.stream.documents import iso

    return iso(BASE_TS + k * step_s)


def mismatches(
    observer: Observer,
    expected: Mapping[str, list[np.ndarray]],
    features: Sequence[str],
    step_s: float,
    atol: float = 2e-5,
) -> list[str]:
    """Every published forecast that differs from the uninterrupted run (empty: all equal)."""
    bad = []
    with observer.lock:
        docs = {s: list(d) for s, d in observer.forecasts.items()}
    for sensor, sensor_docs in docs.items():
        if sensor not in expected:
            continue
        for doc in sensor_docs:
            k = step_index(doc, step_s)
            got = doc_values(doc, features)
            want = np.round(expected[sensor][k], 5)
            if got.shape != want.shape or not np.allclose(got, want, atol=atol, rtol=0):
                bad.append(f"{sensor} step {k}: got {got.ravel()[:4]} want {want.ravel()[:4]}")
    return bad


def all_pids(procs: Iterable[DaemonProcess]) -> list[int]:
    """Pids of the processes still running."""
    return [p.pid for p in procs if p.alive]
