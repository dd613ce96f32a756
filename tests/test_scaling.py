"""broker_state and shards in process: the real ``Pipeline`` with the shipped default model.

Two pipelines stand for two daemons; ``Scaling`` moves sensors between them through the same
calls the service makes (``publish_states`` through a link, ``take_states`` on a batch).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from edge_lstm.daemon.broker_state import SensorState, decode_state, encode_state
from edge_lstm.daemon.config import Config
from edge_lstm.daemon.pipeline import Outgoing, Pipeline
from edge_lstm.daemon.scaling import Scaling
from edge_lstm.errors import ConfigError
from edge_lstm.model.forecaster import Forecaster
from edge_lstm.stream.readings import Inbound
from edge_lstm.stream.shard import shard_of

T0 = 1_704_067_200.0
STEP = 3600.0
PREFIX = "edge"


class Published:
    """What ``publish_states`` sends through the link (the part of ``Link`` it uses)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, int, bool]] = []
        self.held = 0

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> bool:
        assert isinstance(payload, bytes)
        self.messages.append((topic, payload, qos, retain))
        return True

    def hold_wakeups(self) -> None:
        self.held += 1

    def release_wakeups(self) -> None:
        self.held -= 1

    def inbound(self) -> list[Inbound]:
        return [Inbound(t, p, 1, 1, time.time(), 0.0) for t, p, _, _ in self.messages]


def config(**overrides: object) -> Config:
    return Config.load(overrides={"grace_s": 1.0, "output_prefix": PREFIX, **overrides})


def daemon(model: Path, started_at: float = 0.0, **overrides: object) -> tuple[Scaling, Pipeline]:
    c = config(broker_state=True, **overrides)
    scaling = Scaling(c, started_at)
    return scaling, Pipeline(Forecaster.load(model), c, owns=scaling.owns)


def feed(p: Pipeline, sensors: list[str], steps: range) -> list[Outgoing]:
    out = []
    for k in steps:
        msgs = [
            Inbound(
                f"sensors/{s}",
                json.dumps({"value": 10.0 + np.sin(k / 4 + len(s)), "ts": T0 + k * STEP}).encode(),
                1,
                1,
                T0 + k * STEP + 5.0,
                0.0,
            )
            for s in sensors
        ]
        handled = p.handle(msgs, msgs[-1].arrival_ts)
        assert len(handled.acks) == len(msgs)
        out += handled.publish
    return out


def forecasts(out: list[Outgoing]) -> dict[str | None, object]:
    return {o.sensor_id: json.loads(o.payload)["forecast"] for o in out}


def sha(p: Pipeline) -> str:
    return p.meta.tflite_sha256


def test_states_move_to_a_fresh_daemon_and_it_goes_on_identically(default_model: Path) -> None:
    sensors = ["a", "b", "c"]
    old_scaling, old = daemon(default_model)
    feed(old, sensors, range(30))
    link = Published()
    assert old_scaling.publish_states(link, old, T0) == 3
    assert link.held == 0 and {(qos, retain) for _, _, qos, retain in link.messages} == {(1, True)}
    assert [t for t, *_ in link.messages] == [f"{PREFIX}/state/{s}" for s in sensors]
    new_scaling, new = daemon(default_model)
    rest, acks = new_scaling.take_states(link.inbound(), new, Published())
    assert rest == [] and len(acks) == 3 and new_scaling.health()["broker_state"]["imported"] == 3  # type: ignore[index]
    assert forecasts(feed(new, sensors, range(30, 34))) == forecasts(
        feed(old, sensors, range(30, 34))
    )


def test_unchanged_states_are_not_published_again(default_model: Path) -> None:
    scaling, p = daemon(default_model)
    feed(p, ["a", "b"], range(5))
    link = Published()
    assert scaling.publish_states(link, p, T0) == 2
    assert scaling.publish_states(link, p, T0 + 1) == 0
    feed(p, ["b"], range(5, 6))
    assert scaling.publish_states(link, p, T0 + 2) == 1
    assert link.messages[-1][0] == f"{PREFIX}/state/b"
    section = scaling.health()["broker_state"]
    assert isinstance(section, dict) and section["published"] == 3
    assert section["published_bytes"] == sum(len(m[1]) for m in link.messages)


def test_a_shard_publishes_and_imports_only_its_own_sensors(default_model: Path) -> None:
    sensors = [f"s{k}" for k in range(12)]
    whole_scaling, whole = daemon(default_model)
    feed(whole, sensors, range(6))
    link = Published()
    whole_scaling.publish_states(link, whole, T0)
    scaling, shard1 = daemon(default_model, shard="1/3")
    assert scaling.take_states(link.inbound(), shard1, Published())[0] == []
    mine = [s for s in sensors if shard_of(s, 3) == 1]
    assert sorted(shard1.forecaster.sensors()) == sorted(mine)
    section = scaling.health()
    assert section["shard"] == "1/3"
    assert section["broker_state"] == {
        "published": 0,
        "published_bytes": 0,
        "imported": len(mine),
        "ignored": {"other_shard": len(sensors) - len(mine)},
        "conflicts": 0,
    }
    # Its readings filter agrees: other shards' readings are skipped, counted, not rejected.
    feed(shard1, sensors, range(6, 7))
    assert shard1.counters.other_shard == len(sensors) - len(mine)
    assert not shard1.counters.rejected


