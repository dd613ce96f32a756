"""Each sensor's recent values: a ring in the state store, for lags, level and calendar inputs.

Pure numpy, columns of :class:`~edge_lstm.state.StateStore` (so eviction frees a sensor's ring and
snapshots keep it). A batch is a gather and a scatter over slots, never a loop over sensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from .features import InputSpec, level_sum_step
from .state import StateStore

Float64Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
CountArray = npt.NDArray[np.int64]


class HistoryRing:
    """``values[slot, L, F]`` (observed or filled, original units), newest at ``pos - 1``.

    Also the running sum of the last ``level_window`` values (the level is O(1) per step) and
    the start time of each sensor's latest step (``last_at``, NaN if never given): the calendar
    of future steps follows from it.
    """

    def __init__(self, store: StateStore, spec: InputSpec, n_features: int) -> None:
        self.spec = spec
        self.window = spec.level_window
        self.length = max(spec.history_len, 1)
        self.values = store.add_column(
            "history", (self.length, n_features), np.float64, required=True
        )
        self.pos = store.add_column("history_pos", (), np.int64, required=True)
        self.count = store.add_column("history_count", (), np.int64, required=True)
        self.level_sum = store.add_column("level_sum", (n_features,), np.float64, required=True)
        self.last_at = store.add_column("last_at", (), np.float64, fill=np.nan, required=True)
        self._taps = np.asarray(spec.taps, dtype=np.intp)

    def push(self, slots: IntArray, values: Float64Array, at: Float64Array | None) -> None:
        """Append one step's values (and its start time, if known) for each slot."""
        pos = self.pos[slots]
        count = self.count[slots]
        if self.window:
            leaving = pos - self.window
            leaving[leaving < 0] += self.length
            dropped = self.values[slots, leaving]
            if count.min() < self.window:  # a young sensor: nothing leaves its window yet
                dropped[count < self.window] = 0.0
            self.level_sum[slots] = level_sum_step(self.level_sum[slots], dropped, values)
        self.values[slots, pos] = values
        self.pos[slots] = (pos + 1) % self.length
        self.count[slots] = np.minimum(count + 1, self.length)
        if at is not None:
            self.last_at[slots] = at

    def level(self, slots: IntArray) -> Float64Array:
        """Each slot's ``level_t``: the mean of its last ``min(count, level_window)`` values."""
        if not self.window:
            return np.zeros((len(slots), self.values.shape[2]))
        seen = np.minimum(self.count[slots], self.window)
        level: Float64Array = self.level_sum[slots] / seen[:, None]
        return level

    def gather(self, slots: IntArray, back: IntArray) -> tuple[Float64Array, CountArray]:
        """Values ``back`` steps before each slot's newest, ``(B, len(back), F)``, and counts."""
        index = (self.pos[slots][:, None] - 1 - back[None, :]) % self.length
        values: Float64Array = self.values[slots[:, None], index]
        return values, self.count[slots]

    def tapped(self, slots: IntArray) -> tuple[Float64Array, CountArray]:
        """The values at ``spec.taps`` steps back, ``(B, K, F)``, and each slot's count."""
        return self.gather(slots, self._taps)


@dataclass(frozen=True)
class RolloutPlan:
    """Which history values a ``steps``-long rollout reads, and where each step finds them.

    The rollout keeps one buffer per sensor: the ``back`` history values (steps before the
    newest observed one), then its predictions. At rollout step ``k`` (``k >= 1``; step 0 is the
    last observed one) ``taps[k]`` are the buffer columns of ``spec.taps`` and ``dropped[k]``
    the column of the value leaving the level window as prediction ``k - 1`` enters it.
    """

    back: IntArray
    taps: tuple[IntArray, ...]
    dropped: tuple[int, ...]
    width: int


@lru_cache(maxsize=32)
def rollout_plan(spec: InputSpec, length: int, steps: int) -> RolloutPlan:
    """The plan for ``spec`` with a ring of ``length`` values (cached: a few horizons in use)."""
    taps = np.asarray(spec.taps, dtype=np.intp)
    # Position p of the timeline: 0..length-1 the ring (length-1 newest), then prediction k-1
    # at length-1+k. Step k reads positions length-1+k-taps, and drops length-1+k-window.
    tap_positions = [length - 1 + k - taps for k in range(steps)]
    drop_positions = [max(length - 1 + k - spec.level_window, 0) for k in range(steps)]
    read = np.unique(np.concatenate([*tap_positions, drop_positions]))
    observed = read[read < length]
    column_of = np.full(length + steps, -1, dtype=np.intp)
    column_of[observed] = np.arange(observed.size)
    column_of[length:] = observed.size + np.arange(steps)
    return RolloutPlan(
        back=length - 1 - observed,
        taps=tuple(column_of[p] for p in tap_positions),
        dropped=tuple(int(column_of[p]) for p in drop_positions),
        width=observed.size + steps,
    )
