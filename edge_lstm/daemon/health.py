"""Health bookkeeping for the daemon: counters, rate-limited logs, latency, running accuracy.

Pure (the caller passes clocks in); memory is bounded by the number of sensors and the horizon.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


class RateLimitedLog:
    """At most one log line per key per ``interval_s``; the lines held back are counted in it.

    >>> import logging
    >>> rl = RateLimitedLog(logging.getLogger("x"), interval_s=60.0)
    >>> rl.log("bad_json", "first", now=0.0), rl.log("bad_json", "second", now=1.0)
    (True, False)
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def log(
        self,
        key: str,
        message: str,
        now: float,
        level: int = logging.WARNING,
        exc_info: BaseException | None = None,
    ) -> bool:
        """Log ``message`` unless ``key`` was logged less than ``interval_s`` ago.

        ``exc_info``: an exception whose traceback goes with the line (when it is logged).
        """
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._held[key] += 1
            return False
        held = self._held.pop(key, 0)
        suffix = f" ({held} similar message(s) suppressed)" if held else ""
        self.logger.log(level, "%s%s", message, suffix, exc_info=exc_info)
        self._last[key] = now
        return True


class LatencyRing:
    """The last ``size`` samples (milliseconds) and their percentiles."""

    def __init__(self, size: int = 1024) -> None:
        self._samples = np.zeros(size, dtype=np.float64)
        self._n = 0

    def add(self, value_ms: float) -> None:
        """Record one sample."""
        self._samples[self._n % len(self._samples)] = value_ms
        self._n += 1

    def add_many(self, values_ms: Sequence[float] | npt.NDArray[np.float64]) -> None:
        """Record several samples."""
        for v in values_ms:
            self.add(float(v))

    def percentiles(self) -> dict[str, float | None]:
        """``{"p50": ..., "p99": ..., "n": ...}`` over the samples held (None when empty)."""
        held = self._samples[: min(self._n, len(self._samples))]
        if held.size == 0:
            return {"p50": None, "p99": None}
        p50, p99 = np.percentile(held, [50, 99])
        return {"p50": round(float(p50), 3), "p99": round(float(p99), 3)}


@dataclass
class _Errors:
    sum: list[float]
    count: list[int]

    @classmethod
    def zeros(cls, horizon: int) -> _Errors:
        return cls([0.0] * horizon, [0] * horizon)

    def mae(self) -> list[float | None]:
        return [round(s / c, 6) if c else None for s, c in zip(self.sum, self.count, strict=True)]


SCORES = "ok_forecasts"
"""What the running accuracy scores: forecasts published with ``"status": "ok"`` (past the
model's warm-up), the rule ``edge-lstm demo`` uses too; ``warming_up`` forecasts are not scored."""


