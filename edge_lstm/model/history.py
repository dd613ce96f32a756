"""Each sensor's recent values: a ring in the state store, for lags, level and calendar inputs.

Pure numpy, columns of :class:`~edge_lstm.model.state.StateStore` (so eviction frees a sensor's
ring and snapshots keep it). A batch is a gather and a scatter over slots, never a loop over
sensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from .features import InputSpec, as_kept, level_sum_step
from .state import StateStore

Float64Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
CountArray = npt.NDArray[np.int64]


class HistoryRing:
    """Each slot's last ``L`` values (observed or filled, original units) and their level.

    ``values[slot]`` is a ring: the next value goes to ``pos``, so in time order the values
    are ``pos, pos+1, ... (mod L)``. Also the running sum of the last ``level_window`` values
    (the level is O(1) per step) and the start time of each sensor's latest step (``last_at``,
    NaN if never given), from which future step times follow.

    Values are kept as float32, a reading's 7 significant digits: half the memory of float64
    (1.3 KB a sensor for a week of hourly steps). Each value is rounded once, as it enters;
    the arithmetic on it (level sum, lags) is float64. Training rounds its series the same way
    (``features.training_inputs``), so lags and levels agree with it to the bit.
    """

    def __init__(
        self, store: StateStore, spec: InputSpec, n_features: int, length: int = 0
    ) -> None:
        self.spec = spec
        self.window = spec.level_window
        self.length = max(spec.history_len, length, 1)
        self.values = store.add_column(
            "history", (self.length, n_features), np.float32, required=True, upgrade=single_ring
        )
        self.pos = store.add_column("history_pos", (), np.int32, required=True)
        # values seen since the sensor started (not capped); int32: 68 years of 1 s steps
        self.count = store.add_column("history_count", (), np.int32, required=True)
        self.level_sum = store.add_column("level_sum", (n_features,), np.float64, required=True)
        self.last_at = store.add_column("last_at", (), np.float64, fill=np.nan, required=True)
        self.read_also(())

    def read_also(self, back: Sequence[int]) -> None:
        """Have :meth:`push` also return the values ``back`` steps before the newest, after
        the spec's taps (the companion's sums read them as each value arrives)."""
        self._taps = np.asarray([self.length - 1 - b for b in (*self.spec.taps, *back)])
        # row p: the ring index of each tap once the value at p has arrived (a row lookup
        # instead of an addition and a modulo: push_one 0.6 µs against 1.7, push at 64 sensors
        # 7.8 against 10.2, measured; 46 KB for the bench's seasonal model)
        after = np.arange(self.length)[:, None] + self._taps[None, 1:] + 1
        self._tap_rows = after % self.length

    def push(
        self, slots: IntArray, values: Float64Array, at: Float64Array | None
    ) -> tuple[Float64Array, CountArray, Float64Array]:
        """Append one step's values (and start time, if known); returns what the inputs read.

        That is: the values at ``spec.taps`` steps back (then those of :meth:`read_also`), taps
        first ``(K, F, B)``, the counts and the levels, all after the append (one pass over the
        slots, no re-reading). The values are rounded to float32 first, as the ring keeps them.
        """
        values = as_kept(values)
        pos = self.pos[slots].astype(np.intp)
        count = self.count[slots].astype(np.int64) + 1
        length = self.length
        if self.window:
            dropped = self.values[slots, (pos + length - self.window) % length]
            if count.min() <= self.window:  # a young sensor: nothing leaves its window yet
                dropped[count <= self.window] = 0.0
            level_sum = level_sum_step(self.level_sum[slots], dropped, values)
            self.level_sum[slots] = level_sum
            level = level_sum / np.minimum(count, self.window)[:, None]
        else:
            level = np.zeros(values.shape)
        self.values[slots, pos] = values
        taps = np.empty((len(self._taps), values.shape[1], len(slots)))
        taps[0] = values.T
        if len(self._taps) > 1:
            where = self._tap_rows[pos].T  # (K-1, B)
            taps[1:] = self.values[slots[None, :], where].transpose(0, 2, 1)
        pos += 1  # pos is a copy (fancy indexing)
        pos[pos == length] = 0
        self.pos[slots] = pos
        self.count[slots] = count
        if at is not None:
            self.last_at[slots] = at
        return taps, count, level

    def push_one(self, slot: int, value: float, at: float | None) -> tuple[list[float], int, float]:
        """:meth:`push` for one slot of a one-feature ring, on Python floats: the same
        float64 arithmetic in the same order, so the same values to the bit (a numpy call on
        one value costs about 1 µs). Returns the taps (then those of :meth:`read_also`), the
        count and the level."""
        value = float(np.float32(value))  # as_kept: rounded as the ring keeps it
        ring = self.values[slot, :, 0]
        pos, count, length = int(self.pos[slot]), int(self.count[slot]) + 1, self.length
        level = 0.0
        if self.window:
            # a young sensor: nothing leaves its window yet
            leaving = float(ring[pos - self.window]) if count > self.window else 0.0
            level_sum = level_sum_step(float(self.level_sum[slot, 0]), leaving, value)
            self.level_sum[slot, 0] = level_sum
            level = level_sum / min(count, self.window)
        ring[pos] = value
        taps: list[float] = [value, *ring[self._tap_rows[pos]].tolist()]
        self.pos[slot] = 0 if pos + 1 == length else pos + 1
        self.count[slot] = count
        if at is not None:
            self.last_at[slot] = at
        return taps, count, level

    def level(self, slots: IntArray) -> Float64Array:
        """Each slot's ``level_t``: the mean of its last ``min(count, level_window)`` values."""
        if not self.window:
            return np.zeros((len(slots), self.values.shape[2]))
        seen = np.minimum(self.count[slots], self.window)
        level: Float64Array = self.level_sum[slots] / seen[:, None]
        return level

    def at(self, slots: IntArray, positions: npt.ArrayLike) -> Float64Array:
        """Values at ``positions`` (``(P,)``; ``L-1`` the newest) as ``(B, P, F)``."""
        return ring_values(self.values, slots, self.pos[slots], positions)


