"""End to end: real Mosquitto, ``edge-lstm run`` as a subprocess, real paho clients.

Readings carry ``ts`` one model step apart, so every reading closes the previous one's bucket:
after ``n`` readings a sensor has ``n - 1`` forecasts, each of which must equal what an
in-process ``Forecaster`` gives on the same steps.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from edge_lstm.mqttkit.broker import Mosquitto, free_port
from edge_lstm.mqttkit.clients import (
    Message,
    Publisher,
    Recorder,
    retained,
    unique_prefix,
    wait_until,
)
from edge_lstm.mqttkit.daemon import DaemonProcess
from edge_lstm.mqttkit.pki import Pki
from tests.golden_stream import check_forecasts, expected, payload, step_iso

pytestmark = pytest.mark.broker


def base_args(broker: Mosquitto, model: Path, prefix: str) -> list[str]:
    return [
        "--broker", broker.url, "--model", str(model), "--client-id", f"d-{uuid.uuid4().hex[:8]}",
        "--topic", f"{prefix}/in/{{sensor}}", "--output-prefix", f"{prefix}/out",
        "--health-interval-s", "0.5", "--reconnect-max-s", "2", "--log-level", "INFO",
    ]  # fmt: skip


def forecasts_on(recorder: Recorder, prefix: str, sensor: int) -> list[dict[str, Any]]:
    return [m.json() for m in recorder.on(f"{prefix}/out/s{sensor}/forecast")]


def wait(predicate: Callable[[], bool], what: str, d: DaemonProcess) -> None:
    assert wait_until(predicate), f"timed out waiting for {what}\n{d.log()}"


def has_counts(recorder: Recorder, prefix: str, sensors: int, n: int) -> bool:
    """Each sensor has forecasts after ``n`` distinct steps."""

    def distinct(s: int) -> int:
        # QoS 1 may deliver a forecast twice to the recorder around a broker restart.
        return len({doc["last_obs_at"] for doc in forecasts_on(recorder, prefix, s)})

    return all(distinct(s) >= n for s in range(sensors))


def wait_final(recorder: Recorder, prefix: str, sensors: int, n: int, d: DaemonProcess) -> None:
    """Until each sensor's forecast after step n-2 (the last closed one) arrived."""
    final = step_iso(n - 2)

    def done() -> bool:
        return all(
            any(doc["last_obs_at"] == final for doc in forecasts_on(recorder, prefix, s))
            for s in range(sensors)
        )

    wait(done, f"the forecast after step {n - 2}", d)


def last_health(recorder: Recorder, prefix: str) -> dict[str, Any]:
    msgs = recorder.on(f"{prefix}/out/health")
    doc = msgs[-1].json() if msgs else {}
    assert isinstance(doc, dict)
    return doc


def notify_socket(tmp_path: Path) -> tuple[socket.socket, str]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    return sock, path


@dataclass
class Run:
    """One daemon (Home Assistant on, a systemd notify socket) fed a paced stream for 3 sensors:
    ``N`` steps each, plus one of every kind of bad message at step 3."""

    prefix: str
    broker: Mosquitto
    daemon: DaemonProcess
    recorder: Recorder
    publisher: Publisher
    sock: socket.socket
    notified: set[str] = field(default_factory=set)
    closed: threading.Event = field(default_factory=threading.Event)

    def listen(self) -> None:
        """Read the notify socket all along, as systemd does: the daemon's watchdog pings
        (every 0.1 s here) would otherwise fill its buffer and block the daemon."""
        while not self.closed.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                self.notified.update(self.sock.recv(4096).decode().splitlines())

    def notifications(self, until: Callable[[set[str]], bool]) -> set[str]:
        wait_until(lambda: until(set(self.notified)))
        return set(self.notified)

    def health(self) -> dict[str, Any]:
        return last_health(self.recorder, self.prefix)

    def configs(self) -> list[Message]:
        return [m for m in self.recorder.snapshot() if m.topic.endswith("/config")]


N = 8
SENSORS = 3
BAD = {
    b"nan": "not_a_number",
    b"abc": "not_a_number",
    b'{"value": [1]}': "wrong_length",
    b"\xff\xfe\x00": "binary",
    b'{"value": [1, 2], "ts": "nope"}': "bad_ts",
    b"1" * 2000: "too_large",
}
WANT_REJECTED = {"not_a_number": 2, "wrong_length": 1, "binary": 1, "bad_ts": 1,
                 "too_large": 1, "bad_sensor_id": 1, "duplicate": 1, "late": 1}  # fmt: skip


