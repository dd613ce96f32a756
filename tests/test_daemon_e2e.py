"""End to end: real Mosquitto, ``edge-lstm run`` as a subprocess, real paho clients.

Readings carry ``ts`` one model step apart, so every reading closes the previous one's bucket:
after ``n`` readings a sensor has ``n - 1`` forecasts, each of which must equal what an
in-process ``Forecaster`` gives on the same steps.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
import pytest

from edge_lstm.model.forecaster import Forecaster
from edge_lstm.stream.documents import iso

from .daemon_run import Collector, DaemonProcess, Publisher, Received, retained
from .mosquitto import Mosquitto, Pki, unique_prefix

pytestmark = pytest.mark.broker

BASE_TS = 1_700_000_040  # a multiple of the golden model's 60 s step
FORECAST_KEYS = {"sensor", "issued_at", "last_obs_at", "step_s", "status", "steps_seen", "model",
                 "features", "forecast"}  # fmt: skip


def reading(sensor: int, i: int) -> tuple[float, float]:
    return (
        round(20 + 3 * math.sin(i / 3 + sensor), 3),
        round(50 + 5 * math.cos(i / 4 + sensor), 3),
    )


def payload(sensor: int, i: int) -> str:
    t, h = reading(sensor, i)
    ts = BASE_TS + 60 * i
    if i % 2:  # both accepted shapes: named fields and a value list, epoch and ISO ts
        return json.dumps({"temperature": t, "humidity": h, "ts": iso(ts)})
    return json.dumps({"value": [t, h], "ts": ts})


def expected(model: Path, sensor: int, n: int) -> dict[str, np.ndarray]:
    """last_obs_at -> the (H, 2) forecast an in-process Forecaster gives after that step."""
    fc = Forecaster.load(model)
    out = {}
    for i in range(n):
        fc.observe("s", reading(sensor, i))
        out[iso(BASE_TS + 60 * i)] = fc.forecast("s")
    return out


def values(doc: dict[str, object]) -> np.ndarray:
    steps = doc["forecast"]
    assert isinstance(steps, list)
    return np.array([[s["v"]["temperature"], s["v"]["humidity"]] for s in steps])


def check_forecasts(msgs: list[Received], want: dict[str, np.ndarray]) -> list[dict[str, object]]:
    docs = [m.json() for m in msgs]
    for doc in docs:
        assert set(doc) == FORECAST_KEYS
        assert doc["last_obs_at"] in want, doc["last_obs_at"]
        np.testing.assert_allclose(values(doc), want[doc["last_obs_at"]], atol=1e-4)
    return docs


def base_args(broker: Mosquitto, model: Path, prefix: str) -> list[str]:
    return [
        "--broker", broker.url, "--model", str(model), "--client-id", f"d-{uuid.uuid4().hex[:8]}",
        "--topic", f"{prefix}/in/{{sensor}}", "--output-prefix", f"{prefix}/out",
        "--health-interval-s", "0.5", "--reconnect-max-s", "2", "--log-level", "INFO",
    ]  # fmt: skip


def forecasts_on(collector: Collector, prefix: str, sensor: int) -> list[Received]:
    return collector.on(f"{prefix}/out/s{sensor}/forecast")


def wait_counts(collector: Collector, prefix: str, sensors: int, n: int, d: DaemonProcess) -> None:
    def distinct(s: int) -> int:
        # QoS 1 may deliver a forecast twice to the collector around a broker restart.
        return len({m.json()["last_obs_at"] for m in forecasts_on(collector, prefix, s)})

    def done() -> bool:
        return all(distinct(s) >= n for s in range(sensors))

    try:
        collector.wait_for(done, f"{n} forecasts per sensor")
    except AssertionError as exc:
        counts = [distinct(s) for s in range(sensors)]
        raise AssertionError(f"{exc}; got {counts}\n{d.log()}") from None


def wait_final(collector: Collector, prefix: str, sensors: int, n: int, d: DaemonProcess) -> None:
    """Until each sensor's forecast after step n-2 (the last closed one) arrived."""
    final = iso(BASE_TS + 60 * (n - 2))

    def done() -> bool:
        return all(
            any(m.json()["last_obs_at"] == final for m in forecasts_on(collector, prefix, s))
            for s in range(sensors)
        )

    try:
        collector.wait_for(done, f"the forecast after step {n - 2}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{d.log()}") from None


