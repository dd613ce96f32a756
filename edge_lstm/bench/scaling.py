"""``edge-lstm bench --only scaling``: what ``broker_state`` and ``shard`` cost, as ratios.

Three daemons in one run against one Mosquitto, each given the same backlog (``sensors x
rounds`` QoS 1 readings published into its session while it is stopped, as in the e2e bench):

1. **plain**: ``edge-lstm run`` as it ships; readings/s from ``online`` to the last forecast.
2. **broker_state**: the same with ``--broker-state --snapshot-interval-s 1``: readings/s as a
   ratio to plain, the state publishes per second during the run and the bytes of one sensor's
   state message.
3. **other_shard**: ``--shard I/N`` with a shard that owns none of the backlog's sensors, so
   every reading is skipped: skipped readings/s (to the forecast of two owned readings queued
   after the backlog) as a ratio to plain's readings/s.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ..errors import BrokerError
from ..model.metadata import ModelMeta, sidecar_path
from ..mqttkit.broker import Address, broker_at
from ..mqttkit.clients import Publisher, Recorder, wait_until
from ..stream.shard import shard_of
from .e2e import Progress, _wait_all_reached
from .harness import BenchDaemon, future_start, publish
from .publish import sensor_ids
from .report import ratio

SNAPSHOT_INTERVAL_S = 1.0
SKIP_SHARDS = 1000  # the config's largest N: some shard then owns none of the bench's sensors


def run_scaling(
    model_path: Path,
    broker: str | None = None,
    sensors: int = 1000,
    rounds: int = 20,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The JSON-able ``scaling`` section of the bench report."""
    say = progress or (lambda _m: None)
    step_s = ModelMeta.load(sidecar_path(model_path)).step_s
    total = sensors * rounds
    owned = {shard_of(s, SKIP_SHARDS) for s in sensor_ids(sensors)}
    idle = next(i for i in range(SKIP_SHARDS) if i not in owned)
    with (
        tempfile.TemporaryDirectory(prefix="edge-lstm-bench-") as tmp,
        broker_at(broker, Path(tmp)) as (address, broker_desc),
    ):
        work = Path(tmp)
        say(f"scaling: plain daemon, backlog of {total} readings")
        plain = _forecast_run(model_path, address, work, sensors, rounds, step_s, {})
        say(f"scaling: broker_state, backlog of {total} readings")
        with_state: dict[str, object] = {
            "broker_state": True,
            "snapshot_interval_s": SNAPSHOT_INTERVAL_S,
        }
        state = _forecast_run(model_path, address, work, sensors, rounds, step_s, with_state)
        say(f"scaling: shard {idle}/{SKIP_SHARDS} (owns none), backlog of {total} readings")
        skip = _skip_run(model_path, address, work, sensors, rounds, step_s, idle)
    section = state["health"].get("scaling", {}).get("broker_state") or {}
    published = int(section.get("published", 0))
    return {
        "broker": broker_desc,
        "sensors": sensors,
        "readings": total,
        "plain_rate_per_s": plain["rate_per_s"],
        "broker_state": {
            "snapshot_interval_s": SNAPSHOT_INTERVAL_S,
            "rate_per_s": state["rate_per_s"],
            "vs_plain": ratio(state["rate_per_s"], plain["rate_per_s"]),
            "state_publishes": published,
            "state_publishes_per_s": ratio(published, state["elapsed_s"]),
            "bytes_per_sensor": ratio(section.get("published_bytes"), published),
        },
        "other_shard": {
            "shard": f"{idle}/{SKIP_SHARDS}",
            "skipped": skip["skipped"],
            "rate_per_s": skip["rate_per_s"],
            "vs_plain": ratio(skip["rate_per_s"], plain["rate_per_s"]),
        },
    }


def _forecast_run(
    model: Path, address: Address, work: Path, sensors: int, rounds: int, step_s: float,
    settings: dict[str, object],
) -> dict[str, Any]:  # fmt: skip
    """A backlog through a daemon: readings/s from ``online`` to every sensor's last forecast."""
    daemon = BenchDaemon(model, address, work, max_sensors=sensors, **settings)
    out = Recorder(address, [f"{daemon.prefix}/out/+/forecast"]).start()
    try:
        daemon.stop()
        start_ts = future_start(step_s)
        publish(address, daemon.input_topic, sensors, rounds, start_ts, step_s)
        online_at = daemon.start()
        last_step = start_ts - step_s / 2 + (rounds - 2) * step_s
        done_at = _wait_all_reached(out, sensors, last_step, timeout_s=300)
        elapsed = done_at - online_at if done_at else None
        health = daemon.health(after_s=1.0)
    finally:
        out.close()
        daemon.close()
    return {
        "rate_per_s": ratio(sensors * rounds, elapsed),
        "elapsed_s": elapsed,
        "health": health,
    }


def _skip_run(
    model: Path, address: Address, work: Path, sensors: int, rounds: int, step_s: float,
    idle_shard: int,
) -> dict[str, Any]:  # fmt: skip
    """A backlog through a daemon that owns none of it: skipped readings/s.

    Two readings of a sensor it owns follow the backlog in the session: their forecast marks
    the moment every skipped reading before them has been taken.
    """
    own = next(f"z{i}" for i in range(100_000) if shard_of(f"z{i}", SKIP_SHARDS) == idle_shard)
    daemon = BenchDaemon(
        model, address, work, max_sensors=sensors, shard=f"{idle_shard}/{SKIP_SHARDS}"
    )
    out = Recorder(address, [f"{daemon.prefix}/out/{own}/forecast"]).start()
    total = sensors * rounds
    try:
        daemon.stop()
        start_ts = future_start(step_s)
        publish(address, daemon.input_topic, sensors, rounds, start_ts, step_s)
        marker = Publisher(address)
        for k in range(2):  # the second closes the first's step: one forecast
            ts = start_ts + (rounds + k) * step_s
            marker.publish(daemon.input_topic.format(sensor=own), f'{{"value": 1, "ts": {ts}}}')
        if marker.close(flush_timeout_s=30.0):
            raise BrokerError("the broker did not take the skip bench's last readings")
        online_at = daemon.start()
        if not wait_until(lambda: out.count() > 0, 300.0):
            raise BrokerError(f"the skipping daemon did not get through {total} readings")
        done_at = out.snapshot()[0].at
    finally:
        out.close()
        daemon.close()
    return {"skipped": total, "rate_per_s": ratio(total, done_at - online_at)}


def format_scaling(section: dict[str, Any]) -> list[str]:
    """The human lines of the ``scaling`` section."""
    state, skip = section["broker_state"], section["other_shard"]

    def num(value: object, fmt: str = ",.0f") -> str:
        return "n/a" if value is None else format(value, fmt)

    return [
        f"scaling ({section['broker']}), {section['sensors']} sensors, "
        f"{section['readings']} readings each run:",
        f"  plain daemon {num(section['plain_rate_per_s'])} readings/s",
        f"  broker_state (snapshot every {state['snapshot_interval_s']:g} s): "
        f"{num(state['rate_per_s'])} readings/s ({num(state['vs_plain'], '.0%')} of plain), "
        f"{num(state['state_publishes_per_s'])} state publishes/s, "
        f"{num(state['bytes_per_sensor'])} bytes per sensor",
        f"  other_shard skipping (shard {skip['shard']}): {num(skip['rate_per_s'])} readings/s "
        f"({num(skip['vs_plain'], '.1f')}x plain)",
    ]
