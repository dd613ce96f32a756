"""Past one Pi, end to end: real Mosquitto, several ``edge-lstm run`` processes, real paho clients.

Every test runs an uninterrupted reference daemon (``shard = 0/1``, no broker state) on the same
stream next to the daemons under test: whatever the sharding, re-sharding or replacing, each
sensor's forecasts must equal the reference's, value for value.

Readings carry ``ts`` one model step apart, published one step at a time: each reading closes
its sensor's previous bucket, so step ``i`` gives the forecast "as of step i - 1".
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_lstm.daemon.broker_state import SensorState, decode_state, encode_state
from edge_lstm.model.forecaster import Forecaster
from edge_lstm.mqttkit.broker import Mosquitto
from edge_lstm.mqttkit.clients import Publisher, Recorder, unique_prefix, wait_until
from edge_lstm.mqttkit.daemon import DaemonProcess
from edge_lstm.stream.documents import iso
from edge_lstm.stream.shard import shard_of

pytestmark = [pytest.mark.broker, pytest.mark.slow]

BASE_TS = 1_700_000_040  # a multiple of the golden model's 60 s step
STEP_S = 60
WAIT_S = 120.0  # generous: up to seven daemons and a broker on a loaded 2-core CI box


def payload(sensor: str, i: int) -> str:
    k = sum(map(ord, sensor))
    t, h = 20 + 3 * math.sin(i / 3 + k), 50 + 5 * math.cos(i / 4 + k)
    return json.dumps({"value": [round(t, 3), round(h, 3)], "ts": BASE_TS + STEP_S * i})


class Forecasts:
    """Every forecast and health document under ``p/<out>/...``, indexed as they arrive."""

    def __init__(self, broker: Mosquitto, p: str) -> None:
        self.p = p
        self.recorder = Recorder(broker, [f"{p}/+/+/forecast", f"{p}/+/health"]).start()
        self._seen = 0
        # (out, sensor) -> last_obs_at -> documents (one per publish: a duplicate shows)
        self.docs: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
        self.health: dict[tuple[str, str], dict[str, Any]] = {}  # (out, shard) -> latest

    def _update(self) -> None:
        new = self.recorder.snapshot()[self._seen :]  # one thread (the test) reads
        self._seen += len(new)
        for m in new:
            parts = m.topic[len(self.p) + 1 :].split("/")
            doc = m.json()
            if parts[-1] == "health":
                self.health[(parts[0], doc["scaling"]["shard"])] = doc
            else:
                by_step = self.docs.setdefault((parts[0], parts[1]), {})
                by_step.setdefault(doc["last_obs_at"], []).append(doc)

    def of(self, out: str, sensor: str) -> dict[str, list[dict[str, Any]]]:
        self._update()
        return self.docs.get((out, sensor), {})

    def has(self, out: str, sensor: str, step: int) -> bool:
        return iso(BASE_TS + STEP_S * step) in self.of(out, sensor)

    def wait(self, outs: Sequence[str], sensors: Sequence[str], step: int, *d: Daemon) -> None:
        """Until each sensor's forecast as of ``step`` arrived under one of ``outs``."""

        def done() -> bool:
            return all(any(self.has(o, s, step) for o in outs) for s in sensors)

        try:
            wait_for(done, f"forecasts as of step {step} on {outs}", WAIT_S)
        except AssertionError as exc:
            missing = [s for s in sensors if not any(self.has(o, s, step) for o in outs)]
            logs = "\n".join(x.log()[-3000:] for x in d)
            raise AssertionError(f"{exc}: missing {missing[:10]}\n{logs}") from None

    def latest(self, out: str, shard: str) -> dict[str, Any]:
        """The latest health document of daemon ``shard`` under ``p/<out>``."""
        self._update()
        return self.health.get((out, shard), {})

    def wait_health(self, out: str, shard: str, key: str, want: object, *d: Daemon) -> None:
        def done() -> bool:
            self._update()
            doc = self.health.get((out, shard))
            return doc is not None and _dig(doc, key) == want

        try:
            wait_for(done, f"{out} shard {shard}: {key} == {want}", WAIT_S)
        except AssertionError as exc:
            got = _dig(self.health.get((out, shard), {}), key)
            logs = "\n".join(x.log()[-3000:] for x in d)
            raise AssertionError(f"{exc} (got {got!r})\n{logs}") from None

    def close(self) -> None:
        self.recorder.close()


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    if not wait_until(predicate, timeout_s):
        raise AssertionError(f"timed out waiting for {what}")


def _dig(doc: dict[str, Any], dotted: str) -> object:
    value: Any = doc
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


