"""The model's input vector: seasonal lags, a per-sensor level, calendar covariates.

Pure numpy + :mod:`zoneinfo`. Training (``training_inputs``) and the device (``step_inputs``, one
row per sensor per step) share :func:`step_inputs`, so a model sees on the Pi exactly the rows it
was trained on. The layout of one row (see the model's metadata ``inputs``)::

    x_t = [ z(v_t) | z(lag_s) for s in lags | (sin, cos) per calendar kind of T_{t+1} ]

with ``z(v) = scaler.transform(v - level_t)`` and ``lag_s`` the value of step ``t + 1 - s``
(``v_t`` while the history is too short). The model predicts ``z(v_{t+1})``, so a forecast in
original units is ``scaler.inverse(y) + level_t`` (:func:`output_values`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .arrays import FloatArray
from .calendar import CALENDAR_KINDS, calendar_features, utc_offsets_s, zone
from .scaler import Scaler

Float64Array = npt.NDArray[np.float64]
Sum = TypeVar("Sum", float, Float64Array)
IntArray = npt.NDArray[np.int64]

__all__ = [
    "CALENDAR_KINDS",
    "InputSpec",
    "calendar_features",
    "inputs_taps_first",
    "level_of",
    "output_values",
    "running_level",
    "step_inputs",
    "tapped_inputs",
    "training_inputs",
    "utc_offsets_s",
    "z_blocks",
]

INPUT_KEYS = ("lags", "calendar", "timezone", "level_window")


@dataclass(frozen=True)
class InputSpec:
    """What a model's input vector holds beyond the observed value (metadata ``inputs``)."""

    lags: tuple[int, ...] = ()
    """Seasons in model steps (ascending, each >= 1): the value one season before the step."""
    calendar: tuple[str, ...] = ()
    """Calendar kinds of the predicted step, each a (sin, cos) pair, in ``CALENDAR_KINDS``."""
    timezone: str = "UTC"
    """IANA zone the calendar is read in (local wall-clock time, DST-correct)."""
    level_window: int = 0
    """Values ``z`` subtracts the mean of the last N values of (0: no per-sensor level)."""

    def __post_init__(self) -> None:
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in self.lags):
            raise ValueError(f"lags must be integers >= 1, got {list(self.lags)}")
        if list(self.lags) != sorted(set(self.lags)):
            raise ValueError(f"lags must be ascending without repeats, got {list(self.lags)}")
        unknown = [k for k in self.calendar if k not in CALENDAR_KINDS]
        if unknown:
            raise ValueError(
                f"unknown calendar kind {unknown[0]!r} (choose from {', '.join(CALENDAR_KINDS)})"
            )
        if len(set(self.calendar)) != len(self.calendar):
            raise ValueError("calendar kinds must not repeat")
        zone(self.timezone)
        if isinstance(self.level_window, bool) or self.level_window < 0:
            raise ValueError(f"level_window must be >= 0, got {self.level_window}")

    @property
    def history_len(self) -> int:
        """Values a sensor's history ring must hold (0: the model needs no history)."""
        return max([*self.lags, self.level_window, 0])

    @cached_property
    def taps(self) -> tuple[int, ...]:
        """Steps back from the latest value that the inputs read (0 is the latest value)."""
        return tuple(sorted({0, *(s - 1 for s in self.lags)}))

    @cached_property
    def block_taps(self) -> list[int]:
        """Index in ``taps`` of each value block of a row: ``v_t``, then each lag."""
        return [0, *(self.taps.index(s - 1) for s in self.lags)]

    @property
    def max_lag(self) -> int:
        return max(self.lags, default=0)

    @property
    def uses_time(self) -> bool:
        """Whether each step needs its time (calendar covariates)."""
        return bool(self.calendar)

    @property
    def is_plain(self) -> bool:
        """No extra input at all: the model sees ``z(v_t)`` only (a format 1 model)."""
        return not self.lags and not self.calendar and self.level_window == 0

    def to_doc(self) -> dict[str, Any]:
        """The metadata ``inputs`` object."""
        return {
            "lags": list(self.lags),
            "calendar": list(self.calendar),
            "timezone": self.timezone,
            "level_window": self.level_window,
        }

    @classmethod
    def from_doc(cls, doc: object) -> InputSpec:
        """Parse a metadata ``inputs`` object; ``ValueError`` names the key at fault."""
        if not isinstance(doc, dict):
            raise ValueError("inputs must be an object")
        unknown = sorted(set(doc) - set(INPUT_KEYS))
        if unknown:
            raise ValueError(f"inputs: unknown key {unknown[0]!r} (known: {', '.join(INPUT_KEYS)})")
        values: dict[str, Any] = {}
        for key in INPUT_KEYS:
            if key not in doc:
                continue
            value = doc[key]
            if key in ("lags", "calendar"):
                item = str if key == "calendar" else int
                ok = isinstance(value, list) and all(
                    isinstance(v, item) and not isinstance(v, bool) for v in value
                )
                value = tuple(value) if ok else value
            else:
                kind = str if key == "timezone" else int
                ok = isinstance(value, kind) and not isinstance(value, bool)
            if not ok:
                raise ValueError(f"inputs.{key}: {value!r} is not a valid {key}")
            values[key] = value
        try:
            return cls(**values)
        except ValueError as exc:
            words = {"lags": "lags", "calendar": "calendar", "zone": "timezone"}
            key = next((k for w, k in words.items() if w in str(exc)), "level_window")
            raise ValueError(f"inputs.{key}: {exc}") from exc

    def width(self, n_features: int) -> int:
        """D, the width of one input row, for ``n_features`` target features."""
        return n_features * (1 + len(self.lags)) + 2 * len(self.calendar)


