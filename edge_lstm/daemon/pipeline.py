"""The worker's batch logic: messages -> readings -> model steps -> forecast documents.

No threads and no MQTT here: the daemon hands a batch of ``Inbound`` messages to ``handle``
once and gets back what to publish and which messages to acknowledge. One batch makes one
``observe_batch``/``fill`` call per round of events and one ``forecast_batch`` call, whatever
the number of sensors. Every per-sensor field lives in the sensor table (``sensors.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import PayloadError
from ..model.forecaster import Forecaster
from ..model.runtime import BATCH_SIZES
from ..stream.documents import ForecastFormatter
from ..stream.readings import Inbound, parse_payload
from ..stream.resample import Reading, Resampler, StepEvent, apply_events
from ..stream.topics import OutputTopics, TopicRouter
from .config import Config
from .health import Counters, LatencyRing, RateLimitedLog
from .heap import HeapTrimmer
from .homeassistant import discovery_messages
from .sensors import Row, SensorTable, Undo
from .wal import Journal, JournalFull, NullJournal

FORECAST_CHUNK = BATCH_SIZES[-1]
"""Most sensors forecast in one rollout: the interpreter's largest batch size."""

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish."""

    topic: str
    payload: bytes
    retain: bool = False
    sensor_id: str | None = None
    """The sensor a forecast is for (None for other messages)."""
    qos: int | None = None
    """None: the configured ``forecast_qos``."""


@dataclass
class Handled:
    """What one batch gives back: messages to publish, then messages to acknowledge."""

    publish: list[Outgoing] = field(default_factory=list)
    acks: list[tuple[int, int]] = field(default_factory=list)
    """``(mid, qos)`` of the messages now handled and durable (this batch's and earlier ones')."""


class Pipeline:
    """Owns the forecaster and the sensor table; used by exactly one thread."""

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
        self.started_at = time.time()
        # Readings accepted but not yet durable (durability=wal with a failing journal): their
        # messages stay unacknowledged, so the broker keeps them, until a journal write or a
        # snapshot covers them. Bounded by the broker's receive window.
        self._unjournaled: list[Reading] = []
        self._unacked: list[tuple[int, int]] = []
        # What a batch's temporaries freed goes back to the OS (heap.py): RSS follows the
        # sensor table, not the busiest batch so far.
        self.heap = HeapTrimmer()
        self.forecaster = forecaster
        self._setup_model()

    def _setup_model(self) -> None:
        meta = self.forecaster.meta
        self.meta = meta
        self.horizon = self.config.horizon or meta.horizon
        self.table = SensorTable(self.forecaster, self.config, self.horizon)
        self.formatter = ForecastFormatter(meta, self.horizon)

    @property
    def resampler(self) -> Resampler:
        """The sensor table's bucketing."""
        return self.table.resampler

    def replace_forecaster_model(self, forecaster: Forecaster, kept: bool) -> None:
        """After a model reload: the table goes on if the states were kept, else restarts."""
        self.forecaster = forecaster
        if not kept or forecaster.store is not self.table.store:
            self._setup_model()
            return
        self.meta = forecaster.meta
        self.horizon = self.config.horizon or self.meta.horizon
        self.table.set_horizon(self.horizon, self.meta)
        self.table.announced[:] = False  # the new model is announced again
        self.formatter = ForecastFormatter(self.meta, self.horizon)

    # -- one batch -------------------------------------------------------------------------------

    def handle(
        self, messages: Sequence[Inbound], now: float, make_room: Callable[[], bool] | None = None
    ) -> Handled:
        """Intake, model steps, forecasts and journal for one batch: the worker's one call.

        The readings are journaled after their events are applied (a snapshot that makes room
        for the journal then holds this batch too); messages are acknowledged only once
        handled and durable. Readings a failed journal write left over go first, so the log
        keeps each sensor's order.
        """
        started = time.monotonic()
        self.heap.settle()
        # A crash inside the batch (a bug: one message's errors are caught below) must not
        # leave it half applied for the final snapshot: its sensors go back as they were,
        # and its messages, not acknowledged, come again.
        undo = Undo()
        try:
            events, readings = self._accept(messages, now, undo)
            self.table.keep_rows(undo, [e.sensor_id for e in events])
            out = self.advance(events, now)
        except BaseException:
            self.table.rollback(undo)
            raise
        del undo  # the batch's row copies (3.6 KB a sensor): garbage before the trim below
        pending = self._unjournaled + readings if self._unjournaled else readings
        handled = [(m.mid, m.qos) for m in messages]
        if self.journal_readings(pending, now, make_room):
            acks, self._unacked, self._unjournaled = self._unacked + handled, [], []
        else:  # the broker keeps them until a snapshot or a later journal write covers them
            acks, self._unjournaled = [], pending
            self._unacked += handled
        self.record_latency(started, messages)
        self.heap.add(len(messages))
        self.heap.settle()
        return Handled(out, acks)

    def tick(self, now: float) -> list[Outgoing]:
        """Close buckets whose end plus grace has passed, on each sensor's own clock.

        In batches of ``batch_max`` sensors, like intake: what a crash would undo (and the
        memory that takes) stays one batch's worth when every sensor closes at once.
        """
        self.heap.settle()
        due = self.resampler.due(now, self.table.offsets)
        out: list[Outgoing] = []
        size = self.config.batch_max
        for start in range(0, len(due), size):
            out += self._close_chunk(due[start : start + size], now)
        self.heap.add(len(due))
        self.heap.settle()
        return out

    def _close_chunk(self, chunk: list[str], now: float) -> list[Outgoing]:
        undo = Undo()
        for sensor_id in chunk:
            self.table.remember(undo, sensor_id)
        self.table.keep_rows(undo, chunk)
        try:
            return self.advance(self.resampler.close(chunk), now)
        except BaseException:
            self.table.rollback(undo)
            raise

    @property
    def has_unacked(self) -> bool:
        """Whether handled messages wait for a snapshot to be acknowledged."""
        return bool(self._unacked)

    def durable(self) -> list[tuple[int, int]]:
        """After a snapshot: every message it made durable, to acknowledge now."""
        acks, self._unacked, self._unjournaled = self._unacked, [], []
        return acks

    # -- intake --------------------------------------------------------------------------------

    def accept(
        self, messages: Sequence[Inbound], now: float
    ) -> tuple[list[StepEvent], list[Reading]]:
        """Parse and bucket a batch; rejections are counted and logged (rate-limited)."""
        return self._accept(messages, now, Undo())

    def _accept(
        self, messages: Sequence[Inbound], now: float, undo: Undo
    ) -> tuple[list[StepEvent], list[Reading]]:
        events: list[StepEvent] = []
        readings: list[Reading] = []
        features = self.meta.features
        max_bytes = self.config.max_payload_bytes
        max_ahead_s = self.config.max_clock_skew_s
        owns = self.owns
        table = self.table
        resampler = table.resampler
        sensor_for = self.router.sensor_for
        own_id = table.store.own_id
        for msg in messages:
            admitted = False
            try:
                sensor_id = own_id(sensor_for(msg.topic))
                if owns is not None and not owns(sensor_id):
                    self.counters.other_shard += 1
                    continue
                reading = parse_payload(
                    msg.payload, sensor_id, features, msg.arrival_ts, max_bytes, max_ahead_s
                )
                table.remember(undo, sensor_id)
                admitted = table.admit(sensor_id, msg.arrival_ts)
                events += resampler.add(reading)
                table.heard(sensor_id, msg.arrival_ts, reading.ts)
            except Exception as exc:
                if admitted:  # a newcomer whose first reading failed leaves no trace
                    table.forget(sensor_id)
                self._reject(msg, exc, now)
                continue
            readings.append(reading)
        self.counters.accepted += len(readings)
        return events, readings

    def _reject(self, msg: Inbound, exc: Exception, now: float) -> None:
        if isinstance(exc, PayloadError):
            self.counters.reject(exc.reason)
            self.rate_log.log(exc.reason, f"rejected ({exc.reason}): {exc}", now)
            return
        # A bug of ours must cost one message, never the worker.
        self.counters.reject("internal_error")
        self.rate_log.log(
            "internal_error",
            f"rejected (internal_error) a message on {msg.topic!r}: {exc!r}",
            now,
            logging.ERROR,
            exc_info=exc,
        )

    # -- moving a sensor between daemons ---------------------------------------------------------

    def export_sensor(self, sensor_id: str) -> Row | None:
        """Every field that resumes the sensor warm elsewhere, as named arrays (None: unknown).

        The sensor table's row: the model's columns (LSTM state, steps seen, history ring and
        level, band calibration), the sensor's clock (offset, last heard), its open bucket
        (``track_*``) and running accuracy. Nothing here changes.
        """
        return self.table.export(sensor_id)

    def import_sensor(self, sensor_id: str, fields: Mapping[str, object]) -> bool:
        """Resume a sensor from ``export_sensor``'s fields; False, nothing changed, when the
        sensor already has state here, a field's name, shape or dtype does not fit this model,
        or the table is full of live sensors (the ``max_sensors`` rule of new readings).
        """
        return self.table.import_(sensor_id, fields, time.time())

    # -- durability ------------------------------------------------------------------------------

    def journal_readings(
        self,
        readings: Sequence[Reading],
        now: float,
        make_room: Callable[[], bool] | None = None,
    ) -> bool:
        """Journal accepted readings (before their acknowledgement); False when that failed.

        ``make_room`` is called when the journal is full (its size limit, or the room kept for
        the next snapshot); when it returns True a snapshot has made everything applied so
        far durable, these readings included. A failure is counted and logged, never fatal:
        the readings are in memory and the forecasts go on, but they are not acknowledged.
        """
        if not readings or isinstance(self.journal, NullJournal):
            return True
        # Each record carries its sensor's clock offset as it stands after this batch: replay
        # has no wall-clock closes between readings, so the last offset is all it needs.
        offsets = [self.table.clock_of(r.sensor_id) for r in readings]
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
        """Feed journaled readings through the live path without publishing; returns count.

        Each reading is admitted, bucketed and stepped, and a forecast is issued (unpublished)
        after each closed step, batched across sensors: a batch ends where a sensor would
        close a second step. So the clock offsets, the band calibration and the running
        accuracy come back as the live path had them (the live path forecasts a sensor once
        per batch: the same unless a batch held a backlog of several steps of one sensor).
        Records of older versions carry no offset: the snapshot's stays.
        """
        n = 0
        events: list[StepEvent] = []
        closing: set[str] = set()
        table = self.table
        for reading, offset in records:
            sensor_id = reading.sensor_id
            heard = reading.ts + (offset or 0.0)
            admitted = False
            try:
                admitted = table.admit(sensor_id, heard)
                new = table.resampler.add(reading)
            except PayloadError:
                if admitted:
                    table.forget(sensor_id)
                continue  # already in the snapshot, or no room
            if offset is not None:
                table.set_clock(sensor_id, offset, heard)
            n += 1
            if new and sensor_id in closing:
                self._step_and_forecast(events, heard, publish=False)
                events, closing = [], set()
            events += new
            if new:
                closing.add(sensor_id)
        self._step_and_forecast(events, time.time(), publish=False)
        self.heap.add(n)
        self.heap.settle()
        return n

    # -- stepping and forecasting --------------------------------------------------------------

    def advance(self, events: Sequence[StepEvent], issued_at: float) -> list[Outgoing]:
        """Apply a batch's events, then forecast every sensor whose bucket closed.

        One batched interpreter call per round of events and one ``forecast_batch`` per batch.
        When a batch holds several closed steps of one sensor (a backlog after a reconnect),
        only the newest step's forecast is published: the older ones are for steps already
        past and would cost a full rollout each.
        """
        out = self._step_and_forecast(events, issued_at, publish=True)
        self.counters.forecasts += sum(1 for o in out if o.sensor_id is not None and o.qos is None)
        return out

    def _step_and_forecast(
        self, events: Sequence[StepEvent], issued_at: float, publish: bool
    ) -> list[Outgoing]:
        self._score(events)
        closed = apply_events(self.forecaster, events)
        ready = [s for s in closed if self.forecaster.steps_seen(s) > 0]
        out: list[Outgoing] = []
        # In chunks: a rollout's temporaries (state, history and band copies per sensor) grow
        # with the sensors forecast at once, and the process keeps its high-water mark.
        for start in range(0, len(ready), FORECAST_CHUNK):
            chunk = ready[start : start + FORECAST_CHUNK]
            out += self._forecast(chunk, closed, issued_at, publish)
        return out

    def _forecast(
        self, ids: list[str], closed: Mapping[str, float], issued_at: float, publish: bool
    ) -> list[Outgoing]:
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
            slots = self.table.store.slots([ids[i] for i in ok])
            self.table.accuracy.issued(slots, [buckets[i] for i in ok], forecasts[ok])
        if not publish:
            return []
        payloads = self.formatter.format_batch(
            ids, buckets, forecasts, statuses, steps, issued_at, bands
        )
        retain = self.config.retain_forecasts
        topic = self.out.forecast
        out = [
            Outgoing(topic(s), payload, retain, s) for s, payload in zip(ids, payloads, strict=True)
        ]
        if self.config.homeassistant:
            out += self.announce(ids, force=False)
        return out

    def _score(self, events: Sequence[StepEvent]) -> None:
        """Score the running accuracy against each observed step (before the steps apply)."""
        store = self.table.store
        reset: set[str] = set()  # a reset drops the pending forecasts: nothing left to score
        known = []
        for e in events:
            if e.kind == "reset":
                reset.add(e.sensor_id)
            elif e.kind == "observe" and e.sensor_id not in reset and e.sensor_id in store:
                known.append(e)
        if known:
            slots = store.slots([e.sensor_id for e in known])
            values = np.asarray([e.values for e in known], dtype=np.float64)
            self.table.accuracy.actual(slots, [e.bucket_start for e in known], values)

    # -- Home Assistant --------------------------------------------------------------------------

    def announce(self, sensor_ids: Sequence[str], force: bool) -> list[Outgoing]:
        """Discovery configs (retained, QoS 1) of sensors not announced yet (``force``: all).

        The flag is a column of the sensor table: an evicted sensor is announced again when
        it comes back.
        """
        c = self.config
        table = self.table
        out = []
        for sensor_id in sensor_ids:
            slot = table.store.slot(sensor_id)
            if slot is None or (table.announced[slot] and not force):
                continue
            table.announced[slot] = True
            for topic, payload in discovery_messages(
                c.homeassistant_prefix, self.out, self.meta, sensor_id, c.client_id
            ):
                out.append(Outgoing(topic, payload, retain=True, qos=1))
        return out

    def announce_all(self) -> list[Outgoing]:
        """Every sensor with a forecast, announced again (Home Assistant's birth message)."""
        ids = [s for s in self.table.store.ids() if self.forecaster.steps_seen(s) > 0]
        return self.announce(ids, force=True)

    # -- health ----------------------------------------------------------------------------------

    def record_latency(self, started_mono: float, messages: Sequence[Inbound]) -> None:
        """Batch processing time, and receipt-to-handled lag of the batch's oldest message."""
        done = time.monotonic()
        self.latency.add((done - started_mono) * 1000.0)
        if messages:
            self.lag.add((done - min(m.arrival_mono for m in messages)) * 1000.0)

    def sensors_warm(self) -> tuple[int, int]:
        """(sensors with a model state, sensors past warm-up)."""
        store = self.table.store
        steps = store.steps[store.live_slots()]
        return int((steps > 0).sum()), int((steps >= self.meta.warmup_steps).sum())