class AccuracyTracker:
    """Scores published forecasts against the actual bucket means as they arrive.

    Forecast step ``k`` issued after bucket ``b`` is for bucket start ``b + k*step_s``. For each
    sensor only the last ``horizon`` forecasts can still be scored, so that is all it keeps.
    The error of one step is the mean absolute error over features, in original units.
    """

    def __init__(self, step_s: float, horizon: int, max_sensors: int = 10_000) -> None:
        self.step_s = step_s
        self.horizon = horizon
        self.max_sensors = max_sensors
        self.overall = _Errors.zeros(horizon)
        self._pending: OrderedDict[str, deque[tuple[float, list[list[float]]]]] = OrderedDict()
        self._per_sensor: OrderedDict[str, _Errors] = OrderedDict()
        self._dirty: set[str] = set()

    def issued(
        self, sensor_id: str, bucket_start: float, forecast: npt.NDArray[np.float32]
    ) -> None:
        """Remember a published forecast ``(H, F)`` issued after ``bucket_start``."""
        queue = self._pending.get(sensor_id)
        if queue is None:
            if len(self._pending) >= self.max_sensors:
                self._pending.popitem(last=False)
            queue = self._pending[sensor_id] = deque(maxlen=self.horizon)
        self._pending.move_to_end(sensor_id)
        # Plain lists: scoring touches a handful of numbers, where numpy's overhead dominates.
        queue.append((bucket_start, forecast[: self.horizon].tolist()))

    def issued_many(
        self,
        sensor_ids: Sequence[str],
        bucket_starts: Sequence[float],
        forecasts: npt.NDArray[np.float32],
    ) -> None:
        """``issued`` for a batch (``forecasts`` is ``(N, H, F)``): one ``tolist`` for all."""
        rows_all = forecasts[:, : self.horizon].tolist()
        pending = self._pending
        for sensor_id, bucket_start, rows in zip(sensor_ids, bucket_starts, rows_all, strict=True):
            queue = pending.get(sensor_id)
            if queue is None:
                if len(pending) >= self.max_sensors:
                    pending.popitem(last=False)
                queue = pending[sensor_id] = deque(maxlen=self.horizon)
            pending.move_to_end(sensor_id)
            queue.append((bucket_start, rows))

    def actual(self, sensor_id: str, bucket_start: float, values: Sequence[float]) -> int:
        """Score every pending forecast of ``sensor_id`` that covers ``bucket_start``."""
        queue = self._pending.get(sensor_id)
        if not queue:
            return 0
        scored = 0
        errors = None
        n = len(values)
        single = values[0] if n == 1 else None
        inv_step = 1.0 / self.step_s
        overall = self.overall
        for issued_at, rows in queue:
            k = round((bucket_start - issued_at) * inv_step)
            if 1 <= k <= len(rows):
                row = rows[k - 1]
                if single is not None:
                    err = abs(row[0] - single)
                else:
                    err = sum(abs(p - a) for p, a in zip(row, values, strict=True)) / n
                if not math.isfinite(err):
                    continue
                if errors is None:
                    errors = self._sensor_errors(sensor_id)
                overall.sum[k - 1] += err
                overall.count[k - 1] += 1
                errors.sum[k - 1] += err
                errors.count[k - 1] += 1
                scored += 1
        # Forecasts whose last step is now in the past can never be scored again.
        while queue and bucket_start - queue[0][0] >= len(queue[0][1]) * self.step_s:
            queue.popleft()
        return scored

    def forget(self, sensor_id: str) -> None:
        """Drop pending forecasts (after a reset: they were issued from a discarded state)."""
        self._pending.pop(sensor_id, None)

    def _sensor_errors(self, sensor_id: str) -> _Errors:
        errors = self._per_sensor.get(sensor_id)
        if errors is None:
            if len(self._per_sensor) >= self.max_sensors:
                self._per_sensor.popitem(last=False)
            errors = self._per_sensor[sensor_id] = _Errors.zeros(self.horizon)
        self._per_sensor.move_to_end(sensor_id)
        self._dirty.add(sensor_id)
        return errors

    def summary(self) -> dict[str, object]:
        """Overall MAE and sample count per horizon step."""
        return {
            "scores": SCORES,
            "mae_by_step": self.overall.mae(),
            "scored_by_step": list(self.overall.count),
        }

    def sensor_summary(self, sensor_id: str) -> dict[str, object] | None:
        """One sensor's MAE and count per horizon step (None if never scored)."""
        errors = self._per_sensor.get(sensor_id)
        if errors is None:
            return None
        return {
            "scores": SCORES,
            "mae_by_step": errors.mae(),
            "scored_by_step": list(errors.count),
        }

    def take_dirty(self) -> list[str]:
        """Sensors scored since the last call (to republish their accuracy)."""
        dirty, self._dirty = sorted(self._dirty), set()
        return dirty


class Counters:
    """Monotonic counters of the daemon, with rejections kept by reason."""

    def __init__(self) -> None:
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.forecasts = 0
        self.other_shard = 0
        """Readings of sensors another shard owns: skipped and acknowledged, not rejected."""
        self.queue_dropped = 0
        self.reconnects = 0
        self.snapshots = 0
        self.snapshot_errors = 0

    def reject(self, reason: str, n: int = 1) -> None:
        """Count ``n`` rejected readings for ``reason``."""
        self.rejected[reason] += n

    def as_dict(self) -> dict[str, object]:
        """Counters for the health document."""
        return {
            "readings_accepted": self.accepted,
            "readings_rejected": dict(sorted(self.rejected.items())),
            "readings_rejected_total": sum(self.rejected.values()),
            "readings_other_shard": self.other_shard,
            "forecasts_published": self.forecasts,
            "queue_dropped": self.queue_dropped,
            "reconnects": self.reconnects,
            "snapshots": self.snapshots,
            "snapshot_errors": self.snapshot_errors,
        }