def last_health(collector: Collector, prefix: str) -> dict[str, object]:
    msgs = collector.on(f"{prefix}/out/health")
    assert msgs, "no health message"
    doc = msgs[-1].json()
    assert isinstance(doc, dict)
    return doc


def notify_socket(tmp_path: Path) -> tuple[socket.socket, str]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    return sock, path


def drain(sock: socket.socket, until: Callable[[set[str]], bool], seen: set[str]) -> set[str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not until(seen):
        with contextlib.suppress(TimeoutError):
            seen.update(sock.recv(4096).decode().splitlines())
    return seen


def test_forecasts_rejections_homeassistant_notify_and_sigterm(
    mosquitto: Mosquitto, golden_model: Path, tmp_path: Path
) -> None:
    p = unique_prefix("e2e")
    sock, sock_path = notify_socket(tmp_path)
    collector = Collector(mosquitto.host, mosquitto.port, [f"{p}/out/#", f"{p}/ha/#"])
    args = base_args(mosquitto, golden_model, p)
    args += ["--homeassistant", "--homeassistant-prefix", f"{p}/ha"]
    env = {"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "200000"}
    d = DaemonProcess(args, tmp_path, env)
    pub = Publisher(mosquitto.host, mosquitto.port)
    try:
        seen = drain(sock, lambda s: "READY=1" in s, set())
        assert "READY=1" in seen, d.log()
        collector.wait_for(lambda: bool(collector.on(f"{p}/out/status")), "status online")
        assert collector.on(f"{p}/out/status")[-1].payload == b"online"
        bad = {
            b"nan": "not_a_number",
            b"abc": "not_a_number",
            b'{"value": [1]}': "wrong_length",
            b"\xff\xfe\x00": "binary",
            b'{"value": [1, 2], "ts": "nope"}': "bad_ts",
            b"1" * 2000: "too_large",
        }
        n = 8
        for i in range(n):
            for s in range(3):
                pub.send(f"{p}/in/s{s}", payload(s, i))
            # Paced, one step at a time: several closed steps of a sensor in one batch would
            # be coalesced into the newest one's forecast.
            if i:
                wait_counts(collector, p, 3, i, d)
            if i == 3:
                for body in bad:
                    pub.send(f"{p}/in/s0", body)
                pub.send(f"{p}/in/$bad", "1")  # would become a $-topic: bad_sensor_id
                pub.send(f"{p}/in/s1", payload(1, 3))  # same ts again: duplicate
                pub.send(f"{p}/in/s2", payload(2, 1))  # older step: late
        pub.wait_all()
        wait_counts(collector, p, 3, n - 1, d)
        for s in range(3):
            docs = check_forecasts(forecasts_on(collector, p, s), expected(golden_model, s, n))
            assert [doc["steps_seen"] for doc in docs] == list(range(1, n))
            assert [doc["status"] for doc in docs][:3] == ["warming_up", "warming_up", "ok"]
            assert all(len(doc["forecast"]) == 6 for doc in docs)  # type: ignore[arg-type]
        want_rejected = {"not_a_number": 2, "wrong_length": 1, "binary": 1, "bad_ts": 1,
                         "too_large": 1, "bad_sensor_id": 1, "duplicate": 1, "late": 1}  # fmt: skip

        def health_done() -> bool:
            h = last_health(collector, p) if collector.on(f"{p}/out/health") else {}
            return (
                h.get("readings_rejected") == want_rejected and h.get("forecasts_published") == 21
            )

        collector.wait_for(health_done, "health with all rejections")
        health = last_health(collector, p)
        assert health["readings_accepted"] == 3 * n and health["sensors_active"] == 3
        accuracy = health["accuracy"]
        # Only `ok` forecasts are scored (warm-up is 3 steps): those issued after steps
        # 3..n-2 have their next step observed, (n - 4) per sensor.
        assert isinstance(accuracy, dict) and accuracy["scores"] == "ok_forecasts"
        assert accuracy["scored_by_step"][0] == 3 * (n - 4)
        # Home Assistant: one retained entity per sensor and feature, again after HA restarts.
        configs = [m for m in collector.messages if m.topic.endswith("/config")]
        assert len({m.topic for m in configs}) == 6 and all(
            m.json()["state_topic"] for m in configs
        )
        pub.send(f"{p}/ha/status", "online")
        collector.wait_for(
            lambda: len([m for m in collector.messages if m.topic.endswith("/config")]) >= 12,
            "discovery republished after homeassistant/status online",
        )
        seen = drain(sock, lambda s: "WATCHDOG=1" in s, seen)
        assert "WATCHDOG=1" in seen
        assert d.terminate() == 0, d.log()
        seen = drain(sock, lambda s: "STOPPING=1" in s, seen)
        assert "STOPPING=1" in seen
        assert retained(mosquitto.host, mosquitto.port, f"{p}/out/status") == b"offline"
    finally:
        d.kill()
        pub.close()
        collector.close()
        sock.close()


@pytest.mark.parametrize("mqtt_version", ["5", "3.1.1"])
def test_broker_restart_mid_stream_loses_no_reading(
    mosquitto_factory: Callable[..., Mosquitto], golden_model: Path, tmp_path: Path,
    mqtt_version: str,
) -> None:  # fmt: skip
    broker = mosquitto_factory(persistence=True)
    p = unique_prefix("restart")
    collector = Collector(broker.host, broker.port, [f"{p}/out/#"])
    args = [*base_args(broker, golden_model, p), "--mqtt-version", mqtt_version]
    d = DaemonProcess(args, tmp_path)
    pub = Publisher(broker.host, broker.port)
    try:
        collector.wait_for(lambda: bool(collector.on(f"{p}/out/status")), "daemon online")
        n = 20
        for i in range(10):
            for s in range(2):
                pub.send(f"{p}/in/s{s}", payload(s, i))
        wait_final(collector, p, 2, 10, d)
        broker.stop()
        for i in range(10, 15):  # queued by the publisher while the broker is down
            for s in range(2):
                pub.send(f"{p}/in/s{s}", payload(s, i))
        broker.start()
        for i in range(15, n):
            for s in range(2):
                pub.send(f"{p}/in/s{s}", payload(s, i))
        pub.wait_all()
        wait_final(collector, p, 2, n, d)
        for s in range(2):
            docs = check_forecasts(forecasts_on(collector, p, s), expected(golden_model, s, n))
            # The newest forecast went through every step: no reading was lost or reordered.
            assert max(doc["steps_seen"] for doc in docs) == n - 1  # type: ignore[type-var]

        def health_done() -> bool:
            if not collector.on(f"{p}/out/health"):
                return False
            h = last_health(collector, p)
            return int(h["reconnects"]) >= 1 and h["readings_accepted"] == 2 * n  # type: ignore[call-overload]

        collector.wait_for(health_done, "health: the reconnect and every reading accepted")
        assert d.terminate() == 0, d.log()
    finally:
        d.kill()
        pub.close()
        collector.close()


def test_sigterm_snapshot_and_restart_restores_state(
    mosquitto: Mosquitto, golden_model: Path, tmp_path: Path
) -> None:
    p = unique_prefix("state")
    state_dir = tmp_path / "state"
    collector = Collector(mosquitto.host, mosquitto.port, [f"{p}/out/#"])
    args = [*base_args(mosquitto, golden_model, p), "--state-dir", str(state_dir)]
    pub = Publisher(mosquitto.host, mosquitto.port)
    n = 12
    d = DaemonProcess(args, tmp_path)
    try:
        collector.wait_for(lambda: bool(collector.on(f"{p}/out/status")), "daemon online")
        for i in range(6):
            for s in range(2):
                pub.send(f"{p}/in/s{s}", payload(s, i))
        wait_final(collector, p, 2, 6, d)
        assert d.terminate() == 0, d.log()
        assert (state_dir / "state.snapshot").is_file()
        assert retained(mosquitto.host, mosquitto.port, f"{p}/out/status") == b"offline"
        d = DaemonProcess(args, tmp_path)
        collector.wait_for(
            lambda: collector.on(f"{p}/out/status")[-1].payload == b"online", "back online"
        )
        d.proc.send_signal(signal.SIGHUP)  # reload the (same) model: states must be kept
        collector.wait_for(lambda: "sensor states kept" in d.log(), "model reload")
        for i in range(6, n):
            for s in range(2):
                pub.send(f"{p}/in/s{s}", payload(s, i))
        wait_final(collector, p, 2, n, d)
        for s in range(2):
            docs = check_forecasts(forecasts_on(collector, p, s), expected(golden_model, s, n))
            # Restored, not restarted: the step count runs on across the restart, and the
            # values equal a Forecaster that never stopped.
            steps = [doc["steps_seen"] for doc in docs]
            assert steps == sorted(steps) and steps[-1] == n - 1
        assert d.terminate() == 0, d.log()
    finally:
        d.kill()
        pub.close()
        collector.close()


def test_corrupt_snapshot_is_set_aside_and_no_broker_is_not_fatal(
    golden_model: Path, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "state.snapshot").write_bytes(b"not a snapshot")
    from .mosquitto import free_port

    args = ["--broker", f"127.0.0.1:{free_port()}", "--model", str(golden_model),
            "--state-dir", str(state_dir), "--reconnect-max-s", "1"]  # fmt: skip
    d = DaemonProcess(args, tmp_path)
    try:
        deadline = time.monotonic() + 30
        while "discarding state snapshot" not in d.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "discarding state snapshot" in d.log()
        assert d.proc.poll() is None, d.log()  # still running without a broker
        assert d.terminate() == 0, d.log()
        assert list(state_dir.glob("state.snapshot.bad-*"))
        assert (state_dir / "state.snapshot").is_file()  # the fresh one written at shutdown
    finally:
        d.kill()


def test_tls_and_password_and_a_refused_login(
    mosquitto_factory: Callable[..., Mosquitto], broker_pki: Pki, golden_model: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    users = {"edge": "daemon-secret", "obs": "observer-secret"}
    broker = mosquitto_factory(users=users, tls=broker_pki, require_client_cert=True)
    p = unique_prefix("tls")
    pki = broker_pki

    def tls_client(client: paho.Client) -> None:
        client.tls_set(ca_certs=str(pki.ca_cert), certfile=str(pki.client_cert),
                       keyfile=str(pki.client_key))  # fmt: skip
        client.username_pw_set("obs", users["obs"])

    collector = Collector(broker.host, broker.port, [f"{p}/out/#"], setup=tls_client)
    secret = tmp_path / "password"
    secret.write_text("daemon-secret\n")
    tls_args = ["--tls-ca", str(pki.ca_cert), "--tls-cert", str(pki.client_cert),
                "--tls-key", str(pki.client_key), "--username", "edge"]  # fmt: skip
    d = DaemonProcess(
        [*base_args(broker, golden_model, p), *tls_args, "--password-file", str(secret)], tmp_path
    )
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    bad = DaemonProcess(
        [*base_args(broker, golden_model, f"{p}-bad"), *tls_args, "--password-file", str(wrong)],
        tmp_path,
    )
    pub = Publisher(broker.host, broker.port, setup=tls_client)
    try:
        collector.wait_for(lambda: bool(collector.on(f"{p}/out/status")), "daemon online over TLS")
        pub.send(f"{p}/in/s0", payload(0, 0))
        pub.send(f"{p}/in/s0", payload(0, 1))
        wait_counts(collector, p, 1, 1, d)
        collector.wait_for(lambda: "refused" in bad.log(), "the wrong password refused")
        assert bad.proc.poll() is None  # keeps retrying, not counted as connected
        assert "connected to" not in bad.log()
        assert d.terminate() == 0 and bad.terminate() == 0
    finally:
        d.kill()
        bad.kill()
        pub.close()
        collector.close()
