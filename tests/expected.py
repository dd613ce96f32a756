"""What the daemon must publish: test series, their payloads, and the forecasts an
uninterrupted in-process run gives (the real interpreter), to compare a daemon's output with.

The MQTT side (broker, clients, the daemon process, the observer) is ``edge_lstm.mqttkit``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_lstm.mqttkit.daemon import DaemonProcess
from edge_lstm.mqttkit.observer import Observer
from edge_lstm.stream.timestamps import parse_timestamp

# 2024-01-01T00:00:00Z: inside messages.MIN_TS..MAX_TS and aligned to any step that divides a day.
BASE_TS = 1_704_067_200.0


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
    return round((parse_timestamp(doc["last_obs_at"]) - BASE_TS) / step_s)


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
