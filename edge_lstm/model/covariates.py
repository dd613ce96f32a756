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
from .features import InputSpec, calendar_features, inputs_taps_first, output_values
from .history import HistoryRing, RolloutPlan, rollout_plan
from .metadata import ModelMeta
from .profile import COLUMN as SUMS_COLUMN
from .profile import SeasonalSums
from .state import StateStore

Float64Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
CountArray = npt.NDArray[np.int64]


FEW = 6
"""Up to this many sensors (of one feature) an observe and a forecast run on Python floats, a
loop over sensors; more take numpy's batch path (measured: docs/bench.md)."""

CALENDAR_AHEAD = 48
"""Calendar rows computed past the latest time asked (the next two days of hourly steps)."""


class _Model(Protocol):
    meta: ModelMeta

    def advance(self, x: Any, state: FloatArray) -> FloatArray: ...


class InputPath:
    """History ring, calendar rows and rollout for one model's ``inputs``."""

    def __init__(self, store: StateStore, model: _Model) -> None:
        self.model = model
        self.meta = model.meta
        self.spec = self.meta.input_spec
        self.store = store
        self.history = HistoryRing(store, self.spec, self.meta.n_features, self.meta.history_len)
        companion = self.meta.companion
        self.sums = None if companion is None else SeasonalSums(store, self.history, companion)
        # each lag's season and the tap that reads it (the few-sensor rows)
        self._lag_taps = tuple(zip(self.spec.lags, self.spec.block_taps[1:], strict=True))
        # calendar rows of start + step * i (i = 0..n-1): empty until the first time is asked
        self._calendar_block: tuple[float, Float64Array] = (0.0, np.empty((0, 0)))

    def rows(self, slots: IntArray, values: Float64Array, times: Float64Array | None) -> FloatArray:
        """Append one step's values to the history; the model's input rows for it."""
        if len(slots) <= FEW and values.shape[1] == 1:
            return self._rows_few(slots, values, times)
        taps, count, level = self.history.push(slots, values, times)
        if self.sums is not None:
            own = len(self.spec.taps)
            self.sums.push(slots, count, taps[own:])
            taps = taps[:own]
        rows = None if times is None else self._calendar(times + self.meta.step_s)
        return inputs_taps_first(taps, count, level, None, self.spec, self.meta.scaler, rows)

    def _rows_few(
        self, slots: IntArray, values: Float64Array, times: Float64Array | None
    ) -> FloatArray:
        """:meth:`rows` of a few sensors with one feature, on Python floats (the history's
        :meth:`~edge_lstm.model.history.HistoryRing.push_one` per sensor, then
        :func:`~edge_lstm.model.features.z_blocks`'s ``(v - (level + mean)) / scale``, a
        missing lag ``v_t``): the same rows to the bit. An observe of the bench's seasonal
        model took 74 µs at one sensor and 42 µs a sensor at two on the batch path, 46 and 29
        on this one (plain model: 30 and 17)."""
        spec, scaler, history, lags = self.spec, self.meta.scaler, self.history, self._lag_taps
        at: list[float | None] = [None] * len(slots) if times is None else times.tolist()
        mean, scale = float(scaler.mean[0]), float(scaler.scale[0])
        rows = np.empty((len(slots), spec.width(1)), dtype=np.float32)
        arrived, counts, own = [], [], len(spec.taps)
        readings = zip(slots.tolist(), values.ravel().tolist(), strict=True)
        for b, (slot, value) in enumerate(readings):
            taps, count, level = history.push_one(slot, value, at[b])
            shift, newest, row = level + mean, taps[0], rows[b]
            row[0] = (newest - shift) / scale
            for i, (season, tap) in enumerate(lags, start=1):
                row[i] = ((taps[tap] if count >= season else newest) - shift) / scale
            arrived.append(taps[own:])
            counts.append(count)
        if self.sums is not None:
            count_of = counts[0] if len(counts) == 1 else np.asarray(counts)
            self.sums.push(slots, count_of, np.asarray(arrived).T[:, None, :])
        first = at[0]
        if times is not None and first is not None and spec.calendar:
            step = self.meta.step_s
            if at.count(first) == len(at):  # one clock: one row
                rows[:, 1 + len(spec.lags) :] = self._calendar_run(first + step, 1)
            else:
                rows[:, 1 + len(spec.lags) :] = self._calendar(times + step)
        return rows

    def filled(self, slots: IntArray, last_y: FloatArray) -> tuple[Float64Array, Float64Array]:
        """A missing step's values (the one-step predictions) and its start times."""
        level = self.history.level(slots)
        values = output_values(last_y, level, self.meta.scaler)
        return values, self.history.last_at[slots] + self.meta.step_s

    def rollout(
        self, slots: IntArray, steps: int, last_y: FloatArray, state: FloatArray
    ) -> FloatArray:
        """Forecasts ``(B, steps, F)``; ``state`` is a copy (advanced in place), the history is
        not touched.

        The arithmetic is :func:`~edge_lstm.model.features.z_blocks`'s, rearranged so a step
        costs a few numpy calls (it is a Python loop: at a few sensors each call counts). In
        units of the scale, with ``u = v / scale`` and ``l = (level + mean) / scale``: a value
        input is ``u - l``, a lag input ``u_lag - l``, the model's output ``y`` is the value
        ``u = y + l`` and the level moves by ``(u - u_dropped) / window``. Every value the
        rollout reads or predicts is kept as ``u`` in one buffer (``Z``, columns of
        :class:`~edge_lstm.model.history.RolloutPlan`); lags that are all history are
        gathered in one go, the calendar rows written once. Up to ``FEW`` sensors with one
        feature, past their warm-up, run the steps on Python floats (:meth:`_Loop.few`).
        """
        history, spec, scaler = self.history, self.spec, self.meta.scaler
        plan = rollout_plan(spec, history.length, steps)
        batch, n_features = len(slots), self.meta.n_features
        scale = scaler.scale_array
        picked = history.at(slots, plan.positions)
        count = history.count[slots].astype(np.int64)
        level = (history.level(slots) + scaler.mean_array) / scale  # l: level and mean, /scale
        rows = np.empty((max(steps - 1, 0), batch, spec.width(n_features)), dtype=np.float32)
        calendar = self._rollout_calendar(slots, steps)
        if calendar is not None:
            rows[:, :, (1 + len(spec.lags)) * n_features :] = calendar.transpose(1, 0, 2)
        youngest = int(count.min())
        young = self._young_levels(count, youngest, steps) if spec.level_window else None
        lags_from = spec.max_lag - youngest  # from this step on, every lag exists
        loop = _Loop(self.model, plan, spec, rows, steps)
        seen = picked[:, : plan.history] / scale  # u of the history values it reads
        if batch <= FEW and n_features == 1 and young is None and lags_from <= 1:
            values = loop.few(seen[:, :, 0].tolist(), level[:, 0].tolist(), last_y, state)
        else:
            values = loop.arrays(seen, level, last_y, state, count, young, lags_from)
        out: Float64Array = values.transpose(1, 0, 2) * scale
        if self.sums is not None:
            newest = picked[:, plan.history - 1]
            out = self._blend(slots, count, youngest, out, newest, self.sums)
        return out.astype(np.float32)

    def _blend(
        self,
        slots: IntArray,
        count: CountArray,
        youngest: int,
        lstm: Float64Array,
        newest: Float64Array,
        sums: SeasonalSums,
    ) -> Float64Array:
        """The companion's blend for the sensors whose history reaches its longest lag
        (``count``: their values seen, ``youngest`` the least); ``newest``: their ``v_t``."""
        companion = sums.companion
        ready = None  # every sensor (the usual case: no comparison per sensor)
        if youngest < companion.history_len:
            ready = count >= companion.history_len
            if not ready.any():
                return lstm
        steps = min(lstm.shape[1], companion.horizon)
        lin = companion.from_sums(newest, sums.read(slots, steps, count))
        return companion.blend(lstm, lin, ready)

    def use(self, model: _Model) -> None:
        """Serve a reloaded model with the same layout (``ModelMeta.layout_key``): the rings
        stay; the companion's sums are recomputed from them if its weights changed."""
        before = self.meta.companion
        self.model, self.meta = model, model.meta
        companion = self.meta.companion
        if companion == before:
            return
        if self.sums is not None:
            self.store.drop_column(SUMS_COLUMN)
            self.history.read_also(())
        self.sums = None if companion is None else SeasonalSums(self.store, self.history, companion)
        if self.sums is not None:
            self.sums.rebuild(self.store.live_slots())

    def _young_levels(
        self, count: CountArray, youngest: int, steps: int
    ) -> tuple[Float64Array, ...] | None:
        """For a batch with a sensor whose level window is not full yet: per step ``k`` (while
        any is not full) ``keep`` (1 if a value leaves its window), ``grow`` (old count / new
        count), ``weight`` (1 / new count) and ``shift`` (``(1 - grow) * mean / scale``), each
        ``(K, B, 1)`` or ``(K, B, F)``; the level moves to
        ``grow * l + weight * (u - keep * u_dropped) + shift``. None when every window is full.
        """
        window = self.spec.level_window
        full_from = window - youngest + 1  # from this step on, every window is full
        if full_from <= 1:
            return None
        k = np.arange(min(full_from, steps))[:, None]
        seen = count[None, :] + k - 1  # values before prediction k - 1 enters
        new = np.minimum(seen + 1, window)[..., None].astype(np.float64)
        grow = np.minimum(seen, window)[..., None] / new
        keep = (seen >= window)[..., None].astype(np.float64)
        scaler = self.meta.scaler
        shift = (1.0 - grow) * (scaler.mean_array / scaler.scale_array)
        return keep, grow, 1.0 / new, shift

    def _rollout_calendar(self, slots: IntArray, steps: int) -> npt.NDArray[np.float64] | None:
        """Calendar rows ``(B or 1, steps-1, 2C)`` of the steps the rollout predicts."""
        if not self.spec.uses_time or steps < 2:
            return None
        start = self.history.last_at[slots]
        step = self.meta.step_s
        first = float(start[0])
        if len(start) == 1 or (start == first).all():  # one clock for the batch: one run of rows
            return self._calendar_run(first + 2 * step, steps - 1)[None]
        flat = self._calendar((start[:, None] + step * np.arange(2, steps + 1)).reshape(-1))
        return flat.reshape(len(slots), steps - 1, -1)

    def _calendar_run(self, first: float, count: int) -> npt.NDArray[np.float64]:
        """Calendar rows of ``count`` steps from ``first``: a slice of the block of rows on the
        model's step grid, or a new block from ``first`` (at least ``CALENDAR_AHEAD`` rows).

        Consecutive steps and forecasts read times a step apart, so one block serves the next
        ones (rows are a pure function of the time: the same values as computing each).
        """
        step = self.meta.step_s
        start, rows = self._calendar_block
        index = (first - start) / step
        if index.is_integer() and index >= 0 and index + count <= len(rows):
            return rows[int(index) : int(index) + count]
        spec = self.spec
        times = first + step * np.arange(max(count, CALENDAR_AHEAD))
        self._calendar_block = (first, calendar_features(times, spec.calendar, spec.timezone))
        return self._calendar_block[1][:count]

    def _calendar(self, times: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Calendar rows of ``times`` (one row if they are all equal): from the block where it
        holds them all, else computed (sensors with their own clocks)."""
        one = float(times[0])
        if times.size == 1 or (times == one).all():
            return self._calendar_run(one, 1)
        start, rows = self._calendar_block
        where = (times - start) / self.meta.step_s
        if (np.rint(where) == where).all() and where.min() >= 0 and where.max() < len(rows):
            return rows[where.astype(np.intp)]
        return calendar_features(times, self.spec.calendar, self.spec.timezone)


class _Loop:
    """The rollout's steps after the first: each writes its input row from the previous
    prediction and steps the model, from ``seen``, the history values the plan reads (units
    of the scale, ``(B, plan.history, F)``). Returns the values ``u`` of every step
    ``(steps, B, F)`` (units of the scale; the first is ``y + l`` of the last observed step)."""

    def __init__(
        self,
        model: _Model,
        plan: RolloutPlan,
        spec: InputSpec,
        rows: FloatArray,
        steps: int,
    ) -> None:
        self.model, self.plan, self.spec = model, plan, spec
        self.rows, self.steps = rows, steps

    def arrays(
        self,
        seen: Float64Array,
        level: Float64Array,
        y: FloatArray,
        state: FloatArray,
        count: CountArray,
        young: tuple[Float64Array, ...] | None,
        lags_from: int,
    ) -> Float64Array:
        """Any batch, any sensor (one whose lags or level window are not full yet too)."""
        plan, spec, rows, steps = self.plan, self.spec, self.rows, self.steps
        batch, _, n_features = seen.shape
        z = np.empty((plan.width, batch, n_features))
        z[: plan.history] = seen.transpose(1, 0, 2)
        n_lags, window = len(spec.lags), spec.level_window
        # each step's value and lags (B, 1 + lags, F) in units of the scale, then one
        # subtraction of the level writes them into the step's row; the values column holds
        # the predictions (the last one too: ``steps`` rows)
        values_end = (1 + n_lags) * n_features
        head = rows[:, :, :values_end].reshape(len(rows), batch, 1 + n_lags, n_features)
        unlevelled = np.empty((steps, batch, 1 + n_lags, n_features))
        known = plan.lags_known
        if n_lags and known > 1:  # (steps, lags, B, F) -> each step's (B, lags, F)
            unlevelled[: known - 1, :, 1:] = z[plan.history_lags].transpose(0, 2, 1, 3)
        for k in range(1, steps):
            u = y + level  # prediction k - 1: the newest value
            if plan.reads_predictions:
                z[plan.history + k - 1] = u
            if young is not None and k < len(young[0]):
                keep, grow, weight, shift = (part[k] for part in young)
                level = grow * level + weight * (u - keep * z[plan.dropped[k]]) + shift
            elif window:
                level = level + (u - z[plan.dropped[k]]) / window
            row = unlevelled[k - 1]
            row[:, 0] = u
            if n_lags and k >= known:
                row[:, 1:] = z[plan.lags[k]].transpose(1, 0, 2)
            x = head[k - 1]
            np.subtract(row, level[:, None, :], out=x)
            if k < lags_from:  # a lag the sensor has not seen yet is v_t
                for i, season in enumerate(spec.lags, start=1):
                    short = count + k < season
                    x[short, i] = x[short, 0]
            y = self.model.advance(rows[k - 1], state)
        unlevelled[steps - 1, :, 0] = y + level
        return unlevelled[:, :, 0]

    def few(
        self, seen: list[list[float]], level: list[float], y: FloatArray, state: FloatArray
    ) -> Float64Array:
        """A few sensors with one feature, every lag seen and every level window full: the
        same arithmetic on Python floats (also float64, in the same order: the same values to
        the bit). A numpy call costs about 1 µs, a float operation some 50 ns: below about
        ``FEW`` sensors the loop's numpy calls were most of the model's extra cost over a
        plain one (docs/bench.md)."""
        plan, window, steps = self.plan, self.spec.level_window, self.steps
        history, lags, dropped = plan.history, plan.lag_columns, plan.dropped
        tail = [0.0] * steps
        zs = [z + tail for z in seen]
        sensors = range(len(zs))
        for k in range(1, steps):
            newest, columns, leaving = y.tolist(), lags[k], dropped[k]
            x = self.rows[k - 1]
            for b in sensors:
                z, u = zs[b], newest[b][0] + level[b]
                z[history + k - 1] = u
                if window:
                    level[b] += (u - z[leaving]) / window
                now = level[b]
                x[b, 0] = u - now
                for i, column in enumerate(columns, start=1):
                    x[b, i] = z[column] - now
            y = self.model.advance(x, state)
        for b, last in enumerate(y.ravel().tolist()):
            zs[b][history + steps - 1] = last + level[b]
        return np.asarray([z[history:] for z in zs], dtype=np.float64).T[:, :, None]
