"""Running accuracy of the published forecasts: columns of the sensor table. Pure numpy.

Forecast step ``k`` issued after bucket ``b`` is for bucket ``b + k``. A sensor's pending
predictions are one ring per lead ``k`` (``model/leads.py``), and ``issued[b % H]`` tags the
forecast issued after bucket ``b``: the actual of bucket ``t`` scores, for each ``k``, the cell
of ``t`` in ring ``k`` if the forecast of bucket ``t - k`` was issued (its tag is there), then
clears it. It comes before the forecast issued after that bucket (the pipeline's order), the
only one that writes those cells again. The error of one step is the mean absolute error over
features, in original units.

Beside it, the reference a user would otherwise pick: seasonal naive, whose forecast of bucket
``t`` from any origin up to a season before is the actual of ``t - season``. Each sensor keeps
its last season of actuals (a ring by bucket, each value tagged with its bucket, so a gap leaves
no wrong value behind), and every scored cell whose ``t - season`` actual is there adds both
errors to paired sums: the ratio of the two (``skill_by_step``, below 1 where the model is
better) compares them on the same targets, like ``edge-lstm evaluate``'s table.
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

COLUMNS = ("acc_pending", "acc_issued", "acc_error_sum", "acc_error_count")
"""The columns of :class:`Accuracy` itself (``detach`` drops them)."""

MAX_SEASON = 336
"""The longest season the reference keeps (a day of 5-minute steps is 288): its ring holds
``season`` values and tags a sensor (2.7 KB at 336 steps). A longer season has no reference."""


class Accuracy:
    """Per-sensor pending forecasts and error sums, in the store's slots; totals over all."""

    def __init__(self, store: StateStore, step_s: float, horizon: int, season: int = 0) -> None:
        self.store = store
        self.step_s = step_s
        self.horizon = h = horizon
        self.asked_season = season
        self.season = season if 1 <= season <= MAX_SEASON else 0  # 0: no reference
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
        self.reference = None if not self.season else _Reference(store, self.season, h, n_features)

    def detach(self) -> None:
        """Remove the columns (a reloaded model with another horizon gets new ones)."""
        for name in (*COLUMNS, *(_Reference.COLUMNS if self.reference else ())):
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
        targets = self._bucket(bucket_starts)
        self._score(slots, targets, values)
        if self.reference is not None:  # after the scoring: it reads the actuals a season ago
            self.reference.remember(slots, targets, values)

    def _score(self, slots: IntArray, targets: npt.NDArray[np.int64], values: Float64Array) -> None:
        h = self.horizon
        issues = targets[:, None] - np.arange(1, h + 1)[None, :]  # (N, H): lead k at k - 1
        due = self.issued_tag[slots[:, None], issues % h] == _tags(issues)
        scoring = due.any(axis=1)
        if not scoring.any():
            return
        slots, due, values = slots[scoring], due[scoring], values[scoring]
        targets = targets[scoring]
        owners = np.broadcast_to(slots[:, None], due.shape)
        cells = lead_cells(targets, h)
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
        if self.reference is not None:
            self.reference.score(slots, targets, values, errors, scored)
        ids = self.store.ids_of(slots[scored.any(axis=1)])
        self._dirty.update(ids)

    def forget(self, sensor_id: str) -> None:
        """An evicted sensor: nothing to republish for it."""
        self._dirty.discard(sensor_id)

    def summary(self) -> dict[str, object]:
        """Overall MAE and sample count per horizon step, and the seasonal naive reference."""
        return self._with_reference(_summary(self.total_sum, self.total_count), None)

    def sensor_summary(self, sensor_id: str) -> dict[str, object] | None:
        """One sensor's MAE and count per horizon step (None if never scored), and its
        seasonal naive reference."""
        if sensor_id not in self.store:
            return None
        (slot,) = self.store.slots([sensor_id])
        count = self.error_count[slot]
        if not count.any():
            return None
        return self._with_reference(_summary(self.error_sum[slot], count), slot)

    def _with_reference(self, summary: dict[str, object], slot: int | None) -> dict[str, object]:
        """``summary`` with the seasonal naive reference of ``slot`` (None: of all sensors)."""
        reference = None if self.reference is None else self.reference.summary(slot)
        return {**summary, "seasonal_naive": reference}

    def take_dirty(self) -> list[str]:
        """Sensors scored since the last call (to republish their accuracy)."""
        dirty, self._dirty = sorted(self._dirty), set()
        return dirty