class Daemon(DaemonProcess):
    """``edge-lstm run`` reading ``p/in/{sensor}`` and publishing under ``p/<out>``."""

    def __init__(
        self, broker: Mosquitto, model: Path, p: str, out: str, work: Path, *extra: str,
        client_id: str | None = None,
    ) -> None:  # fmt: skip
        args = [
            "--broker", broker.url, "--model", str(model),
            "--client-id", client_id or f"d-{uuid.uuid4().hex[:8]}",
            "--topic", f"{p}/in/{{sensor}}", "--output-prefix", f"{p}/{out}",
            "--health-interval-s", "0.5", "--reconnect-max-s", "2", "--log-level", "INFO",
            "--max-sensors", "1000", *extra,
        ]  # fmt: skip
        super().__init__(work, args=args)
        self.start()


def publish_step(pub: Publisher, p: str, sensors: Sequence[str], i: int) -> None:
    for s in sensors:
        pub.publish(f"{p}/in/{s}", payload(s, i))
    assert pub.wait_all_acked(), "the broker did not acknowledge the readings"


def assert_same(
    got: dict[str, list[dict[str, Any]]], want: dict[str, list[dict[str, Any]]]
) -> None:
    """Each forecast in ``got`` exactly once, with the reference's values and steps seen."""
    assert got, "no forecasts"
    for last_obs_at, docs in got.items():
        assert len(docs) == 1, f"{len(docs)} forecasts as of {last_obs_at}"
        ref = want[last_obs_at][0]
        assert docs[0]["forecast"] == ref["forecast"], last_obs_at
        assert docs[0]["steps_seen"] == ref["steps_seen"], last_obs_at


def stop_cleanly(*daemons: Daemon) -> None:
    """SIGTERM each; a clean stop exits 0 (and, with broker_state, has published every state)."""
    for d in daemons:
        assert d.terminate() == 0, d.log()


@dataclass
class Kit:
    """One test's broker, prefix, collector, publisher and daemons (all stopped at teardown)."""

    broker: Mosquitto
    model: Path
    tmp: Path
    p: str = field(default_factory=lambda: unique_prefix("scale"))
    daemons: list[Daemon] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.fc = Forecasts(self.broker, self.p)
        self.pub = Publisher(self.broker)

    def start(self, out: str, name: str, *args: str, client_id: str | None = None) -> Daemon:
        """A daemon publishing under ``p/<out>``, working in ``tmp/<name>``."""
        d = Daemon(
            self.broker, self.model, self.p, out, self.tmp / name, *args, client_id=client_id
        )
        self.daemons.append(d)
        return d

    def reference(self) -> Daemon:
        """The uninterrupted daemon every test compares with (``p/ref``)."""
        d = self.start("ref", "ref")
        self.health("ref", "0/1", "connected", True)
        return d

    def health(self, out: str, shard: str, key: str, want: object) -> None:
        self.fc.wait_health(out, shard, key, want, *self.daemons)

    def feed(self, sensors: Sequence[str], steps: range, outs: Sequence[Sequence[str]]) -> None:
        """Publish ``steps`` one at a time; after each, wait for its forecasts on each of ``outs``
        (several closed steps of one sensor in one batch would be coalesced into one)."""
        for i in steps:
            publish_step(self.pub, self.p, sensors, i)
            for out in outs if i else ():
                self.fc.wait(out, sensors, i - 1, *self.daemons)

    def close(self) -> None:
        for d in self.daemons:
            d.kill9()
        self.pub.close()
        self.fc.close()


@pytest.fixture
def kit(mosquitto: Mosquitto, golden_model: Path, tmp_path: Path) -> Iterator[Kit]:
    k = Kit(mosquitto, golden_model, tmp_path)
    yield k
    k.close()


def state_args(shard: str, state_dir: Path | None = None) -> tuple[str, ...]:
    return ("--broker-state", "--shard", shard) + (
        ("--state-dir", str(state_dir)) if state_dir else ()
    )


def test_three_shards_forecast_like_one_daemon_each_sensor_once(kit: Kit) -> None:
    sensors = [f"m{k}" for k in range(300)]
    kit.start("one", "one")
    for i in range(3):
        kit.start(f"sh{i}", f"sh{i}", "--shard", f"{i}/3")
    for i in range(3):
        kit.health(f"sh{i}", f"{i}/3", "connected", True)
    kit.health("one", "0/1", "connected", True)
    n = 5
    shards = ["sh0", "sh1", "sh2"]
    kit.feed(sensors, range(n), [["one"], shards])
    fc = kit.fc
    for s in sensors:
        by_daemon = {out: fc.of(out, s) for out in shards if fc.of(out, s)}
        assert list(by_daemon) == [f"sh{shard_of(s, 3)}"], (s, list(by_daemon))
        got = next(iter(by_daemon.values()))
        assert len(got) == n - 1
        assert_same(got, fc.of("one", s))
    for i in range(3):
        owned = sum(shard_of(s, 3) == i for s in sensors)
        kit.health(f"sh{i}", f"{i}/3", "readings_accepted", owned * n)
        kit.health(f"sh{i}", f"{i}/3", "readings_other_shard", (300 - owned) * n)
        kit.health(f"sh{i}", f"{i}/3", "readings_rejected_total", 0)
    stop_cleanly(*kit.daemons)


