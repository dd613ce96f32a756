"""The companion's seasonal sums, kept per sensor as its values arrive.

The companion (:mod:`edge_lstm.model.companion`) forecasts from ``S(t + j) = sum_k w_k
v_{t+j-L_k}`` for ``j = 0..H``. Gathered from the history ring at every forecast that is
``K * (H + 1)`` reads a sensor (182 for 14 days and 12 steps, most of a forecast's cost at a
thousand sensors); kept here it is ``K`` reads when a value arrives (the new ``S(t + L_1)``,
``L_1`` the shortest lag) and ``H + 1`` at a forecast.

The sums are a column of the state store beside the ring they come from, so eviction and the
sensor table's undo carry both. They are a pure function of the ring and the weights, so they
are neither saved nor sent: loading a snapshot, or taking a sensor over from another daemon,
computes them from the ring that came (a snapshot or a handed-over state names its model file,
not its companion weights), and :meth:`SeasonalSums.rebuild` recomputes them for a reloaded
model with other weights. Until a sensor's ring reaches the longest lag
some sums read slots it has not filled; the companion is not used for it until then, and by
then every sum it reads was computed from observed values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .companion import Companion
from .history import HistoryRing, ring_values, single_ring
from .state import StateStore

Float64Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
CountArray = npt.NDArray[np.int64]

COLUMN = "companion_sums"


class SeasonalSums:
    """``S(t) .. S(t + L_1)`` of each sensor, in a ring indexed by step count."""

    def __init__(self, store: StateStore, history: HistoryRing, companion: Companion) -> None:
        self.companion = companion
        self.history = history
        self.size = companion.lags[0] + 1
        self.sums = store.add_column(
            COLUMN,
            (self.size, companion.n_features),
            np.float64,
            required=True,
            upgrade=self._from_saved,
            derived=True,
        )
        history.read_also([lag - companion.lags[0] for lag in companion.lags])
        # positions in the ring (L-1 the newest) of every S(t + j), j = 0..L_1
        start = history.length - companion.history_len  # the companion's window
        self._every = start + companion.sum_positions(np.arange(self.size))  # (L_1 + 1, K)
        self._ahead = np.arange(self.size, dtype=np.int64) - 1  # j - 1 for j = 0..L_1

    def _slots_of(self, count: npt.NDArray[Any], offsets: npt.ArrayLike) -> IntArray:
        """Ring index of ``S(t + j)`` for each sensor (``count`` values seen, so ``t`` is
        ``count - 1``) and each ``j`` in ``offsets``."""
        t = count.astype(np.int64) - 1
        index: IntArray = (t[:, None] + np.asarray(offsets, np.int64)[None, :]) % self.size
        return index

    def push(self, slots: IntArray, count: CountArray | int, arrived: Float64Array) -> None:
        """The new ``S(t + L_1)`` after the ring took a value: ``arrived`` ``(K, F, B)`` are
        ``v_{t + L_1 - L_k}``, which ``HistoryRing.push`` read with its taps (``count``: its
        counts after the append; an int for one sensor, whose ring index is then Python's)."""
        new = np.einsum("kfb,kf->bf", arrived, self.companion.weight_array)
        self.sums[slots, (count + (self.size - 2)) % self.size] = new

    def read(self, slots: IntArray, steps: int, count: CountArray) -> Float64Array:
        """``S(t), S(t+1) .. S(t + steps)`` ``(B, steps + 1, F)`` of sensors that have seen
        ``count`` values (``HistoryRing.count``, so ``t`` is ``count - 1``)."""
        index = count[:, None] + self._ahead[: steps + 1]  # t + j
        index %= self.size
        index += slots[:, None] * self.size  # one index into (slots x size)
        flat = self.sums.reshape(-1, self.sums.shape[2])
        picked: Float64Array = np.take(flat, index, axis=0)
        return picked

    def rebuild(self, slots: IntArray) -> None:
        """Every sum of ``slots`` again, from their rings."""
        if len(slots):
            history = self.history
            self.sums[slots] = self._from_rings(
                history.values, slots, history.pos[slots], history.count[slots]
            )

    def _from_saved(self, saved: Mapping[str, npt.NDArray[Any]]) -> npt.NDArray[Any] | None:
        """The sums of a snapshot's sensors, from its rings (None: it has none)."""
        ring, pos, count = (
            saved.get(f"col_{n}") for n in ("history", "history_pos", "history_count")
        )
        if ring is not None and ring.shape[1] != self.history.length:
            ring = single_ring(saved)  # as the history column itself loads it
        if ring is None or pos is None or count is None or ring.shape[1] != self.history.length:
            return None
        return self._from_rings(ring, np.arange(len(ring)), pos, count)

    def _from_rings(
        self,
        ring: npt.NDArray[np.float32],
        slots: IntArray,
        pos: npt.NDArray[Any],
        count: npt.NDArray[Any],
    ) -> Float64Array:
        """Every sum of ``slots`` of ``ring`` (``pos``, ``count``: theirs), ``(B, L_1 + 1, F)``
        in the column's ring order."""
        values = ring_values(ring, slots, pos, self._every.ravel())
        shaped = values.reshape(len(slots), self.size, len(self.companion.lags), -1)
        sums = np.empty((len(slots), self.size, self.companion.n_features))
        index = self._slots_of(count, np.arange(self.size))[:, :, None]
        np.put_along_axis(sums, index, self.companion.sums(shaped), axis=1)
        return sums
