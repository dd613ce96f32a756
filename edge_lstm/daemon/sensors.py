"""The daemon's sensor table: every per-sensor field in one slot, one eviction rule, one format.

A sensor gets a slot of the forecaster's :class:`~edge_lstm.model.state.StateStore` with its
first accepted reading and keeps it until it is evicted. Its fields are columns of that store:
the model's (LSTM state, steps seen, history ring and level, band calibration) and the
daemon's (clock offset, last heard, Home Assistant announced, running accuracy, the resampling
bucket as written at each snapshot). The live resampling bucket is the resampler's track,
owned and forgotten with the slot. So eviction (:meth:`SensorTable.forget`) frees every field
at once, a snapshot is the store's one file, and a sensor's row is the unit ``export`` and
``import`` move between daemons.

The rule at ``max_sensors``: a new sensor takes the slot of the sensor heard least recently
if that one has been silent for longer than a gap the resampler would fill (its next reading
resets it anyway); otherwise the new sensor is refused (``sensor_limit``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PayloadError
from ..model.baselines import model_season
from ..model.forecaster import Forecaster
from ..model.metadata import ModelMeta
from ..model.state import StateStore
from ..stream.resample import Resampler, Track, TrackState
from .accuracy import Accuracy
from .config import Config

Row = dict[str, np.ndarray[Any, Any]]

_HAS_TRACK, _OPEN, _CLOSED = 1, 2, 4


class _Offsets(Mapping[str, float]):
    """The clock offset column seen as ``{sensor_id: offset}`` (what the resampler reads)."""

    def __init__(self, store: StateStore, column: np.ndarray[Any, Any]) -> None:
        self._store, self._column = store, column

    def __getitem__(self, sensor_id: str) -> float:
        slot = self._store.slot(sensor_id)
        if slot is None:
            raise KeyError(sensor_id)
        return float(self._column[slot])

    def __iter__(self) -> Iterator[str]:
        return iter(self._store.ids())

    def __len__(self) -> int:
        return len(self._store)


@dataclass
class Undo:
    """How to put back what a batch changed (``SensorTable.remember``, ``keep_rows``)."""

    before: dict[str, tuple[TrackState | None, float, float]] = field(default_factory=dict)
    """Each known sensor's bucket, clock offset and last-heard time before the batch."""
    new: dict[str, None] = field(default_factory=dict)
    """Sensors the batch admitted."""
    ids: list[str] = field(default_factory=list)
    rows: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)
    """Every column of the sensors the batch steps, before it steps them."""