class _Reference:
    """Seasonal naive beside the model: each sensor's last season of actuals, and paired error
    sums per horizon step (model and seasonal naive on the same scored cells)."""

    COLUMNS = ("acc_ref_value", "acc_ref_tag", "acc_ref_model", "acc_ref_naive", "acc_ref_count")

    def __init__(self, store: StateStore, season: int, horizon: int, n_features: int) -> None:
        self.season = season
        # Kept across a reset, as the error sums: the actuals stay actuals.
        self.value = store.add_column("acc_ref_value", (season, n_features), np.float32, kept=True)
        self.tag = store.add_column("acc_ref_tag", (season,), np.int32, kept=True)
        self.model_sum = store.add_column("acc_ref_model", (horizon,), np.float64, kept=True)
        self.naive_sum = store.add_column("acc_ref_naive", (horizon,), np.float64, kept=True)
        self.count = store.add_column("acc_ref_count", (horizon,), np.int32, kept=True)
        # beyond a season ahead seasonal naive reads further back: those leads are not paired
        self.within = np.arange(1, horizon + 1) <= season
        self.total_model = np.zeros(horizon)
        self.total_naive = np.zeros(horizon)
        self.total_count = np.zeros(horizon, dtype=np.int64)

    def score(
        self,
        slots: IntArray,
        targets: npt.NDArray[np.int64],
        values: Float64Array,
        errors: Float64Array,
        scored: npt.NDArray[np.bool_],
    ) -> None:
        """Add the cells ``scored`` (``(n, H)``, the model's ``errors``) whose target's actual
        a season before is known (``values``: the targets' actuals)."""
        where = slots, targets % self.season
        known = self.tag[where] == _tags(targets - self.season)
        if known.any():
            before = self.value[where].astype(np.float64)
            naive = np.abs(values - before).mean(axis=1)  # the same for every lead
            paired = scored & known[:, None] & self.within
            model = np.where(paired, errors, 0.0)
            naive_cells = np.where(paired, naive[:, None], 0.0)
            np.add.at(self.model_sum, slots, model)
            np.add.at(self.naive_sum, slots, naive_cells)
            np.add.at(self.count, slots, paired.astype(np.int32))
            self.total_model += model.sum(axis=0)
            self.total_naive += naive_cells.sum(axis=0)
            self.total_count += paired.sum(axis=0)

    def remember(
        self, slots: IntArray, targets: npt.NDArray[np.int64], values: Float64Array
    ) -> None:
        """Keep each row's actual for the target a season later. A backlog may hold a slot
        twice in one ring cell: numpy does not say which of two writes to one element lands,
        so only each cell's last row (the newest: rows come in time order) is written."""
        cells = slots.astype(np.int64) * self.season + targets % self.season
        rows = np.arange(len(cells))
        if len(cells) > 1:
            order = np.argsort(cells, kind="stable")
            ordered = cells[order]
            last = np.append(ordered[1:] != ordered[:-1], True)  # the last of each run
            rows = order[last]
        self.value[slots[rows], targets[rows] % self.season] = values[rows]
        self.tag[slots[rows], targets[rows] % self.season] = _tags(targets[rows])

    def summary(self, slot: int | None) -> dict[str, object]:
        """``season``, seasonal naive's MAE, the model's over the same cells, their ratio and
        the cells per horizon step; of one slot, or of all (None)."""
        if slot is None:
            model, naive, count = self.total_model, self.total_naive, self.total_count
        else:
            model, naive, count = self.model_sum[slot], self.naive_sum[slot], self.count[slot]
        return {
            "season": self.season,
            "mae_by_step": _means(naive, count),
            "model_mae_by_step": _means(model, count),
            "skill_by_step": [
                round(float(m) / float(n), 4) if c and n > 0 else None
                for m, n, c in zip(model, naive, count, strict=True)
            ],
            "scored_by_step": [int(c) for c in count],
        }


def _not_rebuilt(saved: Mapping[str, npt.NDArray[np.generic]]) -> None:
    return None


def _tags(buckets: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
    tags: npt.NDArray[np.int32] = ((buckets & _TAG_MASK) + 1).astype(np.int32)
    return tags


def _summary(sums: npt.NDArray[np.float64], counts: npt.NDArray[np.integer]) -> dict[str, object]:
    return {
        "scores": SCORES,
        "mae_by_step": _means(sums, counts),
        "scored_by_step": [int(c) for c in counts],
    }


def _means(sums: npt.NDArray[np.float64], counts: npt.NDArray[np.integer]) -> list[float | None]:
    return [round(float(s) / int(c), 6) if c else None for s, c in zip(sums, counts, strict=True)]