def test_a_replacement_daemon_with_an_empty_disk_resumes_warm_and_equal(kit: Kit) -> None:
    sensors = [f"r{k}" for k in range(20)]
    ref = kit.reference()
    first = kit.start("out", "a", *state_args("0/1", kit.tmp / "a" / "state"))
    kit.health("out", "0/1", "connected", True)
    kit.feed(sensors, range(5), [["out"], ["ref"]])
    stop_cleanly(first)  # every state published
    before = {s: len(kit.fc.of("out", s)) for s in sensors}
    second = kit.start("out", "b", *state_args("0/1", kit.tmp / "b" / "state"))
    kit.health("out", "0/1", "scaling.broker_state.imported", len(sensors))
    kit.feed(sensors, range(5, 8), [["out"], ["ref"]])
    for s in sensors:
        got = kit.fc.of("out", s)
        assert len(got) == before[s] + 3
        first_after = got[iso(BASE_TS + STEP_S * 4)][0]
        assert first_after["steps_seen"] == 5 and first_after["status"] == "ok"
        assert_same(got, kit.fc.of("ref", s))
    stop_cleanly(ref, second)


def test_a_replacement_resuming_the_dead_daemons_session_is_warm_too(kit: Kit) -> None:
    # Same client_id: the dead daemon's session hands the replacement the readings queued
    # while no daemon ran before the retained states; they wait for the states (sync marker).
    sensors = [f"q{k}" for k in range(20)]
    ref = kit.reference()
    client_id = f"pi-{uuid.uuid4().hex[:6]}"
    args = (*state_args("0/1"), "--snapshot-interval-s", "0.3")
    first = kit.start("out", "a", *args, client_id=client_id)
    kit.health("out", "0/1", "connected", True)
    states = Recorder(kit.broker, [f"{kit.p}/out/state/+"]).start()
    kit.feed(sensors, range(5), [["out"], ["ref"]])
    sha = Forecaster.load(kit.model).meta.tflite_sha256

    def steps(s: str) -> int:  # closed steps in the latest state published for s
        msgs = states.on(f"{kit.p}/out/state/{s}")
        state = decode_state(msgs[-1].payload, sha, s) if msgs else None
        return int(state.fields["steps"]) if isinstance(state, SensorState) else -1

    wait_for(lambda: all(steps(s) == 4 for s in sensors), "states after step 4", WAIT_S)
    states.close()
    # One more health round: the daemon has acknowledged its own states' echoes by then, so
    # the session holds none of them, only the readings queued after the crash.
    uptime = kit.fc.latest("out", "0/1")["uptime_s"]
    wait_for(
        lambda: kit.fc.latest("out", "0/1")["uptime_s"] > uptime + 0.6, "a later health", WAIT_S
    )
    first.kill9()  # a crash: nothing more is published
    kit.feed(sensors, range(5, 6), [["ref"]])  # queued in the dead daemon's session
    # Small batches, so that the queued readings do not share one batch with the states.
    second = kit.start("out", "b", *state_args("0/1"), "--batch-max", "4", client_id=client_id)
    kit.health("out", "0/1", "scaling.broker_state.imported", len(sensors))
    kit.feed(sensors, range(6, 8), [["out"], ["ref"]])
    for s in sensors:
        got = kit.fc.of("out", s)
        assert got[iso(BASE_TS + STEP_S * 4)][0]["steps_seen"] == 5  # closed by a queued reading
        assert_same(got, kit.fc.of("ref", s))
    stop_cleanly(ref, second)


