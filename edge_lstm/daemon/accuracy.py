"""Running accuracy of the published forecasts: columns of the sensor table. Pure numpy.

Forecast step ``k`` issued after bucket ``b`` is for bucket ``b + k``. A sensor's pending
forecasts are a ring of ``H`` rows, one per target bucket (``target % H``): row ``r`` holds,
for the next target with that residue, the prediction each of the last ``H`` forecasts made
for it (NaN where none was issued). The actual of a bucket scores its row and frees it; it
comes before the forecast issued after that bucket (the pipeline's order), which reuses the
row for ``b + H``. The error of one step is the mean absolute error over features, in
original units.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..model.arrays import FloatArray
from ..model.state import StateStore

IntArray = npt.NDArray[np.intp]
Float64Array = npt.NDArray[np.float64]

SCORES = "ok_forecasts"
"""What the running accuracy scores: forecasts published with ``"status": "ok"`` (past the
model's warm-up), the rule ``edge-lstm demo`` uses too; ``warming_up`` forecasts are not scored."""

_TARGET_MASK = 0x7FFFFFFF
"""Targets are kept as bucket numbers modulo 2**31, +1 (0: the row is free)."""


class Accuracy:
    """Per-sensor pending forecasts and error sums, in the store's slots; totals over all."""

    def __init__(self, store: StateStore, step_s: float, horizon: int) -> None:
        self.store = store
        self.step_s = step_s
        self.horizon = h = horizon
        n_features = store.last_y.shape[1]
        # A reset (a gap too long to fill) drops the pending forecasts, not the errors so far.
        self.pending = store.add_column("acc_pending", (h, h, n_features), np.float32)
        self.target = store.add_column("acc_target", (h,), np.int32)
        self.error_sum = store.add_column("acc_error_sum", (h,), np.float64, kept=True)
        self.error_count = store.add_column("acc_error_count", (h,), np.int32, kept=True)
        self.total_sum = np.zeros(h)
        self.total_count = np.zeros(h, dtype=np.int64)
        self._dirty: set[str] = set()

    def detach(self) -> None:
        """Remove the columns (a reloaded model with another horizon gets new ones)."""
        for name in ("acc_pending", "acc_target", "acc_error_sum", "acc_error_count"):
            self.store.drop_column(name)

    def _bucket(self, bucket_starts: Sequence[float]) -> npt.NDArray[np.int64]:
        return np.rint(np.asarray(bucket_starts, dtype=np.float64) / self.step_s).astype(np.int64)

    def issued(
        self, slots: IntArray, bucket_starts: Sequence[float], forecasts: FloatArray
    ) -> None:
        """Remember forecasts ``(N, H', F)`` issued after ``bucket_starts`` (distinct slots)."""
        steps = min(forecasts.shape[1], self.horizon)
        if not len(slots) or not steps:
            return
        k = np.arange(1, steps + 1)
        targets = self._bucket(bucket_starts)[:, None] + k[None, :]  # (N, steps)
        rows = targets % self.horizon
        tags = ((targets & _TARGET_MASK) + 1).astype(np.int32)
        owners = np.broadcast_to(slots[:, None], rows.shape)
        stale = self.target[owners, rows] != tags
        if stale.any():  # the row held an older target: its predictions are past
            fresh = (owners[stale], rows[stale])
            self.pending[fresh] = np.nan
            self.target[fresh] = tags[stale]
        self.pending[slots[:, None], rows, k[None, :] - 1] = forecasts[:, :steps]

    def actual(self, slots: IntArray, bucket_starts: Sequence[float], values: Float64Array) -> None:
        """Score the pending forecasts of each ``(slot, bucket)`` against ``values`` ``(N, F)``.

        A slot may appear several times (a backlog of steps), in time order.
        """
        if not len(slots):
            return
        buckets = self._bucket(bucket_starts)
        rows = buckets % self.horizon
        tags = ((buckets & _TARGET_MASK) + 1).astype(np.int32)
        due = self.target[slots, rows] == tags
        if not due.any():
            return
        slots, rows = slots[due], rows[due]
        predicted = self.pending[slots, rows].astype(np.float64)  # (n, H, F)
        errors = np.abs(predicted - values[due][:, None, :].astype(np.float64)).mean(axis=2)
        scored = np.isfinite(errors)
        errors = np.where(scored, errors, 0.0)
        np.add.at(self.error_sum, slots, errors)
        np.add.at(self.error_count, slots, scored.astype(np.int32))
        self.total_sum += errors.sum(axis=0)
        self.total_count += scored.sum(axis=0)
        self.target[slots, rows] = 0
        ids = self.store.ids_of(slots[scored.any(axis=1)])
        self._dirty.update(ids)

    def forget(self, sensor_id: str) -> None:
        """An evicted sensor: nothing to republish for it."""
        self._dirty.discard(sensor_id)

    def summary(self) -> dict[str, object]:
        """Overall MAE and sample count per horizon step."""
        return _summary(self.total_sum, self.total_count)

    def sensor_summary(self, sensor_id: str) -> dict[str, object] | None:
        """One sensor's MAE and count per horizon step (None if never scored)."""
        if sensor_id not in self.store:
            return None
        (slot,) = self.store.slots([sensor_id])
        count = self.error_count[slot]
        if not count.any():
            return None
        return _summary(self.error_sum[slot], count)

    def take_dirty(self) -> list[str]:
        """Sensors scored since the last call (to republish their accuracy)."""
        dirty, self._dirty = sorted(self._dirty), set()
        return dirty


def _summary(sums: npt.NDArray[np.float64], counts: npt.NDArray[np.integer]) -> dict[str, object]:
    mae = [round(float(s) / int(c), 6) if c else None for s, c in zip(sums, counts, strict=True)]
    return {"scores": SCORES, "mae_by_step": mae, "scored_by_step": [int(c) for c in counts]}
