"""From timestamped readings to model steps: the one path shared by the daemon and ``evaluate``.

Pure: no IO, no clock (the caller passes ``now``). Buckets are ``[k*step_s, (k+1)*step_s)``,
aligned to the epoch. A bucket closes when a reading for a later bucket arrives, on the wall
clock (``close_due``), or at the end of a replay (``flush``). Each closed bucket becomes one
``observe`` event with the mean of its readings; missing buckets between two closed ones become
``fill`` events (up to ``max_gap_steps``) or a single ``reset`` (a longer gap).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..errors import PayloadError


class LateReading(PayloadError):
    """A reading older than one already accepted for the sensor."""

    def __init__(self, message: str) -> None:
        super().__init__("late", message)


class DuplicateReading(PayloadError):
    """A reading with the same timestamp as the sensor's last accepted one."""

    def __init__(self, message: str) -> None:
        super().__init__("duplicate", message)


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class StepEvent:
    """What one sensor's state must do for one model step."""

    sensor_id: str
    kind: Literal["observe", "fill", "reset"]
    bucket_start: float
    values: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Track:
    """One sensor's bucketing progress, as plain values (``_Track``'s fields in order)."""

    open_bucket: int | None
    sums: list[float]
    count: int
    last_closed: int | None
    last_ts: float


TrackState = tuple[int | None, list[float], int, int | None, float]
"""``_Track``'s fields in order."""


@dataclass(slots=True)
class _Track:
    open_bucket: int | None = None
    sums: list[float] = field(default_factory=list)
    count: int = 0
    last_closed: int | None = None
    last_ts: float = -math.inf


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
        self._tracks: OrderedDict[str, _Track] = OrderedDict()

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
        track = self._tracks.get(reading.sensor_id)
        bucket = self.bucket_of(reading.ts)
        if track is not None:
            if reading.ts == track.last_ts:
                raise DuplicateReading(f"sensor {reading.sensor_id!r}: duplicate ts {reading.ts}")
            if reading.ts < track.last_ts or (
                track.last_closed is not None and bucket <= track.last_closed
            ):
                raise LateReading(f"sensor {reading.sensor_id!r}: late reading ts {reading.ts}")
        else:
            if len(self._tracks) >= self.max_sensors:
                self._tracks.popitem(last=False)  # least recently updated
            track = self._tracks[reading.sensor_id] = _Track()
        self._tracks.move_to_end(reading.sensor_id)
        events: list[StepEvent] = []
        if track.open_bucket is not None and bucket > track.open_bucket:
            events.append(self._close(reading.sensor_id, track))
        if track.open_bucket is None:
            events += self._gap(reading.sensor_id, track, bucket)
            track.open_bucket, track.sums, track.count = bucket, [0.0] * self.n_features, 0
        track.sums = [s + v for s, v in zip(track.sums, reading.values, strict=True)]
        track.count += 1
        track.last_ts = reading.ts
        return events

    def _close(self, sensor_id: str, track: _Track) -> StepEvent:
        assert track.open_bucket is not None
        bucket = track.open_bucket
        mean = tuple(s / track.count for s in track.sums)
        track.open_bucket, track.last_closed, track.sums, track.count = None, bucket, [], 0
        return StepEvent(sensor_id, "observe", bucket * self.step_s, mean)

    def _gap(self, sensor_id: str, track: _Track, bucket: int) -> list[StepEvent]:
        if track.last_closed is None:
            return []
        missing = bucket - track.last_closed - 1
        if missing <= 0:
            return []
        if missing > self.max_gap_steps:
            track.last_closed = None
            return [StepEvent(sensor_id, "reset", bucket * self.step_s)]
        first = track.last_closed + 1
        track.last_closed = bucket - 1
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
        return [
            sensor_id
            for sensor_id, track in self._tracks.items()
            if track.open_bucket is not None
            and (track.open_bucket + 1) * step_s + grace_s <= now - offsets.get(sensor_id, 0.0)
        ]

    def __contains__(self, sensor_id: object) -> bool:
        return sensor_id in self._tracks

    def least_recent(self) -> str | None:
        """The sensor updated least recently (the next to be evicted), or None if empty."""
        return next(iter(self._tracks), None)

    def flush(self) -> list[StepEvent]:
        """Close every open bucket (the end of a replay)."""
        return [
            self._close(sensor_id, track)
            for sensor_id, track in self._tracks.items()
            if track.open_bucket is not None
        ]

    def forget(self, sensor_id: str) -> None:
        self._tracks.pop(sensor_id, None)

    def clear(self) -> None:
        """Forget every sensor."""
        self._tracks.clear()

    def ids(self) -> list[str]:
        """Sensors with a track, least recently updated first."""
        return list(self._tracks)

    def track(self, sensor_id: str) -> Track | None:
        """A copy of a sensor's bucketing progress (None if unknown)."""
        t = self._tracks.get(sensor_id)
        if t is None:
            return None
        return Track(t.open_bucket, list(t.sums), t.count, t.last_closed, t.last_ts)

    def state_of(self, sensor_id: str) -> TrackState | None:
        """A sensor's progress as a plain tuple, cheaply (``set_state`` puts it back)."""
        t = self._tracks.get(sensor_id)
        # sums is replaced, never changed in place, by add and _close: no copy needed
        return None if t is None else (t.open_bucket, t.sums, t.count, t.last_closed, t.last_ts)

    def set_state(self, sensor_id: str, state: TrackState | None) -> None:
        """Put back what ``state_of`` returned (None: the sensor had no track)."""
        if state is None:
            self._tracks.pop(sensor_id, None)
        else:
            self._tracks[sensor_id] = _Track(*state)

    def put_track(self, sensor_id: str, track: Track) -> None:
        """Resume a sensor from ``track``; it counts as the most recently updated."""
        if sensor_id not in self._tracks and len(self._tracks) >= self.max_sensors:
            self._tracks.popitem(last=False)
        self._tracks[sensor_id] = _Track(
            track.open_bucket, list(track.sums), track.count, track.last_closed, track.last_ts
        )
        self._tracks.move_to_end(sensor_id)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot of every sensor's open bucket and progress."""
        return {
            "step_s": self.step_s,
            "tracks": {
                sensor_id: [t.open_bucket, t.sums, t.count, t.last_closed, t.last_ts]
                for sensor_id, t in self._tracks.items()
                if math.isfinite(t.last_ts)
            },
        }

    def restore(self, doc: Mapping[str, Any]) -> None:
        """Replace the tracks with a ``to_dict`` snapshot (ignored if the step differs)."""
        if float(doc.get("step_s", -1)) != self.step_s:
            return
        tracks: OrderedDict[str, _Track] = OrderedDict()
        for sensor_id, (open_bucket, sums, count, last_closed, last_ts) in doc["tracks"].items():
            sums = [float(s) for s in sums]
            if open_bucket is not None and len(sums) != self.n_features:
                continue
            tracks[str(sensor_id)] = _Track(open_bucket, sums, int(count), last_closed, last_ts)
        while len(tracks) > self.max_sensors:
            tracks.popitem(last=False)
        self._tracks = tracks


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
