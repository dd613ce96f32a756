"""Validation of what callers hand the forecasters: readings, horizons, step times.

Pure: every problem is a ``ValueError`` naming the sensor (or the argument) at fault.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

Value = float | Sequence[float] | npt.NDArray[Any]
MAX_HORIZON = 10_000


def as_vector(sensor_id: str, value: Value, n_features: int) -> npt.NDArray[np.float64]:
    """One reading as a float64 vector of length ``n_features``; ``ValueError`` names the sensor.

    Only real numbers pass: strings (even "1.5"), booleans and None are refused.
    """
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        array = np.asarray(None)
    if array.dtype.kind not in "fiu":
        raise ValueError(f"sensor {sensor_id!r}: value {value!r} is not numeric")
    vector = array.astype(np.float64).reshape(-1)
    if vector.size != n_features:
        raise ValueError(f"sensor {sensor_id!r}: expected {n_features} value(s), got {vector.size}")
    if not np.isfinite(vector).all():
        raise ValueError(f"sensor {sensor_id!r}: value {value!r} is not finite")
    return vector


_PLAIN = {float, int}


def as_matrix(
    values: Mapping[str, Value], ids: Sequence[str], n_features: int
) -> npt.NDArray[np.float64]:
    """All readings of a batch as an ``(N, F)`` float64 array, validated as ``as_vector`` does.

    One numpy conversion for the whole batch; only when that finds a problem is each value
    checked on its own, to name the sensor at fault.
    """
    items = list(map(values.__getitem__, ids))
    kinds = set(map(type, items))
    # numpy is slow to discover the shape of a list of tuples (what the resampler hands in):
    # flatten plain Python numbers first. Types are checked exactly, so bools and strings
    # take the checked path below and are refused there.
    if kinds == {tuple}:
        flat = list(chain.from_iterable(items))  # type: ignore[arg-type]
        if len(flat) == len(items) * n_features and set(map(type, flat)) <= _PLAIN:
            items = flat  # type: ignore[assignment]
    try:
        array = np.asarray(items)
    except (TypeError, ValueError):  # ragged lists
        array = np.asarray(None)
    if array.dtype.kind in "fiu" and array.size == len(ids) * n_features:
        matrix = array.astype(np.float64).reshape(len(ids), n_features)
        if array.ndim <= 2 and np.isfinite(matrix).all():
            return matrix
    return np.stack([as_vector(s, values[s], n_features) for s in ids])


def check_horizon(horizon: int) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)):
        raise ValueError(f"horizon must be an integer, got {horizon!r}")
    if not 1 <= horizon <= MAX_HORIZON:
        raise ValueError(f"horizon must be between 1 and {MAX_HORIZON}, got {horizon}")
    return int(horizon)


Time = float | datetime
"""A step's start time: epoch seconds, or an aware ``datetime``."""
At = Time | Mapping[str, Time] | None
"""``at`` of ``observe_batch``: one time for the whole batch, a time per sensor, or None."""


def epoch_s(value: object, sensor_id: str | None = None) -> float:
    """A step time as epoch seconds; naive datetimes, bools, strings and non-finite refused."""
    who = f"sensor {sensor_id!r}: " if sensor_id is not None else ""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{who}at {value!r} is a naive datetime; give a time zone")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{who}at {value!r} is not epoch seconds or an aware datetime")
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"{who}at {value!r} is not finite")
    return seconds


def step_times(at: At, ids: Sequence[str]) -> npt.NDArray[np.float64] | None:
    """``at`` as one epoch time per id (None if not given)."""
    if at is None:
        return None
    if not isinstance(at, Mapping):
        return np.full(len(ids), epoch_s(at))
    try:  # the daemon's case: plain floats for every sensor, converted in one call
        times = np.fromiter(map(at.__getitem__, ids), dtype=np.float64, count=len(ids))
        if np.isfinite(times).all() and set(map(type, at.values())) <= {float, int}:
            return times
    except (KeyError, TypeError, ValueError):
        pass
    out = np.empty(len(ids))
    for i, sensor_id in enumerate(ids):
        if sensor_id not in at:
            raise ValueError(f"sensor {sensor_id!r}: no time in at")
        out[i] = epoch_s(at[sensor_id], sensor_id)
    return out
