"""The worker's batch logic: messages -> readings -> model steps -> forecast documents.

No threads and no MQTT here: the daemon hands in a batch of ``Inbound`` messages and gets back
``(topic, payload)`` pairs to publish. One batch makes one ``observe_batch``/``fill`` call per
round of events and one ``forecast_batch`` call, whatever the number of sensors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np

from ..errors import PayloadError
from ..model.forecaster import Forecaster
from ..stream.documents import ForecastFormatter
from ..stream.readings import Inbound, parse_payload
from ..stream.resample import Reading, Resampler, StepEvent, apply_events
from ..stream.topics import OutputTopics, TopicRouter
from .config import Config
from .health import AccuracyTracker, Counters, LatencyRing, RateLimitedLog
from .sensors import Row, daemon_layout, fits, track_fields, track_of
from .wal import JournalFull

log = logging.getLogger(__name__)


class Journal(Protocol):
    """Durability hook: accepted readings are journaled before they are acknowledged."""

    def append(self, reading: Reading) -> None:
        """Record one reading durably."""

    def append_many(
        self, readings: Iterable[Reading], clock_offsets_s: Iterable[float] | None = None
    ) -> None:
        """Record several readings (each with its sensor's clock offset) with one write."""

    def replay(self) -> Iterable[Reading]:
        """Readings recorded since the last truncate, oldest first."""

    def replay_records(self) -> Iterable[tuple[Reading, float | None]]:
        """``(reading, clock offset or None)`` recorded since the last truncate, oldest first."""

    def truncate(self) -> None:
        """Forget everything (called right after a successful snapshot)."""

    def size_bytes(self) -> int:
        """How many bytes the journal holds now."""

    def keep_free(self, reserve_bytes: int) -> None:
        """Refuse appends that would leave less than this free (room for the next snapshot)."""

    def close(self) -> None:
        """Release the file."""


class NullJournal:
    """``durability = "snapshot"``: nothing is journaled."""

    def append(self, reading: Reading) -> None:
        """Do nothing."""

    def append_many(
        self, readings: Iterable[Reading], clock_offsets_s: Iterable[float] | None = None
    ) -> None:
        """Do nothing."""

    def replay(self) -> Iterable[Reading]:
        """Nothing to replay."""
        return ()

    def replay_records(self) -> Iterable[tuple[Reading, float | None]]:
        """Nothing to replay."""
        return ()

    def truncate(self) -> None:
        """Do nothing."""

    def size_bytes(self) -> int:
        """Always empty."""
        return 0

    def keep_free(self, reserve_bytes: int) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


@dataclass(frozen=True)
class Outgoing:
    """One message to publish."""

    topic: str
    payload: bytes
    retain: bool = False
    sensor_id: str | None = None
    """The sensor a forecast is for (None for other messages)."""


class Pipeline:
    """Owns the forecaster and the resampler; used by exactly one thread."""

    def __init__(
        self,
        forecaster: Forecaster,
        config: Config,
        journal: Journal | None = None,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        self.config = config
        # The intake filter of a shard: a reading of a sensor another daemon owns is skipped
        # before any state is touched, counted (other_shard) and acknowledged.
        self.owns = owns
        self.router = TopicRouter(config.templates())
        self.out = OutputTopics(config.output_prefix)
        self.journal: Journal = journal or NullJournal()
        self.counters = Counters()
        self.latency = LatencyRing()
        self.lag = LatencyRing()
        self.rate_log = RateLimitedLog(log, 60.0)
        self.journal_errors = 0
        # arrival - reading ts of each sensor's latest reading: its clock against ours. Wall-clock
        # closing happens on the sensor's own timeline, so a replay of old data with `ts` is not
        # cut into one-reading buckets, and a sensor whose clock is off is treated fairly.
        self.clock_offset_s: dict[str, float] = {}
        # Arrival time of each sensor's latest accepted reading: who is live when the sensor
        # table is full (see _admit). Sensors restored from a snapshot count as heard at start.
        self.heard_at: dict[str, float] = {}
        self.started_at = time.time()
        self.forecaster = forecaster
        self._setup_model()

    def _setup_model(self) -> None:
        meta = self.forecaster.meta
        self.meta = meta
        self.horizon = self.config.horizon or meta.horizon
        self.resampler = Resampler(
            meta.step_s,
            meta.n_features,
            max_gap_steps=self.config.max_gap_steps,
            grace_s=self.config.grace_s,
            max_sensors=self.config.max_sensors,
        )
        self.accuracy = AccuracyTracker(meta.step_s, self.horizon, self.config.max_sensors)
        self.formatter = ForecastFormatter(meta, self.horizon)

    def replace_forecaster_model(self, forecaster: Forecaster, kept: bool) -> None:
        """After a model reload: keep the resampler if the states were kept, else restart."""
        old = self.resampler.to_dict()
        self.forecaster = forecaster
        self._setup_model()
        if kept:
            self.resampler.restore(old)

    # -- intake --------------------------------------------------------------------------------

    def accept(
        self, messages: Sequence[Inbound], now: float
    ) -> tuple[list[StepEvent], list[Reading]]:
        """Parse and bucket a batch; rejections are counted and logged (rate-limited)."""
        events: list[StepEvent] = []
        readings: list[Reading] = []
        features = self.meta.features
        max_bytes = self.config.max_payload_bytes
        max_ahead_s = self.config.max_clock_skew_s
        owns = self.owns
        for msg in messages:
            try:
                sensor_id = self.router.sensor_for(msg.topic)
                if owns is not None and not owns(sensor_id):
                    self.counters.other_shard += 1
                    continue
                reading = parse_payload(
                    msg.payload, sensor_id, features, msg.arrival_ts, max_bytes, max_ahead_s
                )
                self._admit(sensor_id, msg.arrival_ts)
                events += self.resampler.add(reading)
                self.clock_offset_s[sensor_id] = msg.arrival_ts - reading.ts
                self.heard_at[sensor_id] = msg.arrival_ts
            except PayloadError as exc:
                self.counters.reject(exc.reason)
                self.rate_log.log(exc.reason, f"rejected ({exc.reason}): {exc}", now)
                continue
            except Exception as exc:  # a bug of ours must cost one message, never the worker
                self.counters.reject("internal_error")
                self.rate_log.log(
                    "internal_error",
                    f"rejected (internal_error) a message on {msg.topic!r}: {exc!r}",
                    now,
                    logging.ERROR,
                    exc_info=exc,
                )
                continue
            readings.append(reading)
        self.counters.accepted += len(readings)
        return events, readings

    def _admit(self, sensor_id: str, now: float) -> None:
        """Refuse a new sensor (``sensor_limit``) when the table is full of live sensors.

        Plain LRU eviction would let a flood of new ids push out every real sensor. Only a
        sensor silent for longer than a gap the resampler would fill (its next reading resets
        it anyway) may make room; otherwise the newcomer is rejected and counted.
        """
        resampler = self.resampler
        if sensor_id in resampler or len(resampler) < self.config.max_sensors:
            return
        oldest = resampler.least_recent() or sensor_id
        stale_s = (self.config.max_gap_steps + 1) * self.meta.step_s + self.config.grace_s
        if now - self.heard_at.get(oldest, self.started_at) <= stale_s:
            raise PayloadError(
                "sensor_limit",
                f"{sensor_id}: all max_sensors={self.config.max_sensors} slots hold live "
                "sensors; new sensor rejected",
            )
        self.heard_at.pop(oldest, None)

    # -- moving a sensor between daemons ---------------------------------------------------------

    def _row_layout(self) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
        return {**self.forecaster.store.layout(), **daemon_layout(self.meta.n_features)}

    def export_sensor(self, sensor_id: str) -> Row | None:
        """Every field that resumes the sensor warm elsewhere, as named arrays (None: unknown).

        The model's columns (LSTM state, steps seen, history ring and level, band calibration),
        the sensor's clock (offset, last heard) and its open bucket. Nothing here changes.
        """
        store = self.forecaster.store
        track = self.resampler.track(sensor_id)
        if track is None and sensor_id not in store:
            return None
        fields = store.row(sensor_id)
        fields.update(track_fields(track, self.meta.n_features))
        fields["clock_offset_s"] = np.array(self.clock_offset_s.get(sensor_id, 0.0))
        fields["heard_at"] = np.array(self.heard_at.get(sensor_id, self.started_at))
        return fields

    def import_sensor(self, sensor_id: str, fields: Mapping[str, object]) -> bool:
        """Resume a sensor from ``export_sensor``'s fields; False, nothing changed, when the
        sensor already has state here, a field's name, shape or dtype does not fit this model,
        or the table is full of live sensors (the ``max_sensors`` rule of new readings).
        """
        store = self.forecaster.store
        if sensor_id in self.resampler or sensor_id in store:
            return False
        if not fits(fields, self._row_layout()):
            return False
        rows = cast("Row", fields)
        try:
            self._admit(sensor_id, time.time())
        except PayloadError:
            return False
        track = track_of(rows)
        if track is not None:
            self.resampler.put_track(sensor_id, track)
        if int(rows["steps"]) > 0:  # a sensor that never closed a step has no slot
            store.put_row(sensor_id, rows)
        self.clock_offset_s[sensor_id] = float(rows["clock_offset_s"])
        self.heard_at[sensor_id] = float(rows["heard_at"])
        return True

    def journal_readings(
        self,
        readings: Sequence[Reading],
        now: float,
        make_room: Callable[[], bool] | None = None,
    ) -> bool:
        """Journal accepted readings (before their acknowledgement); False when that failed.

        Call it once the batch's events are applied (``advance``): ``make_room`` is called
        when the journal is full (its size limit, or the room kept for the next snapshot), and
        when it returns True a snapshot has made everything applied so far durable, these
        readings included. A failure is counted and logged, never fatal: the readings are in
        memory and the forecasts go on, but the caller must not acknowledge them.
        """
        if not readings:
            return True
        # Each record carries its sensor's clock offset as it stands after this batch: replay
        # has no wall-clock closes between readings, so the last offset is all it needs.
        offsets = [self.clock_offset_s.get(r.sensor_id, 0.0) for r in readings]
        try:
            try:
                self.journal.append_many(readings, offsets)
            except JournalFull:
                if make_room is None or not make_room():
                    raise
        except Exception as exc:  # a full or broken disk must not stop the forecasts
            self.journal_errors += 1
            self.rate_log.log(
                "journal", f"write-ahead log append failed: {exc}", now, logging.ERROR
            )
            return False
        return True

    def replay(self, records: Iterable[tuple[Reading, float | None]]) -> int:
        """Feed journaled readings through the normal path without publishing; returns count.

        Each sensor's clock offset is restored with its readings (records of older versions
        carry none: the snapshot's offset stays), so the first wall-clock close after a restart
        happens exactly when it would have without the restart.
        """
        n = 0
        for reading, offset in records:
            try:
                events = self.resampler.add(reading)
            except PayloadError:
                continue  # already in the snapshot
            if offset is not None:
                self.clock_offset_s[reading.sensor_id] = offset
                self.heard_at[reading.sensor_id] = reading.ts + offset
            apply_events(self.forecaster, events)
            n += 1
        return n

    # -- stepping and forecasting --------------------------------------------------------------

    def advance(self, events: Sequence[StepEvent], issued_at: float) -> list[Outgoing]:
        """Apply a batch's events, then forecast every sensor whose bucket closed.

        One batched interpreter call per round of events and one ``forecast_batch`` per batch.
        When a batch holds several closed steps of one sensor (a backlog after a reconnect),
        only the newest step's forecast is published: the older ones are for steps already
        past and would cost a full rollout each.
        """
        out = self._step_and_forecast(events, issued_at)
        self.counters.forecasts += len(out)
        return out

    def _step_and_forecast(self, events: Sequence[StepEvent], issued_at: float) -> list[Outgoing]:
        for event in events:
            if event.kind == "observe" and event.values is not None:
                self.accuracy.actual(event.sensor_id, event.bucket_start, event.values)
            elif event.kind == "reset":
                self.accuracy.forget(event.sensor_id)
        closed = apply_events(self.forecaster, events)
        ids = [s for s in closed if self.forecaster.steps_seen(s) > 0]
        if not ids:
            return []
        forecasts = self.forecaster.forecast_batch(ids, self.horizon)
        # The per-sensor calibrated band; issuing it is what lets the next actuals score it.
        bands = None
        if self.forecaster.has_bands:
            bands = self.forecaster.interval_batch(ids, self.horizon, forecasts)
        warmup = self.meta.warmup_steps
        buckets = [closed[s] for s in ids]
        steps = [self.forecaster.steps_seen(s) for s in ids]
        statuses = ["ok" if n >= warmup else "warming_up" for n in steps]
        # Running accuracy scores `ok` forecasts only (the demo's rule): a warming-up state's
        # forecasts say nothing about the model.
        ok = [i for i, status in enumerate(statuses) if status == "ok"]
        if ok:
            self.accuracy.issued_many([ids[i] for i in ok], [buckets[i] for i in ok], forecasts[ok])
        payloads = self.formatter.format_batch(
            ids, buckets, forecasts, statuses, steps, issued_at, bands
        )
        retain = self.config.retain_forecasts
        topic = self.out.forecast
        out = [
            Outgoing(topic(s), payload, retain, s) for s, payload in zip(ids, payloads, strict=True)
        ]
        return out

    def process(
        self, messages: Sequence[Inbound], now: float
    ) -> tuple[list[Reading], list[Outgoing]]:
        """accept + advance for one batch (callers acknowledge in between when they need to)."""
        events, readings = self.accept(messages, now)
        return readings, self.advance(events, now)

    def close_due(self, now: float) -> list[Outgoing]:
        """Close buckets whose end plus grace has passed, on each sensor's own clock."""
        return self.advance(self._due_events(now), now)

    def _due_events(self, now: float) -> list[StepEvent]:
        resampler = self.resampler
        offsets = self.clock_offset_s
        events = resampler.close_due(now, offsets)
        if len(offsets) > 2 * max(len(resampler), 1):  # keep it bounded by the live sensors
            self.clock_offset_s = {s: t for s, t in offsets.items() if s in resampler}
        if len(self.heard_at) > 2 * max(len(resampler), 1):
            self.heard_at = {s: t for s, t in self.heard_at.items() if s in resampler}
        return events

    def record_latency(self, started_mono: float, messages: Sequence[Inbound]) -> None:
        """Batch processing time, and receipt-to-publish lag of the batch's oldest message."""
        done = time.monotonic()
        self.latency.add((done - started_mono) * 1000.0)
        if messages:
            self.lag.add((done - min(m.arrival_mono for m in messages)) * 1000.0)

    def sensors_warm(self) -> tuple[int, int]:
        """(sensors with state, sensors past warm-up)."""
        ids = self.forecaster.sensors()
        return len(ids), sum(1 for s in ids if self.forecaster.is_warm(s))