def ring_values(
    values: npt.NDArray[np.float32],
    slots: IntArray,
    pos: npt.NDArray[np.integer[Any]],
    positions: npt.ArrayLike,
) -> Float64Array:
    """Rings ``values`` ``(S, L, F)`` at ``positions`` (``L-1`` the newest) of ``slots`` whose
    next value goes to ``pos``, as ``(B, P, F)``."""
    length = values.shape[1]
    # Ring rows of each slot, wrapped by a subtraction (an integer % took twice as long,
    # measured), then one index into the (slots x L, F) rows (not two: twice as fast here).
    rows = pos.astype(np.int64)[:, None] + np.asarray(positions, np.int64)[None, :]
    rows -= length * (rows >= length)
    rows += slots.astype(np.int64)[:, None] * length
    flat = values.reshape(-1, values.shape[2])
    picked: Float64Array = np.take(flat, rows, axis=0).astype(np.float64)
    return picked


def single_ring(saved: Mapping[str, Float64Array]) -> Float64Array | None:
    """The ring as the previous release saved it: twice over (``2L`` rows, rows ``i`` and
    ``i + L`` equal) with the same ``pos``; its first half is this ring."""
    doubled = saved.get("col_history")
    if doubled is None or doubled.shape[1] % 2:
        return None
    return doubled[:, : doubled.shape[1] // 2]


@dataclass(frozen=True)
class RolloutPlan:
    """Which history values a ``steps``-long rollout reads, and where each step finds them.

    The rollout keeps one buffer: the history values it reads (position ``L-1`` is the newest
    observed), then its predictions. At rollout step ``k`` (``k >= 1``; step 0 is the
    last observed one) ``lags[k]`` are the buffer columns of its lag values (``spec.lags``
    order) and ``dropped[k]`` the column of the value leaving the level window as prediction
    ``k - 1`` enters it; its ``v_t`` is prediction ``k - 1``, column ``history + k - 1``.
    """

    positions: IntArray
    """The history positions it reads, in buffer column order (``L-1`` the newest)."""
    history: int
    """Buffer columns holding history; predictions follow."""
    lags: tuple[IntArray, ...]
    lag_columns: tuple[tuple[int, ...], ...]
    """``lags`` as Python ints (the few-sensor loop indexes lists with them)."""
    dropped: tuple[int, ...]
    lags_known: int
    """Steps before this one read their lags from history only (gathered in one go)."""
    history_lags: IntArray
    """``lags[1 : lags_known]`` as one ``(lags_known - 1, len(spec.lags))`` array."""
    width: int
    reads_predictions: bool
    """Whether a lag or the level's dropped value ever comes from a prediction (else the
    buffer's prediction columns are never read)."""


@lru_cache(maxsize=32)
def rollout_plan(spec: InputSpec, length: int, steps: int) -> RolloutPlan:
    """The plan for ``spec`` with a ring of ``length`` values (cached: a few horizons in use)."""
    taps = np.asarray(spec.taps, dtype=np.intp)
    # Position p of the timeline: 0..length-1 the ring (length-1 newest), then prediction k-1
    # at length-1+k. Step k reads positions length-1+k-taps, and drops length-1+k-window.
    tap_positions = [length - 1 + k - taps for k in range(steps)]
    drop_positions = [max(length - 1 + k - spec.level_window, 0) for k in range(steps)]
    # sorted(set()), not np.unique: that imports numpy.ma (1.2 MiB the daemon needs nowhere else)
    wanted = set(np.concatenate([*tap_positions, drop_positions]).tolist())
    read = np.asarray(sorted(wanted), dtype=np.intp)
    observed = read[read < length]
    column_of = np.full(length + steps, -1, dtype=np.intp)
    column_of[observed] = np.arange(observed.size)
    column_of[length:] = observed.size + np.arange(steps)
    lag_index = spec.block_taps[1:]
    lags = tuple(column_of[p][lag_index] for p in tap_positions)
    from_predictions = [k for k in range(1, steps) if (lags[k] >= observed.size).any()]
    known = from_predictions[0] if from_predictions else steps
    return RolloutPlan(
        positions=observed,
        history=observed.size,
        lags=lags,
        lag_columns=tuple(tuple(columns.tolist()) for columns in lags),
        dropped=tuple(int(column_of[p]) for p in drop_positions),
        lags_known=known,
        history_lags=np.asarray(lags[1:known], dtype=np.intp).reshape(known - 1, len(lag_index)),
        width=observed.size + steps,
        reads_predictions=known < steps
        or any(d >= observed.size for d in column_of[drop_positions[1:]].tolist()),
    )
