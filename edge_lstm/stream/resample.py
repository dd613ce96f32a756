"""From timestamped readings to model steps: the one path shared by the daemon and ``evaluate``.

Pure: no IO, no clock (the caller passes ``now``). Buckets are ``[k*step_s, (k+1)*step_s)``,
aligned to the epoch. A bucket closes when a reading for a later bucket arrives, on the wall
clock (``close_due``), or at the end of a replay (``flush``). Each closed bucket becomes one
``observe`` event with the mean of its readings; missing buckets between two closed ones become
``fill`` events (up to ``max_gap_steps``) or a single ``reset`` (a longer gap).
"""

from __future__ import annotations

import math
from array import array
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from ..errors import PayloadError


class LateReading(PayloadError):
    """A reading older than one already accepted for the sensor."""

    def __init__(self, message: str) -> None:
        super().__init__("late", message)


class DuplicateReading(PayloadError):
    """A reading with the same timestamp as the sensor's last accepted one."""

    def __init__(self, message: str) -> None:
        super().__init__("duplicate", message)


@dataclass(frozen=True, slots=True)
class Reading:
    """One validated sensor reading: ``values`` in original units, ``ts`` in epoch seconds."""

    sensor_id: str
    values: tuple[float, ...]
    ts: float

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError(f"sensor {self.sensor_id!r}: a reading needs at least one value")
        if not all(math.isfinite(v) for v in self.values):
            raise ValueError(f"sensor {self.sensor_id!r}: values must be finite")
        if not math.isfinite(self.ts):
            raise ValueError(f"sensor {self.sensor_id!r}: timestamp must be finite")


@dataclass(frozen=True, slots=True)
class StepEvent:
    """What one sensor's state must do for one model step."""

    sensor_id: str
    kind: Literal["observe", "fill", "reset"]
    bucket_start: float
    values: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Track:
    """One sensor's bucketing progress, as plain values."""

    open_bucket: int | None
    sums: list[float]
    count: int
    last_closed: int | None
    last_ts: float


TrackState = tuple[int | None, list[float], int, int | None, float]
"""``Track``'s fields in order."""

_FRESH: TrackState = (None, [], 0, None, -math.inf)


_NONE = -(2**63)
"""``open_bucket``/``last_closed`` of a track that has none (bucket numbers are far above)."""


class _Rows:
    """Every track's fields, unboxed: one row of preallocated arrays per sensor.

    A track held as Python objects (a float per sum and timestamp, replaced at every reading)
    costs ~350 bytes a sensor and scatters long-lived objects among each batch's temporaries,
    which keeps the allocator's arenas from being returned. Rows are items of memoryviews:
    Python ints and floats in and out, the same float64 arithmetic, 40 bytes a sensor (one
    feature), over numpy zeros so that rows never used are never touched (``max_sensors`` may
    be a million).
    """

    def __init__(self, capacity: int, n_features: int) -> None:
        self.n_features = n_features
        self.open = _ints(capacity)
        self.closed = _ints(capacity)
        self.count = _ints(capacity)
        self.last_ts = _floats(capacity)
        self.sums = _floats(capacity * n_features)
        self.free: list[int] = []  # rows given back; never used rows start at ``unused``
        self.unused = 0

    def take(self, state: TrackState) -> int:
        """A free row holding ``state``."""
        if self.free:
            row = self.free.pop()
        else:
            row, self.unused = self.unused, self.unused + 1
        self.put(row, state)
        return row

    def put(self, row: int, state: TrackState) -> None:
        open_bucket, sums, count, last_closed, last_ts = state
        self.open[row] = _NONE if open_bucket is None else int(open_bucket)
        self.closed[row] = _NONE if last_closed is None else int(last_closed)
        self.count[row] = int(count)
        self.last_ts[row] = float(last_ts)
        f = self.n_features
        # a closed track's sums are unused (and empty)
        self.sums[row * f : row * f + f] = array(
            "d", sums if open_bucket is not None else [0.0] * f
        )

    def get(self, row: int) -> TrackState:
        open_bucket, last_closed = self.open[row], self.closed[row]
        f = self.n_features
        return (
            None if open_bucket == _NONE else open_bucket,
            list(map(float, self.sums[row * f : row * f + f])) if open_bucket != _NONE else [],
            self.count[row],
            None if last_closed == _NONE else last_closed,
            self.last_ts[row],
        )


def _ints(n: int) -> memoryview[int]:
    return np.zeros(n, dtype=np.int64).data.cast("B").cast("q")


def _floats(n: int) -> memoryview[float]:
    return np.zeros(n, dtype=np.float64).data.cast("B").cast("d")


