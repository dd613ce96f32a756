"""Resident memory of ``edge-lstm run`` idle and with N active sensors (Linux ``/proc``).

One daemon process; sensors are added in increasing counts (each gets three readings, so it has
a state and has been forecast), and RSS is read once the daemon reports them all active and has
had ``SETTLE_S`` to finish: the steady state between steps, after the follow-up heap trims that
come a second apart while work comes and once after it stops (``daemon/heap.py``). The peak
(``VmHWM``) so far is recorded beside it: what the burst of readings itself took. Also the size
of one row of the sensor table: a warm sensor's steady state.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..model.metadata import ModelMeta, sidecar_path
from ..mqttkit.broker import broker_at
from .harness import BenchDaemon, future_start, publish

ROUNDS = 3
SETTLE_S = 3.0


def run_memory(
    model_path: Path,
    broker: str | None = None,
    counts: Sequence[int] = (100, 10_000),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The JSON-able ``memory`` section: RSS idle and at each sensor count."""
    say = progress or (lambda _m: None)
    meta = ModelMeta.load(sidecar_path(model_path))
    start_ts = future_start(meta.step_s)
    largest = max(counts)
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="edge-lstm-mem-") as tmp,
        broker_at(broker, Path(tmp)) as (address, broker_desc),
    ):
        daemon = BenchDaemon(model_path, address, Path(tmp), max_sensors=largest)
        try:
            time.sleep(1.0)  # let start-up allocations settle before the idle reading
            idle = daemon.rss_bytes()
            first_round = 0
            for count in sorted(counts):
                say(f"memory: {count} active sensors")
                publish(
                    address, daemon.input_topic, count, ROUNDS, start_ts, meta.step_s,
                    first_round=first_round,
                )  # fmt: skip
                first_round += ROUNDS
                health = _wait_active(daemon, count)
                time.sleep(SETTLE_S)
                rows.append(
                    {
                        "sensors": count,
                        "sensors_active": health.get("sensors_active"),
                        "rss_bytes": daemon.rss_bytes(),
                        "peak_rss_bytes": daemon.peak_rss_bytes(),
                    }
                )
        finally:
            daemon.close()
    for row in rows:
        row["rss_mib"] = row["rss_bytes"] / 2**20
        row["peak_rss_mib"] = row["peak_rss_bytes"] / 2**20
        row["bytes_per_sensor_over_idle"] = (row["rss_bytes"] - idle) / row["sensors"]
    return {
        "broker": broker_desc,
        "idle_rss_bytes": idle,
        "idle_rss_mib": idle / 2**20,
        "rows": rows,
        "table_bytes_per_sensor": table_bytes_per_sensor(model_path),
    }


def table_bytes_per_sensor(model_path: Path) -> int:
    """Bytes of one sensor's row in the daemon's sensor table with this model: what a warm
    sensor holds for good (the rows above measure young sensors, whose unused pages stay
    untouched)."""
    from ..daemon.config import Config
    from ..daemon.pipeline import Pipeline
    from ..model.forecaster import Forecaster

    config = Config.load(overrides={"max_sensors": 1})
    pipeline = Pipeline(Forecaster.load(model_path, max_sensors=1), config)
    return pipeline.table.store.nbytes_per_sensor()


def _wait_active(daemon: BenchDaemon, count: int, timeout_s: float = 120.0) -> dict[str, Any]:
    health, _ = daemon.health_until(lambda h: int(h.get("sensors_active", 0)) >= count, timeout_s)
    return health
