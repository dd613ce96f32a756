"""Each sensor's recent values: a ring in the state store, for lags, level and calendar inputs.

Pure numpy, columns of :class:`~edge_lstm.state.StateStore` (so eviction frees a sensor's ring and
snapshots keep it). A batch is a gather and a scatter over slots, never a loop over sensors.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .features import InputSpec
from .state import StateStore

Float64Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


class HistoryRing:
    """``values[slot, L, F]`` (observed or filled, original units), newest at ``pos - 1``.

    Also the start time of each sensor's latest step (``last_at``, NaN if never given): the
    calendar of future steps follows from it.
    """

    def __init__(self, store: StateStore, spec: InputSpec, n_features: int) -> None:
        self.spec = spec
        self.length = max(spec.history_len, 1)
        self.values = store.add_column(
            "history", (self.length, n_features), np.float64, required=True
        )
        self.pos = store.add_column("history_pos", (), np.int64, required=True)
        self.count = store.add_column("history_count", (), np.int64, required=True)
        self.last_at = store.add_column("last_at", (), np.float64, fill=np.nan, required=True)
        self._taps = np.asarray(spec.taps, dtype=np.intp)

    def push(self, slots: IntArray, values: Float64Array, at: Float64Array | None) -> None:
        """Append one step's values (and its start time, if known) for each slot."""
        pos = self.pos[slots]
        self.values[slots, pos] = values
        self.pos[slots] = (pos + 1) % self.length
        self.count[slots] = np.minimum(self.count[slots] + 1, self.length)
        if at is not None:
            self.last_at[slots] = at

    def tapped(self, slots: IntArray) -> tuple[Float64Array, npt.NDArray[np.int64]]:
        """The values at ``spec.taps`` steps back, ``(B, K, F)``, and each slot's count."""
        index = (self.pos[slots][:, None] - 1 - self._taps[None, :]) % self.length
        taps: Float64Array = self.values[slots[:, None], index]
        return taps, self.count[slots]

    def window(self, slots: IntArray) -> tuple[Float64Array, npt.NDArray[np.int64]]:
        """Each slot's whole ring in time order ``(B, L, F)`` (newest last), and its count."""
        index = (self.pos[slots][:, None] + np.arange(self.length)[None, :]) % self.length
        window: Float64Array = self.values[slots[:, None], index]
        return window, self.count[slots]