class Resampler:
    """Per-sensor bucketing of readings into model steps (mean aggregation)."""

    def __init__(
        self,
        step_s: float,
        n_features: int,
        max_gap_steps: int = 3,
        grace_s: float = 0.0,
        max_sensors: int = 10_000,
    ) -> None:
        if step_s <= 0 or max_gap_steps < 0 or grace_s < 0 or max_sensors < 1:
            raise ValueError("step_s > 0, max_gap_steps >= 0, grace_s >= 0, max_sensors >= 1")
        self.step_s = step_s
        self.n_features = n_features
        self.max_gap_steps = max_gap_steps
        self.grace_s = grace_s
        self.max_sensors = max_sensors
        # sensor -> its row, least recently updated first (a dict, not an OrderedDict: that
        # allocates a node per key; moving a key to the end is a pop and an insert)
        self._tracks: dict[str, int] = {}
        self._rows = _Rows(max_sensors, n_features)

    def __len__(self) -> int:
        return len(self._tracks)

    def bucket_of(self, ts: float) -> int:
        return math.floor(ts / self.step_s)

    def add(self, reading: Reading) -> list[StepEvent]:
        """Accept a reading; returns the events it causes. Late/duplicate: raises, no change."""
        if len(reading.values) != self.n_features:
            raise PayloadError(
                "wrong_length",
                f"sensor {reading.sensor_id!r}: expected {self.n_features} value(s), "
                f"got {len(reading.values)}",
            )
        rows = self._rows
        row = self._tracks.get(reading.sensor_id)
        bucket = self.bucket_of(reading.ts)
        if row is not None:
            last_ts, last_closed = rows.last_ts[row], rows.closed[row]
            if reading.ts == last_ts:
                raise DuplicateReading(f"sensor {reading.sensor_id!r}: duplicate ts {reading.ts}")
            if reading.ts < last_ts or (last_closed != _NONE and bucket <= last_closed):
                raise LateReading(f"sensor {reading.sensor_id!r}: late reading ts {reading.ts}")
        else:
            if len(self._tracks) >= self.max_sensors:
                self._evict()
            row = rows.take(_FRESH)
        self._tracks.pop(reading.sensor_id, None)
        self._tracks[reading.sensor_id] = row  # the most recently updated
        events: list[StepEvent] = []
        open_bucket = rows.open[row]
        if open_bucket != _NONE and bucket > open_bucket:
            events.append(self._close(reading.sensor_id, row))
            open_bucket = _NONE
        f = self.n_features
        at = row * f
        if open_bucket == _NONE:
            events += self._gap(reading.sensor_id, row, bucket)
            rows.open[row], rows.count[row] = bucket, 0
            rows.sums[at : at + f] = array("d", [0.0] * f)
        sums = rows.sums
        for i, v in enumerate(reading.values):
            sums[at + i] = sums[at + i] + v
        rows.count[row] += 1
        rows.last_ts[row] = reading.ts
        return events

    def _close(self, sensor_id: str, row: int) -> StepEvent:
        rows, f = self._rows, self.n_features
        bucket = rows.open[row]
        assert bucket != _NONE
        count = rows.count[row]
        mean = tuple(s / count for s in rows.sums[row * f : row * f + f].tolist())
        rows.open[row], rows.closed[row], rows.count[row] = _NONE, bucket, 0
        return StepEvent(sensor_id, "observe", bucket * self.step_s, mean)

    def _gap(self, sensor_id: str, row: int, bucket: int) -> list[StepEvent]:
        rows = self._rows
        last_closed = rows.closed[row]
        if last_closed == _NONE:
            return []
        missing = bucket - last_closed - 1
        if missing <= 0:
            return []
        if missing > self.max_gap_steps:
            rows.closed[row] = _NONE
            return [StepEvent(sensor_id, "reset", bucket * self.step_s)]
        first = last_closed + 1
        rows.closed[row] = bucket - 1
        return [StepEvent(sensor_id, "fill", (first + i) * self.step_s) for i in range(missing)]

    def close_due(
        self, now: float, clock_offset_s: Mapping[str, float] | None = None
    ) -> list[StepEvent]:
        """Close open buckets whose end plus ``grace_s`` has passed on the wall clock.

        ``clock_offset_s`` gives a sensor's own clock as ``now - offset`` (arrival time minus
        reading time), so a replay of old data with timestamps is not cut into one-reading steps.
        """
        return self.close(self.due(now, clock_offset_s))

    def close(self, sensor_ids: Sequence[str]) -> list[StepEvent]:
        """Close the open buckets of ``sensor_ids`` (each one from ``due``)."""
        return [self._close(s, self._tracks[s]) for s in sensor_ids]

    def due(self, now: float, clock_offset_s: Mapping[str, float] | None = None) -> list[str]:
        """The sensors ``close_due`` would close now (nothing changes)."""
        offsets = clock_offset_s or {}
        step_s, grace_s = self.step_s, self.grace_s
        opened = self._rows.open
        return [
            sensor_id
            for sensor_id, row in self._tracks.items()
            if opened[row] != _NONE
            and (opened[row] + 1) * step_s + grace_s <= now - offsets.get(sensor_id, 0.0)
        ]

    def __contains__(self, sensor_id: object) -> bool:
        return sensor_id in self._tracks

    def least_recent(self) -> str | None:
        """The sensor updated least recently (the next to be evicted), or None if empty."""
        return next(iter(self._tracks), None)

    def flush(self) -> list[StepEvent]:
        """Close every open bucket (the end of a replay)."""
        opened = self._rows.open
        return [
            self._close(sensor_id, row)
            for sensor_id, row in self._tracks.items()
            if opened[row] != _NONE
        ]

    def _evict(self) -> None:
        """Forget the least recently updated sensor."""
        self.forget(next(iter(self._tracks)))

    def forget(self, sensor_id: str) -> None:
        row = self._tracks.pop(sensor_id, None)
        if row is not None:
            self._rows.free.append(row)

    def clear(self) -> None:
        """Forget every sensor."""
        for sensor_id in list(self._tracks):
            self.forget(sensor_id)

    def ids(self) -> list[str]:
        """Sensors with a track, least recently updated first."""
        return list(self._tracks)

    def track(self, sensor_id: str) -> Track | None:
        """A copy of a sensor's bucketing progress (None if unknown)."""
        state = self.state_of(sensor_id)
        return None if state is None else Track(*state)

    def state_of(self, sensor_id: str) -> TrackState | None:
        """A sensor's progress as a plain tuple (``set_state`` puts it back)."""
        row = self._tracks.get(sensor_id)
        return None if row is None else self._rows.get(row)

    def set_state(self, sensor_id: str, state: TrackState | None) -> None:
        """Put back what ``state_of`` returned (None: the sensor had no track)."""
        if state is None:
            self.forget(sensor_id)
            return
        row = self._tracks.get(sensor_id)
        if row is None:
            self._tracks[sensor_id] = self._rows.take(state)
        else:
            self._rows.put(row, state)

    def put_track(self, sensor_id: str, track: Track) -> None:
        """Resume a sensor from ``track``; it counts as the most recently updated."""
        if sensor_id not in self._tracks and len(self._tracks) >= self.max_sensors:
            self._evict()
        state = (track.open_bucket, list(track.sums), track.count, track.last_closed, track.last_ts)
        self.set_state(sensor_id, state)
        self._tracks[sensor_id] = self._tracks.pop(sensor_id)  # the most recently updated

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot of every sensor's open bucket and progress."""
        tracks = {}
        for sensor_id, row in self._tracks.items():
            state = self._rows.get(row)
            if math.isfinite(state[4]):
                tracks[sensor_id] = list(state)
        return {"step_s": self.step_s, "tracks": tracks}

    def restore(self, doc: Mapping[str, Any]) -> None:
        """Replace the tracks with a ``to_dict`` snapshot (ignored if the step differs)."""
        if float(doc.get("step_s", -1)) != self.step_s:
            return
        tracks: OrderedDict[str, TrackState] = OrderedDict()
        for sensor_id, (open_bucket, sums, count, last_closed, last_ts) in doc["tracks"].items():
            sums = [float(s) for s in sums]
            if open_bucket is not None and len(sums) != self.n_features:
                continue
            tracks[str(sensor_id)] = (open_bucket, sums, int(count), last_closed, last_ts)
        while len(tracks) > self.max_sensors:
            tracks.popitem(last=False)
        self.clear()
        for sensor_id, state in tracks.items():
            self._tracks[sensor_id] = self._rows.take(state)