def test_own_echo_is_not_a_conflict_another_daemons_newer_state_is(
    default_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scaling, p = daemon(default_model, started_at=T0)
    feed(p, ["a"], range(5))
    link = Published()
    scaling.publish_states(link, p, T0 + 10)
    scaling.take_states(link.inbound(), p, Published())  # our own message comes back
    fields = p.export_sensor("a")
    assert fields is not None
    older = encode_state("a", sha(p), fields, T0 + 5)
    newer = encode_state("a", sha(p), fields, T0 + 20)
    for payload in (older, newer):
        scaling.take_states([Inbound(f"{PREFIX}/state/a", payload, 1, 1, 0, 0)], p, Published())
    section = scaling.health()["broker_state"]
    assert isinstance(section, dict)
    assert section["ignored"] == {"held": 2} and section["conflicts"] == 1
    assert "reach two daemons" in caplog.text


def test_readings_wait_for_the_sync_marker_then_go_on_in_order(default_model: Path) -> None:
    # A resumed session delivers its queued readings before the retained states: held back
    # (unacknowledged) until our marker returns after the states, then released in order.
    scaling, p = daemon(default_model)
    link = Published()
    first = [Inbound("sensors/a", b"1.5", 1, 1, T0, 0.0), Inbound("sensors/b", b"2", 2, 1, T0, 0)]
    junk_state = Inbound(f"{PREFIX}/state/a", b"junk", 3, 1, T0, 0.0)
    assert scaling.take_states([*first, junk_state], p, link) == ([], [(3, 1)])
    [(marker, _, qos, retain)] = link.messages  # published once, on the first batch
    assert marker.startswith(f"{PREFIX}/state/$sync-") and (qos, retain) == (1, False)
    later = Inbound("sensors/a", b"1.6", 4, 1, T0, 0.0)
    assert scaling.take_states([later], p, link) == ([], [])
    back = Inbound(marker, b"", 5, 1, T0, 0.0)
    other_marker = Inbound(f"{PREFIX}/state/$sync-0123456789ab", b"", 6, 1, T0, 0.0)
    last = Inbound("sensors/b", b"2.1", 7, 1, T0, 0.0)
    released = scaling.take_states([other_marker, back, last], p, link)
    assert released == ([*first, later, last], [(6, 1), (5, 1)])
    assert scaling.take_states([later], p, link) == ([later], [])  # synced: straight through
    section = scaling.health()["broker_state"]
    assert isinstance(section, dict) and section["ignored"] == {"garbage": 1}
    assert len(link.messages) == 1


def test_without_broker_state_nothing_is_held_or_published(default_model: Path) -> None:
    c = config()
    scaling, link = Scaling(c, 0.0), Published()
    p = Pipeline(Forecaster.load(default_model), c)
    reading = Inbound("sensors/a", b"1.5", 1, 1, T0, 0.0)
    assert scaling.take_states([reading], p, link) == ([reading], [])
    assert scaling.publish_states(link, p, T0) == 0
    assert link.messages == [] and scaling.health()["broker_state"] is None


def test_a_state_that_does_not_fit_the_model_is_ignored(default_model: Path) -> None:
    scaling, p = daemon(default_model)
    payload = encode_state("a", sha(p), {"state": np.zeros(3, np.float32)}, T0)
    assert isinstance(decode_state(payload, sha(p), "a"), SensorState)  # intact, just unfit
    scaling.take_states([Inbound(f"{PREFIX}/state/a", payload, 1, 1, T0, 0.0)], p, Published())
    section = scaling.health()["broker_state"]
    assert isinstance(section, dict) and section["ignored"] == {"unfit": 1}
    assert "a" not in p.forecaster.sensors()


def test_subscriptions_shared_group_and_state_filter() -> None:
    plain = Scaling(config(), 0.0)
    assert plain.subscriptions(["sensors/+"]) == ["sensors/+"] and plain.owns is None
    shared = Scaling(config(shared_group="forecasters", broker_state=True), 0.0)
    assert shared.subscriptions(["sensors/+", "x/+/y"]) == [
        "$share/forecasters/sensors/+",
        "$share/forecasters/x/+/y",
        f"{PREFIX}/state/+",  # never shared: every member sees every state
    ]
    assert shared.health() == {
        "shard": "0/1",
        "shared_group": "forecasters",
        "broker_state": shared.exchange.as_dict() if shared.exchange else None,
    }


def test_shared_group_and_shards_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="use one of them"):
        Scaling(config(shared_group="g", shard="0/2"), 0.0)
