"""The daemon's per-sensor fields as named arrays: one sensor's row, to move it between daemons.

Pure numpy. The model's columns (LSTM state, history ring, band calibration) come from the
forecaster's :class:`~edge_lstm.model.state.StateStore`; the daemon adds its clock and the
sensor's open bucket. Scalars are 0-d arrays, a missing value (no open bucket, no closed
step yet) is NaN, so every field has a fixed shape and dtype for a given model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..stream.resample import Track

Row = dict[str, np.ndarray[Any, Any]]

_F64 = np.dtype(np.float64)
_I64 = np.dtype(np.int64)


def daemon_layout(n_features: int) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
    """``(shape, dtype)`` of each field the daemon keeps besides the model's columns."""
    return {
        "clock_offset_s": ((), _F64),
        "heard_at": ((), _F64),
        "bucket_open": ((), _F64),
        "bucket_sums": ((n_features,), _F64),
        "bucket_count": ((), _I64),
        "last_closed": ((), _F64),
        "last_ts": ((), _F64),
    }


def _optional(value: int | None) -> np.ndarray[Any, Any]:
    return np.array(math.nan if value is None else float(value))


def track_fields(track: Track | None, n_features: int) -> Row:
    """A track as named arrays (a sensor without one: nothing open, nothing closed)."""
    if track is None:
        track = Track(None, [], 0, None, -math.inf)
    sums = track.sums if track.sums else [0.0] * n_features
    return {
        "bucket_open": _optional(track.open_bucket),
        "bucket_sums": np.array(sums, dtype=np.float64),
        "bucket_count": np.array(track.count, dtype=np.int64),
        "last_closed": _optional(track.last_closed),
        "last_ts": np.array(track.last_ts, dtype=np.float64),
    }


def track_of(fields: Mapping[str, np.ndarray[Any, Any]]) -> Track | None:
    """The track ``track_fields`` wrote (None when it holds no progress at all)."""
    last_ts = float(fields["last_ts"])
    if not math.isfinite(last_ts):
        return None
    open_bucket = float(fields["bucket_open"])
    last_closed = float(fields["last_closed"])
    is_open = math.isfinite(open_bucket)
    return Track(
        int(open_bucket) if is_open else None,
        [float(v) for v in fields["bucket_sums"]] if is_open else [],
        int(fields["bucket_count"]) if is_open else 0,
        int(last_closed) if math.isfinite(last_closed) else None,
        last_ts,
    )


def fits(
    fields: Mapping[str, object], layout: Mapping[str, tuple[tuple[int, ...], np.dtype[Any]]]
) -> bool:
    """Exactly ``layout``'s names, each an array of its shape and dtype."""
    if set(fields) != set(layout):
        return False
    for name, (shape, dtype) in layout.items():
        value = fields[name]
        if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != dtype:
            return False
    return True
