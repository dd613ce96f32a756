"""The step inputs of a model with lags, a level or calendar covariates (metadata ``inputs``).

Builds each step's input rows from the sensors' history rings (:mod:`edge_lstm.model.history`) with
the functions training uses (:mod:`edge_lstm.model.features`), and runs the autoregressive rollout:
each prediction is appended to a copy of the history, moves the level and later lags, and the
calendar follows the future step times. The :class:`~edge_lstm.model.forecaster.Forecaster`
delegates here for such models; a model without extra inputs never comes here.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .arrays import FloatArray
from .companion import Companion
from .features import (
    calendar_features,
    inputs_taps_first,
    level_sum_step,
    output_values,
    z_blocks,
)
from .history import HistoryRing, rollout_plan
from .metadata import ModelMeta
from .state import StateStore

Float64Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


CALENDAR_AHEAD = 48
"""Step times computed with a new one (the next two days of hourly steps)."""
CALENDAR_CACHE_ROWS = 4096


class _Model(Protocol):
    meta: ModelMeta

    def step(self, x: Any, state: Any) -> tuple[FloatArray, FloatArray]: ...


class InputPath:
    """History ring, calendar rows and rollout for one model's ``inputs``."""

    def __init__(self, store: StateStore, model: _Model) -> None:
        self.model = model
        self.meta = model.meta
        self.spec = self.meta.input_spec
        self.history = HistoryRing(store, self.spec, self.meta.n_features, self.meta.history_len)
        self._calendar_cache: dict[float, Float64Array] = {}

    def rows(self, slots: IntArray, values: Float64Array, times: Float64Array | None) -> FloatArray:
        """Append one step's values to the history; the model's input rows for it."""
        taps, count, level = self.history.push(slots, values, times)
        rows = None if times is None else self._calendar(times + self.meta.step_s)
        return inputs_taps_first(taps, count, level, None, self.spec, self.meta.scaler, rows)

    def filled(self, slots: IntArray, last_y: FloatArray) -> tuple[Float64Array, Float64Array]:
        """A missing step's values (the one-step predictions) and its start times."""
        level = self.history.level(slots)
        values = output_values(last_y, level, self.meta.scaler)
        return values, self.history.last_at[slots] + self.meta.step_s

    def rollout(
        self, slots: IntArray, steps: int, last_y: FloatArray, state: FloatArray
    ) -> FloatArray:
        """Forecasts ``(B, steps, F)``; ``state`` is a copy, the history is not touched."""
        history = self.history
        spec, scaler, window = self.spec, self.meta.scaler, self.spec.level_window
        plan = rollout_plan(spec, history.length, steps)
        # One buffer, taps first (column, feature, sensor): the history values the rollout
        # reads, then its own predictions. Batch innermost keeps each numpy loop long.
        values = np.empty((plan.width, self.meta.n_features, len(slots)))
        for column, position, width in plan.runs:
            values[column : column + width] = history.run(slots, position, width)
        count = history.count[slots]
        level_sum = history.level_sum[slots]  # a copy: the real one is not touched
        level = history.level(slots)
        batch, n_features = len(slots), self.meta.n_features
        out = np.empty((batch, steps, n_features))
        out[:, 0] = output_values(last_y, level, scaler)
        # Every step's input rows in one buffer: the calendar part is known in advance and
        # written once; each step writes its value part and hands its rows to the model as
        # they are (contiguous float32: no copy).
        rows = np.empty((max(steps - 1, 0), batch, spec.width(n_features)), dtype=np.float32)
        calendar = self._rollout_calendar(slots, steps)
        values_end = (1 + len(spec.lags)) * n_features
        if calendar is not None:
            rows[:, :, values_end:] = calendar.transpose(1, 0, 2)
        full_from = int(window - count.min()) + 1  # from this step on, every window is full
        lags_from = int(spec.max_lag - count.min())  # from this step on, every lag exists
        for k in range(1, steps):
            # Prediction k-1 becomes the newest value: the level and the lags move on.
            value = out[:, k - 1]
            values[plan.history + k - 1] = value.T
            seen = count + (k - 1)  # values before this one (uncapped: window <= ring)
            if window:
                dropped = values[plan.dropped[k]].T
                if k < full_from:
                    dropped = np.where((seen < window)[:, None], 0.0, dropped)
                    level_sum = level_sum_step(level_sum, dropped, value)
                    level = level_sum / np.minimum(seen + 1, window)[:, None]
                else:
                    level_sum = level_sum_step(level_sum, dropped, value)
                    level = level_sum / window
            counts = seen + 1 if k < lags_from else None
            blocks = z_blocks(values[plan.blocks[k]], counts, level, spec, scaler)
            x = rows[k - 1]
            x[:, :values_end] = blocks.reshape(values_end, batch).T
            y, state = self.model.step(x, state)
            out[:, k] = output_values(y, level, scaler)
        if self.meta.companion is not None:
            out = self._blend(slots, out, self.meta.companion)
        return out.astype(np.float32)

    def _blend(self, slots: IntArray, lstm: Float64Array, companion: Companion) -> Float64Array:
        """The companion's blend for the sensors whose history reaches its longest lag."""
        ready = self.history.count[slots] >= companion.history_len
        if not ready.any():
            return lstm
        steps = min(lstm.shape[1], companion.horizon)
        positions = companion.plan(steps)
        start = self.history.length - companion.history_len  # its window's oldest position
        lin = companion.forecast_at(self.history.at(slots, start + positions), steps)
        return companion.blend(lstm, lin, ready)

    def _rollout_calendar(self, slots: IntArray, steps: int) -> npt.NDArray[np.float64] | None:
        """Calendar rows ``(B or 1, steps-1, 2C)`` of the steps the rollout predicts."""
        if not self.spec.uses_time or steps < 2:
            return None
        start = self.history.last_at[slots]
        offsets = self.meta.step_s * np.arange(2, steps + 1)
        if (start == start[0]).all():  # one clock for the batch: one row per step
            return self._calendar(start[0] + offsets)[None, :, :]
        flat = self._calendar((start[:, None] + offsets[None, :]).reshape(-1))
        return flat.reshape(len(slots), steps - 1, -1)

    def _calendar(self, times: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Calendar rows of ``times`` (one row if they are all equal), from a small cache.

        Consecutive forecasts share all but one future step time: most rows are cache hits.
        Missing rows are computed in one call; a single new time is usually the next step of a
        clock that moves one step per call, so the steps after it are computed with it (rows
        are a pure function of the time: the same values, fewer calls at one sensor).
        """
        cache = self._calendar_cache
        spec = self.spec
        if times.size > 32 and not (times == times[0]).all():
            return calendar_features(times, spec.calendar, spec.timezone)
        one = times.size == 1 or (times == times[0]).all()
        distinct = [float(times[0])] if one else times.tolist()
        found = [cache.get(t) for t in distinct]
        missing = [t for t, row in zip(distinct, found, strict=True) if row is None]
        new: dict[float, Float64Array] = {}
        if missing:
            wanted = (
                missing[0] + self.meta.step_s * np.arange(CALENDAR_AHEAD)
                if len(missing) == 1
                else np.asarray(missing)
            )
            computed = calendar_features(wanted, spec.calendar, spec.timezone)
            new.update(zip(wanted.tolist(), computed, strict=True))
            if len(cache) + len(new) > CALENDAR_CACHE_ROWS:
                cache.clear()
            cache.update(new)
        rows = [new[t] if row is None else row for t, row in zip(distinct, found, strict=True)]
        if len(rows) == 1:  # (1, 2C): assigning it into x broadcasts it to every row
            return rows[0][None, :]
        return np.stack(rows)
