"""Bounded soak: a steady stream for a while, resident memory and queue depth sampled over time.

Fails when memory keeps growing after warm-up or the intake queue builds up. CI runs it for
``SOAK_S`` seconds; ``EDGE_LSTM_SOAK_S=3600`` runs an hour on demand (same bounds).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest

from edge_lstm.model.metadata import ModelMeta
from edge_lstm.mqttkit.broker import Mosquitto
from edge_lstm.mqttkit.clients import unique_prefix
from edge_lstm.mqttkit.rig import Rig
from tests.expected import (
    BASE_TS,
    reading_payload,
    series,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SOAK_S = float(os.environ.get("EDGE_LSTM_SOAK_S", "40"))
N_SENSORS = 100
ROUNDS_PER_S = 5.0  # 500 readings/s: a busy Pi-sized deployment
SAMPLE_S = 1.0
# Python's allocator and the interpreter's arenas settle within the warm-up; after that a leak
# of even 100 bytes per reading would show as ~2 MiB per minute at this rate.
RSS_GROWTH_BYTES = 6 * 2**20
QUEUE_BOUND = 2_000


def test_memory_and_queue_stay_flat(
    mosquitto: Mosquitto, golden_model: Path, tmp_path: Path
) -> None:
    meta = ModelMeta.load(golden_model.with_suffix(".json"))
    prefix = unique_prefix("soak")
    ids = [f"soak-{i:03d}" for i in range(N_SENSORS)]
    pattern = series(N_SENSORS, 64, meta.n_features)
    rig = Rig(
        mosquitto, golden_model, tmp_path, prefix, state_dir=tmp_path / "state", durability="wal",
        snapshot_interval_s=5.0, health_interval_s=SAMPLE_S, log_level="WARNING",
    )  # fmt: skip
    daemon, observer, publisher = rig.daemon, rig.observer, rig.publisher
    samples: list[tuple[float, int, int]] = []  # (elapsed s, rss bytes, queue depth)
    try:
        rig.start()
        start = time.monotonic()
        next_sample = start
        rounds = int(SOAK_S * ROUNDS_PER_S)
        for k in range(rounds):
            target = start + k / ROUNDS_PER_S
            time.sleep(max(0.0, target - time.monotonic()))
            ts = BASE_TS + k * meta.step_s
            for i, sensor in enumerate(ids):
                payload = reading_payload(pattern[i, k % pattern.shape[1]], ts)
                publisher.publish(f"{prefix}/s/{sensor}", payload)
            now = time.monotonic()
            if now >= next_sample:
                with observer.lock:
                    depth = int(observer.health.get("queue_depth", 0))
                samples.append((now - start, daemon.rss(), depth))
                next_sample = now + SAMPLE_S
        assert daemon.alive, daemon.log()[-3000:]
        health = observer.fresh_health()
        assert health["queue_dropped"] == 0 and health["publish_dropped"] == 0, health
        assert health["sensors_active"] == N_SENSORS, health
        assert health["forecasts_published"] > N_SENSORS * rounds / 2, health
        assert daemon.terminate() == 0
    finally:
        rig.close()

    steady = samples[len(samples) // 4 :]  # after warm-up
    third = max(1, len(steady) // 3)
    early = statistics.median(rss for _, rss, _ in steady[:third])
    late = statistics.median(rss for _, rss, _ in steady[-third:])
    report = [(round(t), rss // 2**20, q) for t, rss, q in samples]
    assert late - early < RSS_GROWTH_BYTES, f"RSS grew {(late - early) / 2**20:.1f} MiB: {report}"
    depths = [q for _, _, q in steady]
    assert max(depths) < QUEUE_BOUND, f"queue built up: {report}"
    print(f"soak {SOAK_S:.0f}s: (s, RSS MiB, queue) {report}")