class SensorTable:
    """One slot per sensor holding every field the daemon keeps for it."""

    def __init__(self, forecaster: Forecaster, config: Config, horizon: int) -> None:
        meta = forecaster.meta
        self.store = store = forecaster.store
        self.capacity = min(config.max_sensors, store.capacity)
        self.stale_s = (config.max_gap_steps + 1) * meta.step_s + config.grace_s
        self.resampler = Resampler(
            meta.step_s,
            meta.n_features,
            max_gap_steps=config.max_gap_steps,
            grace_s=config.grace_s,
            max_sensors=self.capacity,
        )
        # Kept across a reset (a gap too long to fill starts the model state afresh only).
        self.heard_at = store.add_column("heard_at", (), np.float64, kept=True)
        self.clock_offset = store.add_column("clock_offset_s", (), np.float64, kept=True)
        self.announced = store.add_column("announced", (), np.bool_, kept=True)
        f = meta.n_features
        self._flags = store.add_column("track_flags", (), np.int8, kept=True)
        self._open = store.add_column("track_open", (), np.int64, kept=True)
        self._sums = store.add_column("track_sums", (f,), np.float64, kept=True)
        self._count = store.add_column("track_count", (), np.int64, kept=True)
        self._closed = store.add_column("track_closed", (), np.int64, kept=True)
        self._last_ts = store.add_column("track_last_ts", (), np.float64, kept=True)
        self.offsets: Mapping[str, float] = _Offsets(store, self.clock_offset)
        self.accuracy = Accuracy(store, meta.step_s, horizon, model_season(meta))

    def __len__(self) -> int:
        return len(self.store)

    def __contains__(self, sensor_id: object) -> bool:
        return sensor_id in self.store

    def set_horizon(self, horizon: int, meta: ModelMeta) -> None:
        """A reloaded model with another horizon or season: the running accuracy starts
        again."""
        season = model_season(meta)
        if horizon != self.accuracy.horizon or season != self.accuracy.asked_season:
            self.accuracy.detach()
            self.accuracy = Accuracy(self.store, self.accuracy.step_s, horizon, season)

    # -- admission and eviction --------------------------------------------------------------

    def admit(self, sensor_id: str, now: float) -> bool:
        """Give a new sensor its slot (True; False if it had one), or ``sensor_limit``."""
        store = self.store
        if sensor_id in store:
            return False
        if len(store) >= self.capacity:
            live = store.live_slots()
            slot = int(live[np.argmin(self.heard_at[live])])
            if now - float(self.heard_at[slot]) <= self.stale_s:
                raise PayloadError(
                    "sensor_limit",
                    f"{sensor_id}: all max_sensors={self.capacity} slots hold live "
                    "sensors; new sensor rejected",
                )
            self.forget(store.ids_of([slot])[0])
        store.acquire([sensor_id])
        return True

    def forget(self, sensor_id: str) -> None:
        """Evict a sensor: every field of it goes (the next reading starts it afresh)."""
        self.store.remove(sensor_id)
        self.resampler.forget(sensor_id)
        self.accuracy.forget(sensor_id)

    def heard(self, sensor_id: str, arrival: float, ts: float) -> None:
        """Record an accepted reading's arrival: the sensor's clock and its liveness."""
        slot = self.store.slot(sensor_id)
        if slot is not None:
            self.clock_offset[slot] = arrival - ts
            self.heard_at[slot] = arrival

    def set_clock(self, sensor_id: str, offset_s: float, heard_at: float) -> None:
        """Restore a sensor's clock (a replayed record)."""
        slot = self.store.slot(sensor_id)
        if slot is not None:
            self.clock_offset[slot] = offset_s
            self.heard_at[slot] = heard_at

    def clock_of(self, sensor_id: str) -> float:
        """A sensor's clock offset (arrival minus reading time; 0 if unknown)."""
        slot = self.store.slot(sensor_id)
        return 0.0 if slot is None else float(self.clock_offset[slot])

    # -- a batch either applies whole or not at all ---------------------------------------------

    def remember(self, undo: Undo, sensor_id: str) -> None:
        """Before a batch first changes a sensor: its bucket and clock (cheap, per reading)."""
        if sensor_id in undo.before or sensor_id in undo.new:
            return
        slot = self.store.slot(sensor_id)
        if slot is None:
            undo.new[sensor_id] = None
            return
        undo.before[sensor_id] = (
            self.resampler.state_of(sensor_id),
            float(self.clock_offset[slot]),
            float(self.heard_at[slot]),
        )

    def keep_rows(self, undo: Undo, sensor_ids: Iterable[str]) -> None:
        """Before the model steps: the rows of the sensors it will step (one gather a column)."""
        store = self.store
        undo.ids = [s for s in dict.fromkeys(sensor_ids) if s in store]
        if undo.ids:
            undo.rows = store.take(store.slots(undo.ids))

    def rollback(self, undo: Undo) -> None:
        """Put every sensor a batch touched back as it was; the newcomers leave again.

        A sensor evicted in between (a stale one, for a newcomer) stays evicted.
        """
        store = self.store
        for sensor_id in undo.new:
            if sensor_id in store:
                self.forget(sensor_id)
        back = [i for i, s in enumerate(undo.ids) if s in store]
        if back:
            rows = {name: saved[back] for name, saved in undo.rows.items()}
            store.put(store.slots([undo.ids[i] for i in back]), rows)
        for sensor_id, (track, clock, heard) in undo.before.items():
            slot = store.slot(sensor_id)
            if slot is not None:
                self.resampler.set_state(sensor_id, track)
                self.clock_offset[slot] = clock
                self.heard_at[slot] = heard

    # -- rows: snapshots and moves -----------------------------------------------------------

    def _write_track(self, slot: int, track: Track | None) -> None:
        flags = 0
        if track is not None:
            flags = _HAS_TRACK
            self._last_ts[slot] = track.last_ts
            if track.open_bucket is not None:
                flags |= _OPEN
                self._open[slot] = track.open_bucket
                self._sums[slot] = track.sums
                self._count[slot] = track.count
            if track.last_closed is not None:
                flags |= _CLOSED
                self._closed[slot] = track.last_closed
        self._flags[slot] = flags

    def _read_track(self, slot: int) -> Track | None:
        flags = int(self._flags[slot])
        if not flags & _HAS_TRACK:
            return None
        is_open = bool(flags & _OPEN)
        return Track(
            int(self._open[slot]) if is_open else None,
            [float(v) for v in self._sums[slot]] if is_open else [],
            int(self._count[slot]) if is_open else 0,
            int(self._closed[slot]) if flags & _CLOSED else None,
            float(self._last_ts[slot]),
        )

    def export(self, sensor_id: str) -> Row | None:
        """Every field of a sensor as named arrays (None if it has no slot)."""
        slot = self.store.slot(sensor_id)
        if slot is None:
            return None
        self._write_track(slot, self.resampler.track(sensor_id))
        return self.store.row(sensor_id)

    def import_(self, sensor_id: str, fields: Mapping[str, object], now: float) -> bool:
        """A sensor from ``export``; False (nothing changed) if known, unfit or no room."""
        layout = self.store.layout()
        if sensor_id in self.store or set(fields) != set(layout):
            return False
        for name, (shape, dtype) in layout.items():
            value = fields[name]
            if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != dtype:
                return False
        try:
            self.admit(sensor_id, now)
        except PayloadError:
            return False
        rows: Row = {name: np.asarray(fields[name]) for name in layout}
        self.store.put_row(sensor_id, rows)
        slot = self.store.slot(sensor_id)
        assert slot is not None
        self.announced[slot] = False  # this daemon announces it itself
        track = self._read_track(slot)
        if track is not None:
            self.resampler.put_track(sensor_id, track)
        return True

    def save(self, path: Path, model_sha256: str, extra: Mapping[str, Any]) -> None:
        """Write the table (every column of every sensor) as the store's one snapshot file."""
        store = self.store
        for sensor_id in store.ids():
            slot = store.slot(sensor_id)
            assert slot is not None
            self._write_track(slot, self.resampler.track(sensor_id))
        store.save(path, model_sha256, extra)

    def load(self, path: Path, model_sha256: str, now: float) -> dict[str, Any]:
        """Replace the table with a snapshot's (this release's or the previous one's)."""
        extra = self.store.load(path, model_sha256)
        self.resampler.clear()
        old = extra.get("resampler")
        if isinstance(old, dict):  # the previous release: tracks and clocks in the extra
            self._load_previous(old, extra.get("clock_offset_s"), now)
        else:
            for sensor_id in self.store.ids():
                slot = self.store.slot(sensor_id)
                assert slot is not None
                track = self._read_track(slot)
                if track is not None:
                    self.resampler.put_track(sensor_id, track)
        while len(self.store) > self.capacity:  # a smaller max_sensors than before
            live = self.store.live_slots()
            self.forget(self.store.ids_of([int(live[np.argmin(self.heard_at[live])])])[0])
        # Restored sensors count as heard at start; the daemon announces them when it connects.
        self.heard_at[self.store.live_slots()] = now
        self.announced[:] = False
        return extra

    def _load_previous(self, tracks: dict[str, Any], offsets: object, now: float) -> None:
        try:
            self.resampler.restore(tracks)
        except (KeyError, TypeError, ValueError):
            return  # unusable: buckets restart, as the previous release did
        for sensor_id in list(self.resampler.ids()):
            if sensor_id not in self.store and len(self.store) >= self.capacity:
                self.resampler.forget(sensor_id)
            elif sensor_id not in self.store:
                self.store.acquire([sensor_id])
        if isinstance(offsets, dict):
            for sensor_id, value in offsets.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.set_clock(str(sensor_id), float(value), now)