@pytest.fixture(scope="module")
def run(
    module_mosquitto: Mosquitto, golden_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    """The shared daemon. Its waits do not assert: each test checks its own concern."""
    tmp_path = tmp_path_factory.mktemp("e2e")
    broker = module_mosquitto
    p = unique_prefix("e2e")
    sock, sock_path = notify_socket(tmp_path)
    recorder = Recorder(broker, [f"{p}/out/#", f"{p}/ha/#"]).start()
    args = base_args(broker, golden_model, p)
    args += ["--homeassistant", "--homeassistant-prefix", f"{p}/ha"]
    env = {"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "200000"}
    d = DaemonProcess(tmp_path, args=args, env=env).start()
    pub = Publisher(broker)
    r = Run(p, broker, d, recorder, pub, sock)
    listener = threading.Thread(target=r.listen, daemon=True)
    listener.start()
    try:
        r.notifications(lambda s: "READY=1" in s)
        wait_until(lambda: bool(recorder.on(f"{p}/out/status")))
        for i in range(N):
            for s in range(SENSORS):
                pub.publish(f"{p}/in/s{s}", payload(s, i))
            # Paced, one step at a time: several closed steps of a sensor in one batch would
            # be coalesced into the newest one's forecast.
            if i:
                wait_until(lambda i=i: has_counts(recorder, p, SENSORS, i))  # type: ignore[misc]
            if i == 3:
                for body in BAD:
                    pub.publish(f"{p}/in/s0", body)
                pub.publish(f"{p}/in/$bad", "1")  # would become a $-topic: bad_sensor_id
                pub.publish(f"{p}/in/s1", payload(1, 3))  # same ts again: duplicate
                pub.publish(f"{p}/in/s2", payload(2, 1))  # older step: late
        pub.wait_all_acked()
        wait_until(lambda: has_counts(recorder, p, SENSORS, N - 1))
        yield r
    finally:
        d.cleanup()
        pub.close()
        recorder.close()
        r.closed.set()
        listener.join(5)
        sock.close()


def test_online_is_announced(run: Run) -> None:
    assert run.recorder.on(f"{run.prefix}/out/status")[0].payload == b"online"


def test_run_hands_over_to_the_lean_daemon_in_the_same_process(run: Run) -> None:
    """``edge-lstm run`` execs ``python -m edge_lstm.daemon`` (same PID: systemd's main process
    and the READY above are the daemon's); the command-line layer's compiled parts (pydantic,
    which typer loads to run a command) are not in the daemon's memory."""
    pid = run.daemon.pid
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[1:3] == [b"-m", b"edge_lstm.daemon"], cmdline
    assert "pydantic_core" not in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.parametrize("sensor", range(SENSORS))
def test_forecasts_equal_an_in_process_forecaster(
    run: Run, golden_model: Path, sensor: int
) -> None:
    assert has_counts(run.recorder, run.prefix, SENSORS, N - 1), run.daemon.log()
    docs = check_forecasts(
        forecasts_on(run.recorder, run.prefix, sensor), expected(golden_model, sensor, N)
    )
    assert [doc["steps_seen"] for doc in docs] == list(range(1, N))
    assert [doc["status"] for doc in docs][:3] == ["warming_up", "warming_up", "ok"]
    assert all(len(doc["forecast"]) == 6 for doc in docs)  # type: ignore[arg-type]


def test_every_bad_message_is_counted_by_reason(run: Run) -> None:
    def settled() -> bool:  # a health document written after the whole stream
        health = run.health()
        return health.get("readings_accepted") == SENSORS * N and bool(
            health.get("readings_rejected")
        )

    wait(settled, "health after every reading", run.daemon)
    health = run.health()
    assert health["readings_rejected"] == WANT_REJECTED
    assert health["sensors_active"] == SENSORS
    assert health["forecasts_published"] == SENSORS * (N - 1)


def test_health_scores_only_ok_forecasts(run: Run) -> None:
    # Warm-up is 3 steps: the forecasts issued after steps 3..N-2 have their next step observed.
    want = SENSORS * (N - 4)

    def scored() -> bool:
        accuracy = run.health().get("accuracy") or {}
        return bool(accuracy.get("scored_by_step", [0])[0] == want)

    wait(scored, f"{want} scored forecasts", run.daemon)
    assert run.health()["accuracy"]["scores"] == "ok_forecasts"


def test_homeassistant_discovery_per_sensor_and_feature(run: Run) -> None:
    wait(lambda: len({m.topic for m in run.configs()}) == 6, "6 discovery topics", run.daemon)
    assert all(m.json()["state_topic"] for m in run.configs())


def test_homeassistant_restart_gets_discovery_again(run: Run) -> None:
    before = len(run.configs())
    run.publisher.publish(f"{run.prefix}/ha/status", "online")
    wait(lambda: len(run.configs()) >= before + 6, "discovery republished", run.daemon)


def test_systemd_ready_and_watchdog(run: Run) -> None:
    seen = run.notifications(lambda s: {"READY=1", "WATCHDOG=1"} <= s)
    assert {"READY=1", "WATCHDOG=1"} <= seen, run.daemon.log()


def test_sigterm_stops_cleanly_and_leaves_offline(run: Run) -> None:
    # Last in this module: it ends the shared daemon.
    assert run.daemon.terminate() == 0, run.daemon.log()
    assert "STOPPING=1" in run.notifications(lambda s: "STOPPING=1" in s)
    assert retained(run.broker, f"{run.prefix}/out/status") == b"offline"


@pytest.mark.slow
@pytest.mark.parametrize("mqtt_version", ["5", "3.1.1"])
def test_broker_restart_mid_stream_loses_no_reading(
    mosquitto_factory: Callable[..., Mosquitto], golden_model: Path, tmp_path: Path,
    mqtt_version: str,
) -> None:  # fmt: skip
    broker = mosquitto_factory(persistence=True)
    p = unique_prefix("restart")
    collector = Recorder(broker, [f"{p}/out/#"]).start()
    args = [*base_args(broker, golden_model, p), "--mqtt-version", mqtt_version]
    d = DaemonProcess(tmp_path, args=args).start()
    pub = Publisher(broker)
    try:
        wait(lambda: bool(collector.on(f"{p}/out/status")), "daemon online", d)
        n = 20
        for i in range(10):
            for s in range(2):
                pub.publish(f"{p}/in/s{s}", payload(s, i))
        wait_final(collector, p, 2, 10, d)
        broker.stop()
        for i in range(10, 15):  # queued by the publisher while the broker is down
            for s in range(2):
                pub.publish(f"{p}/in/s{s}", payload(s, i))
        broker.start()
        for i in range(15, n):
            for s in range(2):
                pub.publish(f"{p}/in/s{s}", payload(s, i))
        assert pub.wait_all_acked()
        wait_final(collector, p, 2, n, d)
        for s in range(2):
            docs = check_forecasts(forecasts_on(collector, p, s), expected(golden_model, s, n))
            # The newest forecast went through every step: no reading was lost or reordered.
            assert max(doc["steps_seen"] for doc in docs) == n - 1  # type: ignore[type-var]

        def health_done() -> bool:
            h = last_health(collector, p)
            return int(h.get("reconnects", 0)) >= 1 and h.get("readings_accepted") == 2 * n

        wait(health_done, "health: the reconnect and every reading accepted", d)
        assert d.terminate() == 0, d.log()
    finally:
        d.cleanup()
        pub.close()
        collector.close()


def test_sigterm_snapshot_and_restart_restores_state(
    mosquitto: Mosquitto, golden_model: Path, tmp_path: Path
) -> None:
    p = unique_prefix("state")
    state_dir = tmp_path / "state"
    collector = Recorder(mosquitto, [f"{p}/out/#"]).start()
    args = [*base_args(mosquitto, golden_model, p), "--state-dir", str(state_dir)]
    pub = Publisher(mosquitto)
    n = 12
    d = DaemonProcess(tmp_path, args=args).start()
    try:
        wait(lambda: bool(collector.on(f"{p}/out/status")), "daemon online", d)
        for i in range(6):
            for s in range(2):
                pub.publish(f"{p}/in/s{s}", payload(s, i))
        wait_final(collector, p, 2, 6, d)
        assert d.terminate() == 0, d.log()
        assert (state_dir / "state.snapshot").is_file()
        assert retained(mosquitto, f"{p}/out/status") == b"offline"
        d.start()
        wait(lambda: collector.on(f"{p}/out/status")[-1].payload == b"online", "back online", d)
        d.send_signal(signal.SIGHUP)  # reload the (same) model: states must be kept
        wait(lambda: "sensor states kept" in d.log(), "model reload", d)
        for i in range(6, n):
            for s in range(2):
                pub.publish(f"{p}/in/s{s}", payload(s, i))
        wait_final(collector, p, 2, n, d)
        for s in range(2):
            docs = check_forecasts(forecasts_on(collector, p, s), expected(golden_model, s, n))
            # Restored, not restarted: the step count runs on across the restart, and the
            # values equal a Forecaster that never stopped.
            steps = [doc["steps_seen"] for doc in docs]
            assert steps == sorted(steps) and steps[-1] == n - 1
        assert d.terminate() == 0, d.log()
    finally:
        d.cleanup()
        pub.close()
        collector.close()


def test_corrupt_snapshot_is_set_aside_and_no_broker_is_not_fatal(
    golden_model: Path, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "state.snapshot").write_bytes(b"not a snapshot")
    args = ["--broker", f"127.0.0.1:{free_port()}", "--model", str(golden_model),
            "--state-dir", str(state_dir), "--reconnect-max-s", "1"]  # fmt: skip
    d = DaemonProcess(tmp_path, args=args).start()
    try:
        wait(lambda: "discarding state snapshot" in d.log(), "the snapshot set aside", d)
        assert d.alive, d.log()  # still running without a broker
        assert d.terminate() == 0, d.log()
        assert list(state_dir.glob("state.snapshot.bad-*"))
        assert (state_dir / "state.snapshot").is_file()  # the fresh one written at shutdown
    finally:
        d.cleanup()


USERS = {"edge": "daemon-secret", "obs": "observer-secret"}


def tls_daemon_args(pki: Pki, password: str, tmp_path: Path) -> list[str]:
    secret = tmp_path / f"password-{uuid.uuid4().hex[:6]}"
    secret.write_text(f"{password}\n")
    return ["--tls-ca", str(pki.ca_cert), "--tls-cert", str(pki.client_cert),
            "--tls-key", str(pki.client_key), "--username", "edge",
            "--password-file", str(secret)]  # fmt: skip


def test_tls_with_client_cert_and_password(
    mosquitto_factory: Callable[..., Mosquitto], broker_pki: Pki, golden_model: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    broker = mosquitto_factory(users=USERS, tls=broker_pki, require_client_cert=True)
    p = unique_prefix("tls")

    def tls_client(client: paho.Client) -> None:
        client.tls_set(ca_certs=str(broker_pki.ca_cert), certfile=str(broker_pki.client_cert),
                       keyfile=str(broker_pki.client_key))  # fmt: skip
        client.username_pw_set("obs", USERS["obs"])

    collector = Recorder(broker, [f"{p}/out/#"], setup=tls_client).start()
    args = [
        *base_args(broker, golden_model, p),
        *tls_daemon_args(broker_pki, "daemon-secret", tmp_path),
    ]
    d = DaemonProcess(tmp_path, args=args).start()
    pub = Publisher(broker, setup=tls_client)
    try:
        wait(lambda: bool(collector.on(f"{p}/out/status")), "daemon online over TLS", d)
        pub.publish(f"{p}/in/s0", payload(0, 0))
        pub.publish(f"{p}/in/s0", payload(0, 1))
        wait(lambda: has_counts(collector, p, 1, 1), "a forecast over TLS", d)
        assert d.terminate() == 0, d.log()
    finally:
        d.cleanup()
        pub.close()
        collector.close()


def test_a_wrong_password_is_refused_and_retried(
    mosquitto_factory: Callable[..., Mosquitto], broker_pki: Pki, golden_model: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    broker = mosquitto_factory(users=USERS, tls=broker_pki, require_client_cert=True)
    args = [
        *base_args(broker, golden_model, unique_prefix("tls-bad")),
        *tls_daemon_args(broker_pki, "nope", tmp_path),
    ]
    bad = DaemonProcess(tmp_path, args=args).start()
    try:
        wait(lambda: "refused" in bad.log(), "the wrong password refused", bad)
        assert bad.alive, bad.log()  # keeps retrying, not counted as connected
        assert "connected to" not in bad.log()
        assert bad.terminate() == 0, bad.log()
    finally:
        bad.cleanup()
