"""Replay recorded rows as timestamped readings: shared by ``edge-lstm replay`` and the demo.

Pure timing and formatting: the caller passes the function that sends one reading, so this module
knows nothing of MQTT. Each row's readings carry the row's own time as ``ts``, which is what lets
the daemon close an hour-long model step as soon as the next row arrives instead of an hour later.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from ..stream.documents import iso
from .csvdata import Series

DEFAULT_TOPIC = "sensors/{sensor}"
"""The daemon's default input topic template, so ``replay`` and ``run`` meet with no flags."""


def reading_payload(value: float, ts: float) -> str:
    """``{"value": 21.5, "ts": "2020-01-01T00:00:00Z"}``: the README's reading format."""
    return json.dumps({"value": value, "ts": iso(ts)})


def first_row_at(series: Series, start_ts: float | None) -> int:
    """Index of the first row at or after ``start_ts`` (0 when None); ``ValueError`` if none."""
    if start_ts is None:
        return 0
    later = (series.times >= start_ts).nonzero()[0]
    if later.size == 0:
        raise ValueError(f"the data ends at {iso(float(series.times[-1]))}, before --start")
    return int(later[0])


def replay_rows(
    series: Series,
    send: Callable[[str, float, float], None],
    speed: float,
    duration_s: float | None = None,
    on_tick: Callable[[int], None] | None = None,
    tick_s: float = 0.5,
    first_row: int = 0,
) -> int:
    """Send row after row, ``speed`` rows per second, until the data or ``duration_s`` ends.

    ``send(sensor, ts, value)`` is called for each reading (a missing one, NaN, is skipped);
    ``on_tick(rows_sent)`` every ``tick_s``. Pacing follows the schedule, not the previous send,
    so a slow send does not make the replay drift. Returns the number of rows sent.
    """
    start = time.monotonic()
    next_tick = start + tick_s
    rows = 0
    times = series.times[first_row:].tolist()
    values = series.values[first_row:].tolist()
    for t, row in zip(times, values, strict=True):
        if duration_s is not None and time.monotonic() - start >= duration_s:
            break
        due = start + rows / speed
        while (now := time.monotonic()) < due:
            time.sleep(min(due - now, 0.05))
        for sensor, value in zip(series.columns, row, strict=True):
            if value == value:  # NaN: a missing reading is simply not sent
                send(sensor, t, value)
        rows += 1
        if on_tick is not None and time.monotonic() >= next_tick:
            on_tick(rows)
            next_tick = time.monotonic() + tick_s
    return rows
