"""Health bookkeeping for the daemon: counters, rate-limited logs, latency, the health document.

Pure (the caller passes clocks and values in). The running accuracy is in ``accuracy.py``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from ..model.bands import TAIL


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


class Counters:
    """Monotonic counters of the daemon, with rejections kept by reason."""

    def __init__(self) -> None:
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.forecasts = 0
        self.other_shard = 0
        """Readings of sensors another shard owns: skipped and acknowledged, not rejected."""
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
            "snapshots": self.snapshots,
            "snapshot_errors": self.snapshot_errors,
        }


def health_document(
    *,
    version: str,
    uptime_s: float,
    link: Mapping[str, object],
    model: Mapping[str, object],
    sensors: tuple[int, int],
    counters: Mapping[str, object],
    queue: Mapping[str, object],
    latency_ms: tuple[Mapping[str, object], Mapping[str, object]],
    accuracy: Mapping[str, object],
    band: Mapping[str, Sequence[object]] | None,
    journal_errors: int,
    state: Mapping[str, object],
) -> dict[str, object]:
    """The document published on ``PREFIX/health`` (see docs/daemon.md), from plain values.

    ``sensors``: (with a model state, past warm-up); ``latency_ms``: percentiles of the batch
    time and of receipt to handled; ``band``: ``Forecaster.coverage()`` (None: no band).
    """
    step, lag = latency_ms
    return {
        "version": version,
        "uptime_s": round(uptime_s, 1),
        **link,
        "model": dict(model),
        "sensors_active": sensors[0],
        "sensors_warm": sensors[1],
        **counters,
        **queue,
        "step_latency_ms": dict(step),
        "receive_to_publish_ms": dict(lag),
        "accuracy": dict(accuracy),
        "band": None if band is None else _band_health(band),
        "journal_errors": journal_errors,
        "state": dict(state),
    }


def _band_health(live: Mapping[str, Sequence[object]]) -> dict[str, object]:
    """Live coverage of the published 80% band per horizon step.

    Every band issued since start that the actuals have scored, evicted sensors included.
    """
    return {
        "nominal": round(1.0 - 2.0 * TAIL, 6),
        "coverage_by_step": list(live["coverage"]),
        "scored_by_step": list(live["scored"]),
    }
