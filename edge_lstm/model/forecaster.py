"""The public forecasting API: per-sensor LSTM state, batched steps, autoregressive forecasts.

>>> fc = Forecaster.load("models/default.tflite")          # doctest: +SKIP
>>> fc.observe_batch({"s1": 21.5, "s2": 19.0}, at=1714564800)  # doctest: +SKIP
>>> fc.forecast_batch(["s1", "s2"], horizon=12).shape       # doctest: +SKIP
(2, 12, 1)

A model whose metadata declares ``inputs`` (lags, calendar, level) gets them built here from each
sensor's history ring (:mod:`edge_lstm.model.history`) with the functions training uses
(:mod:`edge_lstm.model.features`). A ``Forecaster`` owns a TFLite interpreter and is therefore not
thread-safe: one thread uses it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .arrays import FloatArray
from .bands import GAMMA, BandCalibrator
from .covariates import InputPath
from .metadata import ModelMeta
from .runtime import StepModel
from .state import StateStore, unique
from .values import (
    MAX_HORIZON,
    At,
    Value,
    as_matrix,
    as_vector,
    check_horizon,
    step_times,
)

log = logging.getLogger(__name__)

__all__ = ["MAX_HORIZON", "Forecaster", "SensorForecaster", "as_vector", "check_horizon"]

IntArray = npt.NDArray[np.intp]
Float64Array = npt.NDArray[np.float64]


class SensorForecaster(Protocol):
    """The contract every forecaster keeps (checked by ``tests/forecaster_contract.py``)."""

    n_features: int

    def observe(self, sensor_id: str, value: Value, at: At = None) -> None: ...
    def observe_batch(self, values: Mapping[str, Value], at: At = None) -> object: ...
    def forecast(self, sensor_id: str, horizon: int | None = None) -> FloatArray: ...
    def forecast_batch(
        self, sensor_ids: Sequence[str], horizon: int | None = None
    ) -> FloatArray: ...
    def fill(self, sensor_ids: Sequence[str]) -> None: ...
    def reset(self, sensor_id: str) -> None: ...
    def steps_seen(self, sensor_id: str) -> int: ...


AT_ONCE = 512
"""Sensors an ``observe_batch``, ``forecast_batch`` or ``interval_batch`` works on at once
(more go in turns). A turn's arrays stay well under the 1 MiB above which the daemon's
allocator maps each large array afresh and faults in its pages (``daemon.heap.hold_less``),
and in the core's cache. Measured at 10,000 sensors (the seasonal bench model, with the daemon's
thresholds): a forecast all at once 4.55 µs a sensor and 4,968 page faults, in turns of 512
4.01 µs and 235 faults, of 1,024 4.10 and 1,351, of 2,048 4.41 and 2,996 (docs/bench.md)."""


def turns(count: int) -> list[slice]:
    """``count`` sensors in turns of at most ``AT_ONCE``."""
    return [slice(start, start + AT_ONCE) for start in range(0, count, AT_ONCE)]


class Forecaster:
    """Stateful LSTM forecaster for many sensors, backed by one single-step TFLite model."""

    def __init__(
        self, model: StepModel, max_sensors: int = 10_000, band_gamma: float = GAMMA
    ) -> None:
        self.band_gamma = band_gamma
        self._use(model, max_sensors)

    def _use(self, model: StepModel, capacity: int) -> None:
        self.model = model
        self.meta: ModelMeta = model.meta
        self.n_features = self.meta.n_features
        self.spec = self.meta.input_spec
        self.store = StateStore(self.meta.state_size, self.n_features, capacity)
        # A format-1 model (no extra inputs) keeps its original path, bit for bit: no history.
        self.inputs = None if self.spec.is_plain else InputPath(self.store, model)
        self.history = None if self.inputs is None else self.inputs.history
        band = self.meta.validation.band(self.n_features) if self.meta.validation else None
        self.calibrator = (
            None if band is None else BandCalibrator(self.store, *band, gamma=self.band_gamma)
        )

    @classmethod
    def load(
        cls, path: Path | str, backend: str | None = None, max_sensors: int = 10_000
    ) -> Forecaster:
        """Load ``path`` (``.tflite``) with its sidecar ``.json``."""
        return cls(StepModel.load(path, backend=backend), max_sensors=max_sensors)

    # -- advancing the state ---------------------------------------------------------------

    def observe(self, sensor_id: str, value: Value, at: At = None) -> None:
        """Advance ``sensor_id`` by one model step with an observed value (original units).

        ``at``: start time of the observed step (epoch seconds or an aware datetime); required
        by a model with calendar inputs, ignored by one without.
        """
        self.observe_batch({sensor_id: value}, at)

    def observe_batch(self, values: Mapping[str, Value], at: At = None) -> list[str]:
        """Advance every listed sensor by one step in one batched call.

        ``at``: one time for all, or a mapping with each sensor's time (see ``observe``). All
        values and times are validated first: on a bad one nothing is applied. Returns the ids
        of sensors evicted to make room (least recently seen), usually empty.
        """
        if not values:
            return []
        ids = list(values)
        x = as_matrix(values, ids, self.n_features)
        times = None
        if self.spec.uses_time:
            if at is None:
                raise ValueError(
                    "this model has calendar inputs: observe needs at= (the step's start time)"
                )
            times = step_times(at, ids)
        slots, evicted = self.store.acquire(ids)
        if evicted:
            log.info("evicted %d least recently seen sensor(s), e.g. %r", len(evicted), evicted[0])
        if len(slots) <= AT_ONCE:
            self._observe(slots, x, times)
            return evicted
        for turn in turns(len(slots)):
            self._observe(slots[turn], x[turn], None if times is None else times[turn])
        return evicted

    def _observe(self, slots: IntArray, x: Float64Array, times: Float64Array | None) -> None:
        if self.calibrator is not None:
            self.calibrator.score(slots, x)
        if self.inputs is None:
            self._advance(slots, self.meta.scaler.transform(x))
        else:
            self._advance(slots, self.inputs.rows(slots, x, times))
        self.store.steps[slots] += 1

    def fill(self, sensor_ids: Sequence[str]) -> None:
        """Advance sensors one step on their own one-step prediction (a missing reading)."""
        if not sensor_ids:
            return
        slots = self.store.slots(unique(sensor_ids))
        if self.calibrator is not None:
            self.calibrator.score(slots, None)
        if self.inputs is None:
            self._advance(slots, self.store.last_y[slots])
            return
        filled, times = self.inputs.filled(slots, self.store.last_y[slots])
        self._advance(slots, self.inputs.rows(slots, filled, times))

    def _advance(self, slots: IntArray, x: FloatArray) -> None:
        state = self.store.state[slots]  # fancy indexing: a copy, advanced in place
        self.store.last_y[slots] = self.model.advance(x, state)
        self.store.state[slots] = state

    def reset(self, sensor_id: str) -> None:
        """Forget a sensor's state: its next reading starts from a fresh (zero) state."""
        self.store.reset(sensor_id)

    # -- forecasting -----------------------------------------------------------------------

    def forecast(self, sensor_id: str, horizon: int | None = None) -> FloatArray:
        """The next ``horizon`` steps for one sensor, shape ``(horizon, F)``, original units."""
        one: FloatArray = self.forecast_batch([sensor_id], horizon)[0]
        return one

    def forecast_batch(self, sensor_ids: Sequence[str], horizon: int | None = None) -> FloatArray:
        """Forecasts for many sensors, shape ``(N, horizon, F)``.

        The loop runs on a copy of the state (and of the history): forecasting never changes
        what a later ``observe`` does. Step 1 is the prediction the last observation produced.
        """
        steps = check_horizon(self.meta.horizon if horizon is None else horizon)
        slots = self.store.slots(sensor_ids)
        if len(slots) <= AT_ONCE:
            return self._rollout(slots, steps)
        out = np.empty((len(slots), steps, self.n_features), dtype=np.float32)
        for turn in turns(len(slots)):
            out[turn] = self._rollout(slots[turn], steps)
        return out

    def _rollout(self, slots: IntArray, steps: int) -> FloatArray:
        if len(slots) == 0:
            return np.empty((0, steps, self.n_features), dtype=np.float32)
        if self.inputs is None:
            return self._rollout_plain(slots, steps)
        return self.inputs.rollout(slots, steps, self.store.last_y[slots], self.store.state[slots])

    def _rollout_plain(self, slots: IntArray, steps: int) -> FloatArray:
        out = np.empty((len(slots), steps, self.n_features), dtype=np.float32)
        y = self.store.last_y[slots]
        state = self.store.state[slots]  # fancy indexing: already a copy
        out[:, 0] = y
        for k in range(1, steps):
            y = self.model.advance(y, state)
            out[:, k] = y
        result: FloatArray = self.meta.scaler.inverse(out)
        return result

    # -- bands -----------------------------------------------------------------------------

    @property
    def has_bands(self) -> bool:
        """Whether the model's metadata carries held-out residual quantiles (a band to publish)."""
        return self.calibrator is not None

    def interval(self, sensor_id: str, horizon: int | None = None) -> tuple[FloatArray, FloatArray]:
        """The 80% band ``(lo, hi)``, each ``(horizon, F)``, around the sensor's forecast."""
        lo, hi = self.interval_batch([sensor_id], horizon)
        return lo[0], hi[0]

    def interval_batch(
        self,
        sensor_ids: Sequence[str],
        horizon: int | None = None,
        forecasts: FloatArray | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """Bands ``(lo, hi)``, each ``(N, horizon, F)``, of many sensors.

        ``forecasts``: the ``forecast_batch`` result for the same sensors (saves a rollout).
        The bands are remembered and scored when the actuals arrive: that is the online
        calibration, so pass the bands you publish. ``ValueError`` if the model has no
        residual quantiles in its metadata.
        """
        if self.calibrator is None:
            raise ValueError(
                f"model {self.meta.name!r} has no residual quantiles (validation.residual_q10/"
                "q90 in its metadata): no band"
            )
        if forecasts is None:
            forecasts = self.forecast_batch(sensor_ids, horizon)
        slots = self.store.slots(sensor_ids)
        if len(slots) <= AT_ONCE:
            return self._issue(self.calibrator, slots, forecasts)
        lo, hi = np.empty_like(forecasts), np.empty_like(forecasts)
        for turn in turns(len(slots)):
            lo[turn], hi[turn] = self._issue(self.calibrator, slots[turn], forecasts[turn])
        return lo, hi

    @staticmethod
    def _issue(
        calibrator: BandCalibrator, slots: IntArray, forecasts: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        lo, hi = calibrator.bands(slots, forecasts)
        calibrator.issue(slots, lo, hi)
        return lo, hi

    def coverage(self, sensor_id: str | None = None) -> dict[str, list[float | None] | list[int]]:
        """Live band coverage per horizon step: ``{"coverage": [...], "scored": [...]}``.

        ``sensor_id`` None: every band scored since start. Empty lists if there is no band.
        """
        if self.calibrator is None:
            return {"coverage": [], "scored": []}
        slots = None if sensor_id is None else self.store.slots([sensor_id])
        rate, scored = self.calibrator.coverage(slots)
        values = [None if np.isnan(r) else round(float(r), 4) for r in rate]
        return {"coverage": values, "scored": scored.tolist()}

    # -- introspection and persistence -------------------------------------------------------

    def steps_seen(self, sensor_id: str) -> int:
        """Observed steps since the sensor was created or reset (0 if unknown)."""
        return self.store.steps_of(sensor_id)

    def is_warm(self, sensor_id: str) -> bool:
        """Past the model's warm-up and its longest lag (``meta.warmup_steps``)."""
        return self.steps_seen(sensor_id) >= self.meta.warmup_steps

    def sensors(self) -> list[str]:
        return self.store.ids()

    def save_state(self, path: Path, extra: Mapping[str, Any] | None = None) -> None:
        """Snapshot every sensor's state (atomic, checksummed, tagged with the model sha256)."""
        self.store.save(path, self.model.sha256, extra)

    def load_state(self, path: Path) -> dict[str, Any]:
        """Restore a snapshot; ``StateFileError`` (nothing changed) if corrupt or foreign."""
        return self.store.load(path, self.model.sha256)

    def replace_model(self, model: StepModel) -> bool:
        """Swap in a reloaded model; states are kept if the layout matches (returns True)."""
        meta = model.meta
        band = meta.validation.band(meta.n_features) if meta.validation else None
        calibrator = self.calibrator
        same = (
            meta.layout_key() == self.meta.layout_key()
            and meta.scaler == self.meta.scaler
            and (band is None) == (calibrator is None)
            and (calibrator is None or band is None or band[0].shape == calibrator.center.shape)
        )
        if not same:
            self._use(model, self.store.capacity)
            return False
        self.model, self.meta = model, meta
        if self.inputs is not None:
            self.inputs.use(model)
        if calibrator is not None and band is not None:
            calibrator.rebase(*band)
        return True
