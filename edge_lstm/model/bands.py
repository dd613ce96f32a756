"""The published 80% band, recalibrated per sensor online (adaptive conformal inference).

Pure numpy, columns of :class:`~edge_lstm.model.state.StateStore` (one table, one eviction rule).
The band of horizon step ``k`` starts from the model's held-out residual quantiles
(``q10``, ``q90``: centre ``c`` and half-width ``d``) and each sensor moves each side out
(``b > 0``) or in (``b < 0``) by ``b`` half-widths (columns ``band_out_lo``, ``band_out_hi``)::

    lo = v + c - (1 + b_lo) * d        hi = v + c + (1 + b_hi) * d

When the actual of a step arrives, every band issued for it (1..H steps earlier) is scored and
each side's ``b`` moves by ``gamma * w * (miss - 0.1)``, ``w = 1 + (b_lo + b_hi) / 2`` the band's
width in held-out widths: a side missed more often than 10% of the time moves out, one missed
less often moves in, so each sensor's band converges to 80% coverage whatever its noise, and a
noisy sensor gets a wider band than a quiet one (Gibbs & Candès 2021; the quantile tracking of
Angelopoulos, Candès & Tibshirani 2023, its step scaled by the band's width so that it
grows and shrinks in proportion, as the log scale before it did: a sensor 20 times noisier
than the held-out data widens its band 20-fold in about 130 misses, where a fixed step would
take about 840).

A side may cross the centre. Until this release each side was a log scale of its distance from
``c`` and could only approach it: a sensor whose errors all lay beyond ``c`` (the water flow's
calm held-out part after a validation part with maintenance drops: ``c`` at +2.4 at step 9)
kept a side that never missed, and its band covered 90%. Widths stay within ``WIDTH_LIMIT``
of the held-out band's (then both sides move alike).
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
"""Step per scored band: a miss moves its side out by ``0.9*GAMMA`` of the band's half-width, a
hit moves it in by ``0.1*GAMMA``."""
WIDTH_LIMIT = (float(np.exp(-4.0)), float(np.exp(4.0)))
"""Widths stay within x0.018 to x55 of the held-out band."""


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
        self.out_lo = store.add_column(
            "band_out_lo", (h, n_features), np.float32, upgrade=_from_log_width("lo")
        )
        self.out_hi = store.add_column(
            "band_out_hi", (h, n_features), np.float32, upgrade=_from_log_width("hi")
        )
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
        """New held-out quantiles (a reloaded model); each sensor's ``b`` are kept."""
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
            b_lo, b_hi = self.out_lo[slots, :steps], self.out_hi[slots, :steps]
        else:
            grow = np.sqrt(np.arange(h + 1, steps + 1) / h)[:, None]
            center = np.concatenate([self.center, np.repeat(self.center[-1:], steps - h, 0)])
            half = np.concatenate([self.half, self.half[-1] * grow])
            extra = steps - h
            b_lo = np.concatenate([self.out_lo[slots], self.out_lo[slots, -1:].repeat(extra, 1)], 1)
            b_hi = np.concatenate([self.out_hi[slots], self.out_hi[slots, -1:].repeat(extra, 1)], 1)
        mid = forecasts.astype(np.float64) + center
        lo = (mid - (1.0 + b_lo) * half).astype(np.float32)
        hi = (mid + (1.0 + b_hi) * half).astype(np.float32)
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
        out_lo, out_hi = self.out_lo[slots], self.out_hi[slots]
        width = 1.0 + (out_lo + out_hi) / 2.0  # the band's width, in held-out widths
        rate = np.where(due[:, :, None], self.gamma * width, 0.0)
        out_lo += rate * (miss_lo - TAIL)
        out_hi += rate * (miss_hi - TAIL)
        # the width stays within WIDTH_LIMIT of the held-out band's; each side is free
        width = 1.0 + (out_lo + out_hi) / 2.0
        excess = np.clip(width, *WIDTH_LIMIT) - width
        self.out_lo[slots] = out_lo + excess
        self.out_hi[slots] = out_hi + excess
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


def _from_log_width(side: str) -> Upgrade:
    """``band_out_<side>`` from the log scale an earlier release kept (``band_log_<side>``):
    its side sat ``exp(a)`` half-widths from the centre, ``exp(a) - 1`` beyond the held-out
    band's."""

    def rebuild(saved: Mapping[str, npt.NDArray[Any]]) -> npt.NDArray[Any] | None:
        log = saved.get(f"col_band_log_{side}")
        return None if log is None else np.expm1(log.astype(np.float64)).astype(np.float32)

    return rebuild