PLAIN = InputSpec()


def level_sum_step(level_sum: Sum, dropped: Sum, value: Sum) -> Sum:
    """The running sum of the last N values after ``value`` enters and ``dropped`` leaves
    (arrays, or floats: one sensor's).

    Training and the device both go through this one expression, so their levels agree to
    the bit (a running sum costs O(1) per step where a window sum costs O(N)).
    """
    return (level_sum - dropped) + value


def running_level(series: npt.ArrayLike, level_window: int) -> Float64Array:
    """``level_t`` ``(N, F)`` of a series: the mean of its last ``min(t+1, N)`` values."""
    values = np.asarray(series, dtype=np.float64)
    level = np.zeros(values.shape)
    if level_window == 0:
        return level
    total = np.zeros(values.shape[1:])
    zero = np.zeros(values.shape[1:])
    for t in range(len(values)):
        dropped = values[t - level_window] if t >= level_window else zero
        total = level_sum_step(total, dropped, values[t])
        level[t] = total / min(t + 1, level_window)
    return level


def level_of(window: npt.ArrayLike, count: npt.ArrayLike, level_window: int) -> Float64Array:
    """Mean of the last ``min(count, level_window)`` rows of windows ``(B, W, F)`` (newest last).

    The plain definition, for reference and tests: the device and ``training_inputs`` keep a
    running sum (:func:`level_sum_step`), equal to this within float rounding.
    """
    values = np.asarray(window, dtype=np.float64)
    counts = np.asarray(count, dtype=np.int64)
    if level_window == 0:
        return np.zeros((values.shape[0], values.shape[2]))
    tail = values[:, values.shape[1] - level_window :]
    valid = np.arange(level_window)[None, :] >= (level_window - counts)[:, None]
    total = np.where(valid[:, :, None], tail, 0.0).sum(axis=1)
    level: Float64Array = total / np.maximum(np.minimum(counts, level_window), 1)[:, None]
    return level


def tapped_inputs(
    tapped: npt.ArrayLike,
    count: npt.ArrayLike,
    level: npt.ArrayLike,
    next_times_s: npt.ArrayLike | None,
    spec: InputSpec,
    scaler: Scaler,
    calendar_rows: npt.ArrayLike | None = None,
) -> FloatArray:
    """Input rows ``(B, D)`` for ``B`` sensors at one step.

    ``tapped`` ``(B, K, F)``: for each of ``spec.taps`` (steps back from ``v_t``, 0 first), the
    value that many steps back; a tap ``b`` is valid only if ``b < count`` (the sensor has seen
    that many values). ``level`` ``(B, F)``: each sensor's ``level_t``. ``next_times_s``
    ``(B,)``: start time of the step being predicted (read only when the spec has calendar
    kinds), or ``calendar_rows``: their calendar features, already computed (broadcast to
    ``B`` rows). The device gathers the taps from its ring.
    """
    values = np.asarray(tapped, dtype=np.float64)
    return inputs_taps_first(
        values.transpose(1, 2, 0), count, level, next_times_s, spec, scaler, calendar_rows
    )


def inputs_taps_first(
    taps: Float64Array,
    count: npt.ArrayLike | None,
    level: npt.ArrayLike,
    next_times_s: npt.ArrayLike | None,
    spec: InputSpec,
    scaler: Scaler,
    calendar_rows: npt.ArrayLike | None = None,
) -> FloatArray:
    """:func:`tapped_inputs` with the taps as ``(K, F, B)``: the layout its arithmetic uses.

    With the batch innermost every operation runs one long loop per block rather than a loop
    of K*F elements per sensor (several times faster on a batch); one transposing copy at the
    end gives the ``(B, D)`` rows.
    """
    n_features, batch = taps.shape[1:]
    blocks = z_blocks(taps[spec.block_taps], count, level, spec, scaler)  # a copy of the taps
    x = np.empty((spec.width(n_features), batch), dtype=np.float32)
    values_end = blocks.shape[0] * n_features
    x[:values_end] = blocks.reshape(values_end, batch)
    if spec.calendar:
        if calendar_rows is None:
            if next_times_s is None:
                raise ValueError("this model's calendar inputs need the step time")
            calendar_rows = calendar_features(next_times_s, spec.calendar, spec.timezone)
        x[values_end:] = np.asarray(calendar_rows).T
    rows: FloatArray = np.ascontiguousarray(x.T)
    return rows


