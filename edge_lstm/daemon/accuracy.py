"""Running accuracy of the published forecasts: columns of the sensor table. Pure numpy.

Forecast step ``k`` issued after bucket ``b`` is for bucket ``b + k``. A sensor's pending
predictions are one ring per lead ``k`` (``model/leads.py``), and ``issued[b % H]`` tags the
forecast issued after bucket ``b``: the actual of bucket ``t`` scores, for each ``k``, the cell
of ``t`` in ring ``k`` if the forecast of bucket ``t - k`` was issued (its tag is there), then
clears it. It comes before the forecast issued after that bucket (the pipeline's order), the
only one that writes those cells again. The error of one step is the mean absolute error over
features, in original units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from ..model.arrays import FloatArray
from ..model.leads import cell_count, lead_cells
from ..model.state import StateStore

IntArray = npt.NDArray[np.intp]
Float64Array = npt.NDArray[np.float64]

SCORES = "ok_forecasts"
"""What the running accuracy scores: forecasts published with ``"status": "ok"`` (past the
model's warm-up), the rule ``edge-lstm demo`` uses too; ``warming_up`` forecasts are not scored."""

_TAG_MASK = 0x7FFFFFFF
"""Issues are tagged with their bucket number modulo 2**31, +1 (0: none)."""


class Accuracy:
    """Per-sensor pending forecasts and error sums, in the store's slots; totals over all."""

    def __init__(self, store: StateStore, step_s: float, horizon: int) -> None:
        self.store = store
        self.step_s = step_s
        self.horizon = h = horizon
        n_features = store.last_y.shape[1]
        # A reset (a gap too long to fill) drops the pending forecasts, not the errors so far.
        # A snapshot with the earlier layout (a [target % H, lead] grid, never released) loads
        # without its pending forecasts: at most H scores per sensor are skipped.
        self.pending = store.add_column(
            "acc_pending", (cell_count(h), n_features), np.float32, upgrade=_not_rebuilt
        )
        self.issued_tag = store.add_column("acc_issued", (h,), np.int32)
        self.error_sum = store.add_column("acc_error_sum", (h,), np.float64, kept=True)
        self.error_count = store.add_column("acc_error_count", (h,), np.int32, kept=True)
        self.total_sum = np.zeros(h)
        self.total_count = np.zeros(h, dtype=np.int64)
        self._dirty: set[str] = set()

    def detach(self) -> None:
        """Remove the columns (a reloaded model with another horizon gets new ones)."""
        for name in ("acc_pending", "acc_issued", "acc_error_sum", "acc_error_count"):
            self.store.drop_column(name)

    def _bucket(self, bucket_starts: Sequence[float]) -> npt.NDArray[np.int64]:
        return np.rint(np.asarray(bucket_starts, dtype=np.float64) / self.step_s).astype(np.int64)

    def issued(
        self, slots: IntArray, bucket_starts: Sequence[float], forecasts: FloatArray
    ) -> None:
        """Remember forecasts ``(N, H', F)`` issued after ``bucket_starts`` (distinct slots)."""
        h = self.horizon
        steps = min(forecasts.shape[1], h)
        if not len(slots) or not steps:
            return
        issues = self._bucket(bucket_starts)
        # A forecast's tag vouches for all its leads: the ones it has no value for get NaN.
        values = np.full((len(slots), h, forecasts.shape[2]), np.nan, dtype=np.float32)
        values[:, :steps] = forecasts[:, :steps]
        self.pending[slots[:, None], lead_cells(issues, h)] = values
        self.issued_tag[slots, issues % h] = _tags(issues)

    def actual(self, slots: IntArray, bucket_starts: Sequence[float], values: Float64Array) -> None:
        """Score the pending forecasts of each ``(slot, bucket)`` against ``values`` ``(N, F)``.

        A slot may appear several times (a backlog of steps), in time order.
        """
        if not len(slots):
            return
        h = self.horizon
        targets = self._bucket(bucket_starts)
        issues = targets[:, None] - np.arange(1, h + 1)[None, :]  # (N, H): lead k at k - 1
        due = self.issued_tag[slots[:, None], issues % h] == _tags(issues)
        scoring = due.any(axis=1)
        if not scoring.any():
            return
        slots, due, values = slots[scoring], due[scoring], values[scoring]
        owners = np.broadcast_to(slots[:, None], due.shape)
        cells = lead_cells(targets[scoring], h)
        predicted = np.where(due[:, :, None], self.pending[owners, cells], np.nan)  # (n, H, F)
        actual = values[:, None, :].astype(np.float64)
        errors = np.abs(predicted.astype(np.float64) - actual).mean(axis=2)
        scored = np.isfinite(errors)
        errors = np.where(scored, errors, 0.0)
        np.add.at(self.error_sum, slots, errors)
        np.add.at(self.error_count, slots, scored.astype(np.int32))
        self.total_sum += errors.sum(axis=0)
        self.total_count += scored.sum(axis=0)
        self.pending[owners[due], cells[due]] = np.nan  # scored: nothing left for this target
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


def _not_rebuilt(saved: Mapping[str, npt.NDArray[np.generic]]) -> None:
    return None


def _tags(buckets: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
    tags: npt.NDArray[np.int32] = ((buckets & _TAG_MASK) + 1).astype(np.int32)
    return tags


def _summary(sums: npt.NDArray[np.float64], counts: npt.NDArray[np.integer]) -> dict[str, object]:
    mae = [round(float(s) / int(c), 6) if c else None for s, c in zip(sums, counts, strict=True)]
    return {"scores": SCORES, "mae_by_step": mae, "scored_by_step": [int(c) for c in counts]}
