"""The daemon in process: the real service, pipeline, journal and snapshots, with ``FakeLink``
in place of the broker connection (``Daemon(config, link_factory=...)``).

Only the public surface is used: messages delivered on input topics, the documents published
and the message ids acknowledged, files in the state directory. Broker behaviour itself
(reconnects, sessions, TLS) is tested against a real Mosquitto in test_daemon_e2e.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_lstm.daemon.config import Config
from edge_lstm.daemon.service import Daemon
from edge_lstm.mqttkit.fake import FakeLink, FakeLinks
from tests.golden_stream import check_forecasts, expected, payload, step_iso

PREFIX = "ip"


def make_config(golden_model: Path, state_dir: Path, **more: object) -> Config:
    return Config.load(
        None,
        {},
        {
            "broker": "127.0.0.1:1",  # never dialled: the link is a fake
            "model": golden_model,
            "topics": (f"{PREFIX}/in/{{sensor}}",),
            "output_prefix": f"{PREFIX}/out",
            "health_interval_s": 0.2,
            "state_dir": state_dir,
            **more,
        },
    )


class Running:
    """A started in-process daemon and its fake link."""

    def __init__(self, config: Config) -> None:
        self.links = FakeLinks()
        self.daemon = Daemon(config, env={}, link_factory=self.links)
        self.daemon.start()

    @property
    def link(self) -> FakeLink:
        return self.links.link

    def send(self, sensor: str, body: str | bytes) -> int:
        return self.link.deliver(f"{PREFIX}/in/{sensor}", body)

    def forecasts(self, sensor: str) -> list[dict[str, Any]]:
        return [p.json() for p in self.link.on(f"{PREFIX}/out/{sensor}/forecast")]

    def steps(self, sensor: str) -> set[str]:
        return {doc["last_obs_at"] for doc in self.forecasts(sensor)}

    def feed(self, sensors: dict[str, int], steps: range) -> list[int]:
        """One step at a time (several closed steps in one batch publish only the newest)."""
        mids = []
        for i in steps:
            mids += [self.send(name, payload(s, i)) for name, s in sensors.items()]
            if i:
                closed = step_iso(i - 1)

                def done(_link: FakeLink, closed: str = closed) -> bool:
                    return all(closed in self.steps(name) for name in sensors)

                self.link.wait_for(
                    done,
                    f"the forecasts after step {i - 1}",
                )
        return mids

    def health(self) -> dict[str, Any]:
        docs = self.link.on(f"{PREFIX}/out/health")
        return docs[-1].json() if docs else {}


@pytest.fixture
def running(golden_model: Path, tmp_path: Path) -> Iterator[Running]:
    r = Running(make_config(golden_model, tmp_path / "state"))
    try:
        yield r
    finally:
        r.daemon.stop()


def test_a_warm_sensor_gets_the_forecaster_s_forecasts(
    running: Running, golden_model: Path
) -> None:
    n = 7
    running.feed({"a": 0}, range(n))
    docs = check_forecasts(running.forecasts("a"), expected(golden_model, 0, n))
    assert [doc["steps_seen"] for doc in docs] == list(range(1, n))
    assert docs[-1]["status"] == "ok"


def test_a_bad_payload_is_refused_acked_and_touches_no_other_sensor(
    running: Running, golden_model: Path
) -> None:
    running.feed({"a": 0, "b": 1}, range(3))
    bad = running.send("a", "not a number")
    running.feed({"a": 0, "b": 1}, range(3, 6))
    assert running.link.acked_all([bad]), "the refused message was never acknowledged"
    running.link.wait_for(
        lambda _: running.health().get("readings_rejected") == {"not_a_number": 1},
        "the rejection in health",
    )
    # Both sensors' forecasts are those of a run that never saw the bad message.
    for name, s in (("a", 0), ("b", 1)):
        check_forecasts(running.forecasts(name), expected(golden_model, s, 6))


def test_a_message_is_acked_only_once_its_reading_is_in_the_journal(
    golden_model: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    r = Running(make_config(golden_model, state, durability="wal"))
    journal_at_ack: dict[int, bytes] = {}
    journals = list(state.glob("*.wal"))
    assert len(journals) == 1, journals
    original_ack = r.link.ack

    def ack(mid: int, qos: int) -> None:
        journal_at_ack[mid] = journals[0].read_bytes()
        original_ack(mid, qos)

    r.link.ack = ack  # type: ignore[method-assign]
    try:
        sensors = [f"durable-{k:02d}-x" for k in range(8)]
        mids = {r.send(name, payload(0, 0)): name for name in sensors}
        assert r.link.acked_all(list(mids)), "not every reading was acknowledged"
    finally:
        r.daemon.stop()
    for mid, name in mids.items():
        assert name.encode() in journal_at_ack[mid], f"{name} acked before it was journaled"


def test_stop_writes_the_final_snapshot_and_a_restart_resumes(
    golden_model: Path, tmp_path: Path
) -> None:
    config = make_config(golden_model, tmp_path / "state", snapshot_interval_s=3600)
    first = Running(config)
    try:
        first.feed({"a": 0}, range(5))
    finally:
        first.daemon.stop()
    assert (tmp_path / "state" / "state.snapshot").is_file()
    assert first.link.on(f"{PREFIX}/out/status")[-1].payload == b"offline"
    second = Running(config)
    try:
        second.feed({"a": 0}, range(5, 8))
    finally:
        second.daemon.stop()
    # Restored, not restarted: the step count runs on, and the values are an unbroken run's.
    docs = check_forecasts(second.forecasts("a"), expected(golden_model, 0, 8))
    assert [doc["steps_seen"] for doc in docs] == [5, 6, 7]


def test_health_is_published_retained_with_the_counters(running: Running) -> None:
    running.feed({"a": 0, "b": 1}, range(3))
    running.link.wait_for(
        lambda _: running.health().get("readings_accepted") == 6, "health counting 6 readings"
    )
    published = running.link.on(f"{PREFIX}/out/health")[-1]
    assert published.retain and published.qos == 1
    health = published.json()
    assert health["sensors_active"] == 2
    assert health["connected"] is True
    assert health["forecasts_published"] == 4
