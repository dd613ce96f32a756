"""Hostile traffic at volume through a real Mosquitto to a running daemon (hypothesis-generated).

Random bytes, huge payloads, deep or huge JSON, NaN/inf/strings/booleans as values, timestamps
far in the past or future, non-UTF-8 bytes, odd and wildcard-like sensor ids and floods of new
sensor ids, interleaved with three well-behaved sensors. Afterwards: the daemon is alive, within
its caps (sensors, queue, memory), every message it received is either accepted or counted as
rejected by reason, and the well-behaved sensors' forecasts are those of a clean run.

Topic names that are not valid MQTT (invalid UTF-8, wildcards in a publish) never reach the
daemon: the broker refuses them at the protocol level, and paho refuses to send them.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from edge_lstm.model.metadata import ModelMeta
from edge_lstm.mqttkit.broker import Mosquitto
from edge_lstm.mqttkit.clients import unique_prefix, wait_until
from edge_lstm.mqttkit.daemon import DaemonProcess, daemon_settings
from edge_lstm.mqttkit.observer import Observer
from edge_lstm.mqttkit.rig import Rig
from tests.expected import (
    BASE_TS,
    expected_forecasts,
    iso_of_step,
    mismatches,
    reading_payload,
    series,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

GOOD = ["good-0", "good-1", "good-2"]
ROUNDS = 30
MAX_SENSORS = 40
MAX_PAYLOAD_BYTES = 1024
QUEUE_SIZE = 20_000
RSS_GROWTH_BYTES = 64 * 2**20

# Characters mosquitto accepts in a topic level (it drops a client that publishes control
# characters, non-characters or wildcards), so every hostile message is actually delivered.
id_chars = st.characters(
    codec="utf-8", exclude_categories=("Cc", "Cs", "Cn"), exclude_characters="/+#"
)
hostile_ids = st.one_of(
    st.text(id_chars, min_size=1, max_size=12),
    st.sampled_from(["$SYS", "$share", " lead", "trail ", "..", "%2B", "\uff0b", "\uff03", "é"]),
    st.text(id_chars, min_size=130, max_size=200),  # longer than the 128-byte id limit
    st.integers(0, 10**6).map(lambda i: f"new-{i}"),  # floods of fresh ids
)
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)
good_ts = st.integers(0, 10**6).map(lambda k: BASE_TS + 60.0 * k)
json_scalar = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "true", "false", "null"]),
    st.sampled_from(['"21.5"', '"x"', "[]", "{}", "[1]", "[1,2,3]"]),
    finite.map(repr),
)
bad_ts = st.sampled_from(
    ["0", "-1e12", "1e15", "1.7e12", '"1970-01-01"', '"9999-12-31T00:00:00Z"', '"soon"', "true"]
)
payloads = st.one_of(
    st.binary(max_size=64),  # random bytes
    st.binary(min_size=MAX_PAYLOAD_BYTES + 1, max_size=4 * MAX_PAYLOAD_BYTES),
    st.just(b"9" * 256 * 1024),  # huge
    st.integers(50, 5000).map(lambda n: b'{"value":' + b"[" * n + b"]" * n + b"}"),  # deep
    st.builds(lambda v, t: f'{{"value": {v}, "ts": {t}}}'.encode(), json_scalar, good_ts.map(repr)),
    st.builds(lambda v: f'{{"value": [20.0, 50.0], "ts": {v}}}'.encode(), bad_ts),
    st.just(b'{"value": [1, 2], "\xff\xfe": 3}'),  # not UTF-8
    st.just(b"\xc3\x28"),
    st.builds(lambda a, b, t: reading_payload([a, b], t), finite, finite, good_ts),  # valid
    st.sampled_from([b"", b"   ", b"21.5", b"nan", b"inf", b"{", b"[20, 50]", b'"20"']),
)
messages = st.lists(st.tuples(hostile_ids, payloads), min_size=40, max_size=100)
# One of each kind in every round as well, so every reason is exercised whatever is drawn.
CANONICAL: list[tuple[str, bytes]] = [
    ("canon", b"\x00\xff\xfe binary"),
    ("canon", b"1" * (MAX_PAYLOAD_BYTES + 1)),
    ("canon", b'{"value": [[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]}'),
    ("canon", b'{"value": ' + b"[" * 100_000),  # too large and too deep at once
    ("canon", b"{not json"),
    ("canon", b'{"value": [NaN, 1]}'),
    ("canon", b'{"value": [20, 50], "ts": 1e15}'),
    ("canon", b'{"value": [20, 50], "ts": "0001-01-01T00:00:00Z"}'),
    ("$canon", b'{"value": [20, 50]}'),
    ("canon", b'{"value": [1' + b"0" * 400 + b", 50]}"),  # beyond float64: killed the worker
    ("canon", b'{"value": [20, 50], "ts": 1' + b"0" * 400 + b"}"),
    ("canon", b'{"value": [20, 50], "ts": 4070908800}'),  # 2099: far ahead of its arrival
    ("bidi\u202eid", b'{"value": [20, 50]}'),
    ("line\u2028sep", b'{"value": [20, 50]}'),
    ("x" * 200, b'{"value": [20, 50]}'),
]
# Valid readings from never-seen sensors: more per round than max_sensors.
floods = st.integers(0, 3 * MAX_SENSORS)


def test_hostile_traffic_changes_nothing_for_good_sensors(
    mosquitto: Mosquitto, golden_model: Path, tmp_path: Path
) -> None:
    meta = ModelMeta.load(golden_model.with_suffix(".json"))
    prefix = unique_prefix("fuzz")
    data = series(len(GOOD), ROUNDS, meta.n_features)
    rig = Rig(
        mosquitto, golden_model, tmp_path, prefix, state_dir=tmp_path / "state",
        health_interval_s=0.3, max_sensors=MAX_SENSORS, max_payload_bytes=MAX_PAYLOAD_BYTES,
        queue_size=QUEUE_SIZE, log_level="WARNING",
    )  # fmt: skip
    daemon, observer, publisher = rig.daemon, rig.observer, rig.publisher
    sent = [0]
    step = [0]
    try:
        rig.start()
        rss_start = daemon.rss()

        @settings(
            max_examples=ROUNDS,
            deadline=None,
            database=None,
            phases=(Phase.generate,),  # a generator of traffic here, not a shrinking target
            suppress_health_check=list(HealthCheck),
        )
        @given(messages, floods)
        def one_round(batch: list[tuple[str, bytes]], flood: int) -> None:
            k = step[0]
            if k >= ROUNDS:
                return
            for i, sensor in enumerate(GOOD):
                payload = reading_payload(data[i, k], BASE_TS + k * meta.step_s)
                publisher.publish(f"{prefix}/s/{sensor}", payload)
            for sensor_id, payload in [*batch, *CANONICAL]:
                publisher.publish(f"{prefix}/s/{sensor_id}", payload)
            for j in range(flood):
                payload = reading_payload([20.0, 50.0], BASE_TS + k * meta.step_s)
                publisher.publish(f"{prefix}/s/flood-{k}-{j}", payload)
            sent[0] += len(GOOD) + len(batch) + len(CANONICAL) + flood
            step[0] += 1

        one_round()
        assert step[0] == ROUNDS
        assert publisher.wait_all_acked(60), (
            f"broker did not take it all:\n{mosquitto.log()[-2000:]}"
        )
        last = iso_of_step(ROUNDS - 2, meta.step_s)
        assert wait_until(lambda: all(observer.has_forecast_for(s, last) for s in GOOD), 60), (
            daemon.log()[-3000:]
        )

        def settled() -> bool:
            h = observer.fresh_health()
            return bool(h["readings_accepted"] + h["readings_rejected_total"] >= sent[0])

        assert wait_until(settled, 60, 0.0), observer.health
        health = observer.fresh_health()
        assert daemon.alive, daemon.log()[-3000:]
        received = health["readings_accepted"] + health["readings_rejected_total"]
        assert received + health["queue_dropped"] == sent[0], health
        reasons = set(health["readings_rejected"])
        must = {"too_large", "binary", "bad_json", "not_finite", "bad_ts", "bad_sensor_id",
                "future"}  # fmt: skip
        assert must <= reasons and "internal_error" not in reasons, reasons
        assert health["sensors_active"] <= MAX_SENSORS, health
        assert health["queue_depth"] <= QUEUE_SIZE
        growth = daemon.rss() - rss_start
        assert growth < RSS_GROWTH_BYTES, f"RSS grew by {growth / 2**20:.1f} MiB"
        expected = expected_forecasts(golden_model, GOOD, data)
        with observer.lock:
            good_only = {s: observer.forecasts.get(s, []) for s in GOOD}
        assert all(good_only.values())
        bad = mismatches(observer, expected, meta.features, meta.step_s)
        assert bad == [], f"{len(bad)} good-sensor forecasts changed, e.g. {bad[:3]}"
        assert "Traceback" not in daemon.log()
        assert daemon.terminate() == 0
        print(json.dumps({"sent": sent[0], **health["readings_rejected"]}))
    finally:
        rig.close()


def _packet(kind: int, body: bytes) -> bytes:
    """An MQTT 3.1.1 packet: fixed header with the variable-length remaining length."""
    size, encoded = len(body), bytearray()
    while True:
        byte, size = size % 128, size // 128
        encoded.append(byte | (0x80 if size else 0))
        if not size:
            return bytes([kind]) + bytes(encoded) + body


def _string(raw: bytes) -> bytes:
    return len(raw).to_bytes(2, "big") + raw


def test_non_utf8_topic_never_reaches_the_daemon(
    mosquitto: Mosquitto, golden_model: Path, tmp_path: Path
) -> None:
    prefix = unique_prefix("rawtopic")
    daemon = DaemonProcess(
        tmp_path / "daemon",
        daemon_settings(mosquitto, golden_model, prefix, health_interval_s=0.3),
    )
    observer = Observer(mosquitto, f"{prefix}/out")
    try:
        daemon.start()
        observer.wait_online(daemon)
        # paho cannot even express this topic; a raw client can, and the broker must drop it.
        with socket.create_connection((mosquitto.host, mosquitto.port), timeout=10) as raw:
            connect = (
                _string(b"MQTT") + bytes([4, 0x02, 0, 60]) + _string(b"raw-" + prefix.encode())
            )
            raw.sendall(_packet(0x10, connect))
            assert raw.recv(4) == b"\x20\x02\x00\x00"  # CONNACK, accepted
            topic = f"{prefix}/s/".encode() + b"\xff\xfe\xc3\x28"
            raw.sendall(_packet(0x30, _string(topic) + b"21.5"))
            try:
                closed = raw.recv(16) == b""
            except ConnectionResetError:
                closed = True
        assert closed, "mosquitto accepted a publish with a non-UTF-8 topic"
        health = observer.fresh_health()
        assert health["readings_accepted"] == 0 and health["readings_rejected_total"] == 0
        assert daemon.alive and daemon.terminate() == 0
    finally:
        daemon.cleanup()
        observer.close()