def z_blocks(
    blocks: Float64Array,
    count: npt.ArrayLike | None,
    level: npt.ArrayLike,
    spec: InputSpec,
    scaler: Scaler,
) -> Float64Array:
    """The value part of the rows, in place: ``blocks`` ``(1 + lags, F, B)`` (``v_t``, then each
    lag, original units) become ``z(v - level_t)``; returns ``blocks``.

    ``count``: values each sensor has seen (a lag it has not seen yet is ``v_t``), or None
    when the caller knows every lag exists. Training and the device both come through here.
    """
    if spec.lags and count is not None:
        counts = np.asarray(count)
        if counts.min() < spec.lags[-1]:  # a missing lag (history too short) is v_t
            for i, season in enumerate(spec.lags, start=1):
                short = counts < season
                blocks[i][:, short] = blocks[0][:, short]
    # z(v - level) for every value-like block, in one pass: (v - (level + mean)) / scale
    shift = np.asarray(level, dtype=np.float64).T + scaler.mean_array[:, None]
    blocks -= shift
    blocks /= scaler.scale_array[:, None]
    return blocks


def step_inputs(
    window: npt.ArrayLike,
    count: npt.ArrayLike,
    next_times_s: npt.ArrayLike | None,
    spec: InputSpec,
    scaler: Scaler,
) -> tuple[FloatArray, Float64Array]:
    """Reference input rows and levels from whole windows ``(B, W, F)`` in time order.

    ``W >= spec.history_len`` (and >= 1); ``count[b]`` of each window's last rows are valid.
    The level is :func:`level_of` (equal to the device's running level within rounding).
    """
    values = np.asarray(window, dtype=np.float64)
    back = values.shape[1] - 1 - np.asarray(spec.taps)
    level = level_of(values, count, spec.level_window)
    return tapped_inputs(values[:, back], count, level, next_times_s, spec, scaler), level


def output_values(y: npt.ArrayLike, level: npt.ArrayLike, scaler: Scaler) -> Float64Array:
    """Model output ``y`` ``(…, F)`` back to original units: ``scaler.inverse(y) + level``."""
    values: Float64Array = np.asarray(y, dtype=np.float64) * scaler.scale_array
    values += np.asarray(level, dtype=np.float64) + scaler.mean_array
    return values


def as_kept(values: npt.ArrayLike) -> Float64Array:
    """``values`` as a sensor's history keeps them (``history.HistoryRing``): rounded to
    float32, computed on as float64."""
    kept: Float64Array = np.asarray(values, dtype=np.float32).astype(np.float64)
    return kept


def training_inputs(
    values: npt.ArrayLike,
    times_s: npt.ArrayLike | None,
    spec: InputSpec,
    scaler: Scaler,
) -> tuple[FloatArray, FloatArray, Float64Array]:
    """Teacher-forced ``(x, y, level)`` for one regular series, as the device builds them.

    ``values`` ``(N, F)`` are consecutive model steps (original units) starting at ``times_s``
    ``(N,)`` (epoch seconds; may be None when the spec has no calendar). Row ``t`` of the result
    is the device's input after observing step ``t`` (``x``, ``(N-1, D)``), the target
    ``z(v_{t+1}) = scaler.transform(v_{t+1} - level_t)`` (``y``, ``(N-1, F)``) and ``level_t``
    (``(N-1, F)``). The first rows of a series follow the device's rules for a new sensor
    (missing lag: ``v_t``; level over the values seen so far).
    """
    series = as_kept(values)  # rounded as the device's history rounds them
    if series.ndim == 1:
        series = series[:, None]
    n, n_features = series.shape
    if n < 2:
        raise ValueError("a series needs at least 2 steps")
    width = max(spec.max_lag, 1)
    padded = np.concatenate([np.zeros((width - 1, n_features)), series[:-1]])
    # (N-1, W, F) view: row t is steps t-W+1..t, zero padding before the series starts.
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=0).transpose(0, 2, 1)
    back = width - 1 - np.asarray(spec.taps)
    counts = np.arange(1, n)
    next_times = None
    if spec.calendar:
        if times_s is None:
            raise ValueError("this spec has calendar inputs: times_s is required")
        times = np.asarray(times_s, dtype=np.float64).reshape(-1)
        if times.size != n:
            raise ValueError(f"times_s has {times.size} entries, values {n}")
        next_times = times[1:]
    level = running_level(series[:-1], spec.level_window)
    x = tapped_inputs(windows[:, back], counts, level, next_times, spec, scaler)
    y = ((series[1:] - (level + scaler.mean_array)) / scaler.scale_array).astype(np.float32)
    return x, y, level