class _Steppable(Protocol):
    def observe_batch(
        self, values: Mapping[str, Sequence[float]], at: Mapping[str, float] | None = None
    ) -> object: ...
    def fill(self, sensor_ids: Sequence[str]) -> None: ...
    def reset(self, sensor_id: str) -> None: ...
    def steps_seen(self, sensor_id: str) -> int: ...


def apply_events(forecaster: _Steppable, events: Sequence[StepEvent]) -> dict[str, float]:
    """Apply events in per-sensor order, batched across sensors (one call per kind per round).

    Returns ``{sensor_id: bucket_start}`` of each sensor's last observed bucket: the sensors to
    forecast. A fill for a sensor the forecaster does not know (new, or evicted) is skipped.
    Each observation is passed with its bucket start as ``at`` (calendar inputs need it).
    """
    queues: dict[str, list[StepEvent]] = {}
    for event in events:
        queues.setdefault(event.sensor_id, []).append(event)
    observed: dict[str, float] = {}
    depth = max((len(q) for q in queues.values()), default=0)
    for i in range(depth):
        batch: dict[str, Sequence[float]] = {}
        times: dict[str, float] = {}
        fills: list[str] = []
        for sensor_id, queue in queues.items():
            if i >= len(queue):
                continue
            event = queue[i]
            if event.kind == "observe":
                assert event.values is not None
                batch[sensor_id] = event.values
                times[sensor_id] = observed[sensor_id] = event.bucket_start
            elif event.kind == "fill":
                if forecaster.steps_seen(sensor_id) > 0:
                    fills.append(sensor_id)
            else:
                forecaster.reset(sensor_id)
                observed.pop(sensor_id, None)
        forecaster.fill(fills)
        forecaster.observe_batch(batch, times)
    return observed