def test_reshard_from_two_daemons_to_three_keeps_every_sensor_warm(kit: Kit) -> None:
    sensors = [f"x{k}" for k in range(40)]
    ref = kit.reference()
    two = [kit.start("out", f"two{i}", *state_args(f"{i}/2")) for i in range(2)]
    for i in range(2):
        kit.health("out", f"{i}/2", "connected", True)
    kit.feed(sensors, range(4), [["out"], ["ref"]])
    stop_cleanly(*two)
    three = [kit.start("out", f"three{i}", *state_args(f"{i}/3")) for i in range(3)]
    for i in range(3):
        owned = sum(shard_of(s, 3) == i for s in sensors)
        kit.health("out", f"{i}/3", "scaling.broker_state.imported", owned)
    kit.feed(sensors, range(4, 7), [["out"], ["ref"]])
    for s in sensors:
        got = kit.fc.of("out", s)
        # No cold start: the first forecast after the re-shard has seen every step so far.
        assert got[iso(BASE_TS + STEP_S * 3)][0]["steps_seen"] == 4
        assert_same(got, kit.fc.of("ref", s))
    stop_cleanly(ref, *three)


def test_bad_state_messages_are_ignored_counted_and_harmless(kit: Kit) -> None:
    mine = [s for s in (f"b{k}" for k in range(40)) if shard_of(s, 2) == 0]
    other = next(s for s in (f"b{k}" for k in range(40)) if shard_of(s, 2) == 1)
    d = kit.start("out", "d", *state_args("0/2"))
    kit.health("out", "0/2", "connected", True)
    sha = Forecaster.load(kit.model).meta.tflite_sha256
    good = encode_state(mine[1], sha, {"x": np.zeros(50, np.float32)}, 1.0)
    topic, pub = f"{kit.p}/out/state", kit.pub
    pub.publish(f"{topic}/{mine[0]}", encode_state(mine[0], "00" * 32, {}, 1.0))
    pub.publish(f"{topic}/{mine[1]}", good[: len(good) // 2])
    pub.publish(f"{topic}/{mine[2]}", b"\x00garbage\xff" * 7)
    pub.publish(f"{topic}/{mine[3]}", encode_state(mine[4], sha, {}, 1.0))
    pub.publish(f"{topic}/{other}", encode_state(other, sha, {}, 1.0))
    assert pub.wait_all_acked()
    want = {"garbage": 1, "model": 1, "other_shard": 1, "sensor": 1, "truncated": 1}
    kit.health("out", "0/2", "scaling.broker_state.ignored", want)
    kit.health("out", "0/2", "scaling.broker_state.imported", 0)
    # The daemon goes on, and those sensors start cold (nothing was imported).
    kit.feed(mine[:4], range(3), [["out"]])
    assert all(kit.fc.of("out", s)[iso(BASE_TS)][0]["steps_seen"] == 1 for s in mine[:4])
    log = d.log()
    for reason in ("truncated", "model sha256", "not a state message", "published for"):
        assert reason in log, reason
    stop_cleanly(d)


@pytest.mark.parametrize("mqtt_version", ["5", "3.1.1"])
def test_round_robin_shared_group_splits_the_stream_and_the_daemons_say_it_is_wrong(
    kit: Kit, mqtt_version: str
) -> None:
    # Mosquitto 2 shares subscriptions for MQTT 5 and 3.1.1 clients alike, and dispatches
    # round-robin: each reading reaches one member, but a sensor's readings reach both.
    sensors = ["g0", "g1", "g2"]  # odd: members alternate, so a sensor's readings go to both
    for name in ("a", "b"):
        args = ["--shared-group", "fc", "--broker-state", "--snapshot-interval-s", "0.3"]
        args += ["--state-dir", str(kit.tmp / name / "state"), "--mqtt-version", mqtt_version]
        kit.start("out", name, *args)
    health = Recorder(kit.broker, [f"{kit.p}/out/health"]).start()

    def latest() -> dict[str, dict[str, Any]]:
        docs = [m.json() for m in health.on(f"{kit.p}/out/health")]
        return {doc["state"]["dir"]: doc for doc in docs}

    try:
        wait_for(
            lambda: len(latest()) == 2 and all(d["connected"] for d in latest().values()),
            "both members connected",
        )
        n = 12
        for i in range(n):
            publish_step(kit.pub, kit.p, sensors, i)

        def split_and_warned() -> bool:
            docs = list(latest().values())
            accepted = [d["readings_accepted"] for d in docs]
            conflicts = sum(d["scaling"]["broker_state"]["conflicts"] for d in docs)
            return len(docs) == 2 and sum(accepted) == n * len(sensors) and conflicts > 0

        try:
            wait_for(split_and_warned, "readings split between members, a warning", WAIT_S)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {latest()}\n{kit.daemons[0].log()}") from None
        docs = list(latest().values())
        assert all(d["readings_accepted"] > 0 for d in docs)  # both members got readings
        assert all(d["scaling"]["shared_group"] == "fc" for d in docs)
        assert any("reach two daemons" in d.log() for d in kit.daemons)
    finally:
        health.close()
    stop_cleanly(*kit.daemons)
