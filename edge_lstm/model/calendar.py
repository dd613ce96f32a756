"""Calendar covariates of a step time: local wall-clock time of day, day of week, day of year.

Pure: :mod:`zoneinfo` (stdlib) and numpy; correct across DST changes and in any IANA zone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

Float64Array = npt.NDArray[np.float64]

CALENDAR_KINDS = ("time_of_day", "day_of_week", "day_of_year")
DAY_S = 86_400.0
YEAR_DAYS = 365.25


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``ValueError`` names it if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def utc_offsets_s(times_s: npt.ArrayLike, timezone_name: str) -> Float64Array:
    """UTC offset (seconds, DST included) of ``timezone_name`` at each epoch time."""
    times = np.asarray(times_s, dtype=np.float64)
    tz = zone(timezone_name)
    if tz.key == "UTC":
        return np.zeros(times.shape)
    if times.size == 1:  # one sensor or one shared clock: the daemon's common case, no unique
        return np.full(times.shape, _offset_s(float(times.reshape(-1)[0]), tz))
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
    if not calendar:
        return np.empty((times.size, 0))
    # A batch of sensors usually shares one step time: compute each distinct time once.
    if times.size > 1 and (times == times[0]).all():
        one = _calendar(times[:1], calendar, timezone_name)
        return np.repeat(one, times.size, axis=0)
    if times.size > 64:
        unique, inverse = np.unique(times, return_inverse=True)
        if unique.size * 4 < times.size:
            return _calendar(unique, calendar, timezone_name)[inverse]
    return _calendar(times, calendar, timezone_name)


def _calendar(times: Float64Array, calendar: Sequence[str], timezone_name: str) -> Float64Array:
    out = np.empty((times.size, 2 * len(calendar)), dtype=np.float64)
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
