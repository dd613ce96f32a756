"""A stream for the golden model (2 features, 60 s step): readings one step apart, and the
forecasts an in-process ``Forecaster`` gives on them, for the daemon's output to equal.

Shared by the end-to-end tests (a real broker, the daemon as a process) and the in-process
service tests (``FakeLink``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edge_lstm.model.forecaster import Forecaster
from edge_lstm.stream.documents import iso

BASE_TS = 1_700_000_040  # a multiple of the golden model's 60 s step
STEP_S = 60
FORECAST_KEYS = {"sensor", "issued_at", "last_obs_at", "step_s", "status", "steps_seen", "model",
                 "features", "forecast"}  # fmt: skip


def step_iso(i: int) -> str:
    """``last_obs_at`` of the forecast issued after step ``i``."""
    return iso(BASE_TS + STEP_S * i)


def reading(sensor: int, i: int) -> tuple[float, float]:
    return (
        round(20 + 3 * math.sin(i / 3 + sensor), 3),
        round(50 + 5 * math.cos(i / 4 + sensor), 3),
    )


def payload(sensor: int, i: int) -> str:
    t, h = reading(sensor, i)
    ts = BASE_TS + STEP_S * i
    if i % 2:  # both accepted shapes: named fields and a value list, epoch and ISO ts
        return json.dumps({"temperature": t, "humidity": h, "ts": iso(ts)})
    return json.dumps({"value": [t, h], "ts": ts})


def expected(model: Path, sensor: int, n: int) -> dict[str, np.ndarray]:
    """last_obs_at -> the (H, 2) forecast an in-process Forecaster gives after that step."""
    fc = Forecaster.load(model)
    out = {}
    for i in range(n):
        fc.observe("s", reading(sensor, i))
        out[step_iso(i)] = fc.forecast("s")
    return out


def values(doc: dict[str, Any]) -> np.ndarray:
    return np.array([[s["v"]["temperature"], s["v"]["humidity"]] for s in doc["forecast"]])


def check_forecasts(
    docs: Iterable[dict[str, Any]], want: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    """Every document has the full set of keys and the in-process values; the documents."""
    docs = list(docs)
    for doc in docs:
        assert set(doc) == FORECAST_KEYS
        assert doc["last_obs_at"] in want, doc["last_obs_at"]
        np.testing.assert_allclose(values(doc), want[doc["last_obs_at"]], atol=1e-4)
    return docs
