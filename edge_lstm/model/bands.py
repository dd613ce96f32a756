"""The published 80% band, recalibrated per sensor online (adaptive conformal inference).

Pure numpy, columns of :class:`~edge_lstm.model.state.StateStore` (one table, one eviction rule).
The band of horizon step ``k`` starts from the model's held-out residual quantiles
(``q10``, ``q90``: centre ``c`` and half-width ``d``) and each sensor scales each side::

    lo = v + c - exp(a_lo) * d        hi = v + c + exp(a_hi) * d

When the actual of a step arrives, every band issued for it (1..H steps earlier) is scored and
each side's ``a`` moves by ``gamma * (miss - 0.1)`` (Gibbs & Candès 2021, applied to a log
width as in Angelopoulos et al. 2023's quantile tracking): a side missed more often than 10% of
the time widens, one missed less often narrows, so each sensor's band converges to 80% coverage
whatever its noise, and a noisy sensor gets a wider band than a quiet one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .arrays import FloatArray
from .leads import cell_count, from_grid, lead_cells
from .state import StateStore, Upgrade

Float64Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

TAIL = 0.1
"""Target miss rate of each side: together an 80% band (10% / 90% quantiles)."""
GAMMA = 0.05
"""Step of the log-width per scored band: a miss widens by ``0.9*GAMMA``, a hit narrows by
``0.1*GAMMA``."""
LOG_WIDTH_LIMIT = 4.0
"""Scales stay within ``exp(±4)`` (x0.018 to x55) of the held-out band."""


class BandCalibrator:
    """Per-sensor, per-horizon-step band widths, the bands issued and not yet scored, coverage."""

    def __init__(
        self, store: StateStore, q10: FloatArray, q90: FloatArray, gamma: float = GAMMA
    ) -> None:
        if q10.shape != q90.shape or q10.ndim != 2:
            raise ValueError("q10 and q90 must both be (horizon, F)")
        if not 0.0 < gamma < 1.0:
            raise ValueError("gamma must be in (0, 1)")
        self.gamma = gamma
        self.horizon, n_features = q10.shape
        self.rebase(q10, q90)
        h = self.horizon
        self.log_lo = store.add_column("band_log_lo", (h, n_features), np.float32)
        self.log_hi = store.add_column("band_log_hi", (h, n_features), np.float32)
        self.tick = store.add_column("band_tick", (), np.int64)
        # The bands issued and not yet scored, one ring per lead (leads.py): each step
        # (observed or filled) scores and clears the cells of its own target; a flag says
        # which cells hold an issued band.
        cells = cell_count(h)
        self.pending_lo = store.add_column(
            "band_pending_lo", (cells, n_features), np.float32, upgrade=_upgrade("lo")
        )
        self.pending_hi = store.add_column(
            "band_pending_hi", (cells, n_features), np.float32, upgrade=_upgrade("hi")
        )
        self.pending = store.add_column("band_pending", (cells,), np.bool_, upgrade=_upgrade(""))
        # int32: 2**31 bands scored is 68 years of 1 s steps
        self.scored = store.add_column("band_scored", (h,), np.int32)
        self.covered = store.add_column("band_covered", (h,), np.int32)
        self.total_scored = np.zeros(h, dtype=np.int64)
        self.total_covered = np.zeros(h, dtype=np.int64)

    def rebase(self, q10: FloatArray, q90: FloatArray) -> None:
        """New held-out quantiles (a reloaded model); the sensors' scales are kept."""
        self.center = (q10.astype(np.float64) + q90) / 2.0
        # A degenerate quantile pair (q90 <= q10) still gets a band the calibration can widen.
        self.half = np.maximum((q90.astype(np.float64) - q10) / 2.0, 1e-6)

    def bands(self, slots: IntArray, forecasts: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``(lo, hi)`` around ``forecasts`` ``(B, H', F)`` with each sensor's current widths.

        Past the held-out horizon the last step's band grows like a random walk (``sqrt``).
        """
        steps = forecasts.shape[1]
        h = self.horizon
        if steps <= h:
            center, half = self.center[:steps], self.half[:steps]
            w_lo, w_hi = self.log_lo[slots, :steps], self.log_hi[slots, :steps]
        else:
            grow = np.sqrt(np.arange(h + 1, steps + 1) / h)[:, None]
            center = np.concatenate([self.center, np.repeat(self.center[-1:], steps - h, 0)])
            half = np.concatenate([self.half, self.half[-1] * grow])
            extra = steps - h
            w_lo = np.concatenate([self.log_lo[slots], self.log_lo[slots, -1:].repeat(extra, 1)], 1)
            w_hi = np.concatenate([self.log_hi[slots], self.log_hi[slots, -1:].repeat(extra, 1)], 1)
        mid = forecasts.astype(np.float64) + center
        lo = (mid - np.exp(w_lo) * half).astype(np.float32)
        hi = (mid + np.exp(w_hi) * half).astype(np.float32)
        return lo, hi

    def issue(self, slots: IntArray, lo: FloatArray, hi: FloatArray) -> None:
        """Remember the bands just published so that the actuals can score them."""
        steps = min(lo.shape[1], self.horizon)
        where = (slots[:, None], lead_cells(self.tick[slots], self.horizon, steps))
        self.pending_lo[where] = lo[:, :steps]
        self.pending_hi[where] = hi[:, :steps]
        self.pending[where] = True

    def score(self, slots: IntArray, actual: Float64Array | None) -> None:
        """Advance one step; score the bands issued for it against ``actual`` ``(B, F)``.

        ``actual`` None (a filled step, no reading) only drops the bands for that step.
        """
        target = self.tick[slots] + 1
        self.tick[slots] = target
        where = (slots[:, None], lead_cells(target, self.horizon))
        if actual is not None:
            due = self.pending[where]  # (B, H): the band issued k steps ago, if any
            if due.any():
                self._update(slots, where, due, actual)
        self.pending[where] = False

    def _update(
        self,
        slots: IntArray,
        where: tuple[IntArray, npt.NDArray[np.int64]],
        due: npt.NDArray[np.bool_],
        actual: Float64Array,
    ) -> None:
        lo = self.pending_lo[where]  # (B, H, F)
        hi = self.pending_hi[where]
        value = actual[:, None, :]
        miss_lo = value < lo
        miss_hi = value > hi
        weight = due[:, :, None]
        step_lo = np.where(weight, self.gamma * (miss_lo - TAIL), 0.0)
        step_hi = np.where(weight, self.gamma * (miss_hi - TAIL), 0.0)
        limit = LOG_WIDTH_LIMIT
        self.log_lo[slots] = np.clip(self.log_lo[slots] + step_lo, -limit, limit)
        self.log_hi[slots] = np.clip(self.log_hi[slots] + step_hi, -limit, limit)
        inside = due & ~(miss_lo | miss_hi).any(axis=2)
        self.scored[slots] += due
        self.covered[slots] += inside
        self.total_scored += due.sum(axis=0)
        self.total_covered += inside.sum(axis=0)

    def coverage(self, slots: IntArray | None = None) -> tuple[Float64Array, npt.NDArray[np.int64]]:
        """Live coverage per horizon step (NaN where nothing was scored) and the scored counts.

        ``slots`` None: every band scored since start (evicted sensors included); else the sum
        over those sensors.
        """
        if slots is None:
            scored, covered = self.total_scored, self.total_covered
        else:
            scored, covered = self.scored[slots].sum(axis=0), self.covered[slots].sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(scored > 0, covered / np.maximum(scored, 1), np.nan)
        return rate, scored.astype(np.int64)


def _upgrade(side: str) -> Upgrade:
    """Rebuild ``band_pending_<side>`` (``""``: the flags) from an earlier release's grid.

    Earlier releases kept ``[target % H, lead - 1]`` grids, the flags as a bool grid or (the
    release before) as target ticks (-1: none; a past one: scored).
    """

    def rebuild(saved: Mapping[str, npt.NDArray[Any]]) -> npt.NDArray[Any] | None:
        tick = saved.get("col_band_tick")
        flags = saved.get("col_band_pending")
        ticks = saved.get("col_band_pending_tick")
        if flags is None or flags.ndim != 3:
            flags = None if ticks is None or tick is None else ticks > tick[:, None, None]
        values = flags if not side else saved.get(f"col_band_pending_{side}")
        if tick is None or flags is None or values is None or values.ndim < 3:
            return None
        h = flags.shape[1]
        # The grid's row r holds the one target in tick+1 .. tick+H with that residue.
        rows = np.arange(h)[None, :]
        targets = tick[:, None] + 1 + (rows - tick[:, None] - 1) % h
        return from_grid(values, flags.astype(np.bool_), targets.astype(np.int64))

    return rebuild
