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

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # metadata imports this module: the Scaler is only a type here
    from .metadata import Scaler

FloatArray = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CALENDAR_KINDS = ("time_of_day", "day_of_week", "day_of_year")
INPUT_KEYS = ("lags", "calendar", "timezone", "level_window")
DAY_S = 86_400.0
YEAR_DAYS = 365.25


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``ValueError`` names it if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


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
        return tuple(sorted({0, *range(self.level_window), *(s - 1 for s in self.lags)}))

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


def utc_offsets_s(times_s: npt.ArrayLike, timezone_name: str) -> Float64Array:
    """UTC offset (seconds, DST included) of ``timezone_name`` at each epoch time."""
    times = np.asarray(times_s, dtype=np.float64)
    tz = zone(timezone_name)
    if tz.key == "UTC":
        return np.zeros(times.shape)
    # Steps of many sensors share a few distinct times: one zoneinfo lookup per distinct time.
    unique, inverse = np.unique(times, return_inverse=True)
    offsets = np.fromiter(
        (_offset_s(float(t), tz) for t in unique.tolist()), dtype=np.float64, count=unique.size
    )
    result: Float64Array = offsets[inverse].reshape(times.shape)
    return result


def _offset_s(t: float, tz: ZoneInfo) -> float:
    if not math.isfinite(t):
        raise ValueError(f"time {t!r} is not finite")
    offset = datetime.fromtimestamp(t, tz=timezone.utc).astimezone(tz).utcoffset()
    return 0.0 if offset is None else offset.total_seconds()


def calendar_features(
    times_s: npt.ArrayLike, calendar: Sequence[str], timezone_name: str = "UTC"
) -> Float64Array:
    """``(N, 2*len(calendar))`` (sin, cos) pairs of each epoch time, read in local time.

    ``time_of_day`` is the local wall-clock time (so 08:00 is 08:00 on either side of a DST
    change), ``day_of_week`` counts from Monday 00:00, ``day_of_year`` from 1 January 00:00
    over 365.25 days.
    """
    times = np.asarray(times_s, dtype=np.float64).reshape(-1)
    out = np.empty((times.size, 2 * len(calendar)), dtype=np.float64)
    if not calendar:
        return out
    local = times + utc_offsets_s(times, timezone_name)
    days = np.floor(local / DAY_S)
    tod = (local - days * DAY_S) / DAY_S
    for i, kind in enumerate(calendar):
        if kind == "time_of_day":
            frac = tod
        elif kind == "day_of_week":
            frac = (np.mod(days + 3.0, 7.0) + tod) / 7.0  # 1970-01-01 was a Thursday (3)
        elif kind == "day_of_year":
            day = days.astype("datetime64[D]")
            jan1 = day.astype("datetime64[Y]").astype("datetime64[D]")
            frac = ((day - jan1).astype(np.float64) + tod) / YEAR_DAYS
        else:
            raise ValueError(f"unknown calendar kind {kind!r}")
        angle = 2.0 * np.pi * frac
        out[:, 2 * i] = np.sin(angle)
        out[:, 2 * i + 1] = np.cos(angle)
    return out


def level_of(tapped: npt.ArrayLike, count: npt.ArrayLike, level_window: int) -> Float64Array:
    """Mean of each sensor's last ``min(count, level_window)`` values (0 without a level).

    ``tapped`` as for :func:`tapped_inputs` (its first ``level_window`` taps are 0, 1, 2, ...).
    """
    values = np.asarray(tapped, dtype=np.float64)
    counts = np.asarray(count, dtype=np.int64)
    if level_window == 0:
        return np.zeros((values.shape[0], values.shape[2]))
    valid = np.arange(level_window)[None, :] < counts[:, None]
    total = np.where(valid[:, :, None], values[:, :level_window], 0.0).sum(axis=1)
    level: Float64Array = total / np.maximum(np.minimum(counts, level_window), 1)[:, None]
    return level


def tapped_inputs(
    tapped: npt.ArrayLike,
    count: npt.ArrayLike,
    next_times_s: npt.ArrayLike | None,
    spec: InputSpec,
    scaler: Scaler,
) -> tuple[FloatArray, Float64Array]:
    """Input rows for ``B`` sensors at one step, and each sensor's level.

    ``tapped`` ``(B, K, F)``: for each of ``spec.taps`` (steps back from ``v_t``, 0 first), the
    value that many steps back; a tap ``b`` is valid only if ``b < count`` (the sensor has seen
    that many values). ``next_times_s`` ``(B,)``: start time of the step being predicted (read
    only when the spec has calendar kinds). The device gathers the taps straight from its ring.
    """
    values = np.asarray(tapped, dtype=np.float64)
    counts = np.asarray(count, dtype=np.int64)
    batch, _, n_features = values.shape
    latest = values[:, 0]
    taps = spec.taps
    level = level_of(values, counts, spec.level_window)
    blocks = [latest]
    for season in spec.lags:
        lagged = values[:, taps.index(season - 1)]
        blocks.append(np.where((counts >= season)[:, None], lagged, latest))
    x = np.empty((batch, spec.width(n_features)), dtype=np.float32)
    stacked = np.stack(blocks, axis=1) - level[:, None, :]
    x[:, : n_features * len(blocks)] = scaler.transform(stacked).reshape(batch, -1)
    if spec.calendar:
        if next_times_s is None:
            raise ValueError("this model's calendar inputs need the step time")
        x[:, n_features * len(blocks) :] = calendar_features(
            next_times_s, spec.calendar, spec.timezone
        )
    return x, level


def step_inputs(
    window: npt.ArrayLike,
    count: npt.ArrayLike,
    next_times_s: npt.ArrayLike | None,
    spec: InputSpec,
    scaler: Scaler,
) -> tuple[FloatArray, Float64Array]:
    """:func:`tapped_inputs` from whole windows ``(B, W, F)`` in time order, ``v_t`` last.

    ``W >= spec.history_len`` (and >= 1); ``count[b]`` of each window's last rows are valid.
    """
    values = np.asarray(window, dtype=np.float64)
    back = values.shape[1] - 1 - np.asarray(spec.taps)
    return tapped_inputs(values[:, back], count, next_times_s, spec, scaler)


def output_values(y: npt.ArrayLike, level: npt.ArrayLike, scaler: Scaler) -> Float64Array:
    """Model output ``y`` ``(…, F)`` back to original units: ``scaler.inverse(y) + level``."""
    scaled = np.asarray(y, dtype=np.float64) * np.asarray(scaler.scale) + np.asarray(scaler.mean)
    values: Float64Array = scaled + np.asarray(level, dtype=np.float64)
    return values


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
    series = np.asarray(values, dtype=np.float64)
    if series.ndim == 1:
        series = series[:, None]
    n, n_features = series.shape
    if n < 2:
        raise ValueError("a series needs at least 2 steps")
    width = max(spec.history_len, 1)
    padded = np.concatenate([np.zeros((width - 1, n_features)), series[:-1]])
    # (N-1, W, F) view: row t is steps t-W+1..t, zero padding before the series starts.
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=0).transpose(0, 2, 1)
    counts = np.minimum(np.arange(1, n), width)
    next_times = None
    if spec.calendar:
        if times_s is None:
            raise ValueError("this spec has calendar inputs: times_s is required")
        times = np.asarray(times_s, dtype=np.float64).reshape(-1)
        if times.size != n:
            raise ValueError(f"times_s has {times.size} entries, values {n}")
        next_times = times[1:]
    x, level = step_inputs(windows, counts, next_times, spec, scaler)
    y = scaler.transform(series[1:] - level)
    return x, y, level
