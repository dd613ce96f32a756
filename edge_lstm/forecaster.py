"""The public forecasting API: per-sensor LSTM state, batched steps, autoregressive forecasts.

>>> fc = Forecaster.load("models/default.tflite")          # doctest: +SKIP
>>> fc.observe_batch({"s1": 21.5, "s2": 19.0})              # doctest: +SKIP
>>> fc.forecast_batch(["s1", "s2"], horizon=12).shape       # doctest: +SKIP
(2, 12, 1)

A ``Forecaster`` owns a TFLite interpreter and is therefore not thread-safe: one thread uses it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .metadata import ModelMeta
from .runtime import StepModel
from .state import StateStore, unique

log = logging.getLogger(__name__)

Value = float | Sequence[float] | npt.NDArray[Any]
FloatArray = npt.NDArray[np.float32]
MAX_HORIZON = 10_000


class SensorForecaster(Protocol):
    """The contract every forecaster keeps (checked by ``tests/forecaster_contract.py``)."""

    n_features: int

    def observe(self, sensor_id: str, value: Value) -> None: ...
    def observe_batch(self, values: Mapping[str, Value]) -> object: ...
    def forecast(self, sensor_id: str, horizon: int | None = None) -> FloatArray: ...
    def forecast_batch(
        self, sensor_ids: Sequence[str], horizon: int | None = None
    ) -> FloatArray: ...
    def fill(self, sensor_ids: Sequence[str]) -> None: ...
    def reset(self, sensor_id: str) -> None: ...
    def steps_seen(self, sensor_id: str) -> int: ...


def as_vector(sensor_id: str, value: Value, n_features: int) -> npt.NDArray[np.float64]:
    """One reading as a float64 vector of length ``n_features``; ``ValueError`` names the sensor.

    Only real numbers pass: strings (even "1.5"), booleans and None are refused.
    """
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        array = np.asarray(None)
    if array.dtype.kind not in "fiu":
        raise ValueError(f"sensor {sensor_id!r}: value {value!r} is not numeric")
    vector = array.astype(np.float64).reshape(-1)
    if vector.size != n_features:
        raise ValueError(f"sensor {sensor_id!r}: expected {n_features} value(s), got {vector.size}")
    if not np.isfinite(vector).all():
        raise ValueError(f"sensor {sensor_id!r}: value {value!r} is not finite")
    return vector


_PLAIN = {float, int}


def as_matrix(
    values: Mapping[str, Value], ids: Sequence[str], n_features: int
) -> npt.NDArray[np.float64]:
    """All readings of a batch as an ``(N, F)`` float64 array, validated as ``as_vector`` does.

    One numpy conversion for the whole batch; only when that finds a problem is each value
    checked on its own, to name the sensor at fault.
    """
    items = list(map(values.__getitem__, ids))
    kinds = set(map(type, items))
    # numpy is slow to discover the shape of a list of tuples (what the resampler hands in):
    # flatten plain Python numbers first. Types are checked exactly, so bools and strings
    # take the checked path below and are refused there.
    if kinds == {tuple}:
        flat = list(chain.from_iterable(items))  # type: ignore[arg-type]
        if len(flat) == len(items) * n_features and set(map(type, flat)) <= _PLAIN:
            items = flat  # type: ignore[assignment]
    try:
        array = np.asarray(items)
    except (TypeError, ValueError):  # ragged lists
        array = np.asarray(None)
    if array.dtype.kind in "fiu" and array.size == len(ids) * n_features:
        matrix = array.astype(np.float64).reshape(len(ids), n_features)
        if array.ndim <= 2 and np.isfinite(matrix).all():
            return matrix
    return np.stack([as_vector(s, values[s], n_features) for s in ids])


def check_horizon(horizon: int) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)):
        raise ValueError(f"horizon must be an integer, got {horizon!r}")
    if not 1 <= horizon <= MAX_HORIZON:
        raise ValueError(f"horizon must be between 1 and {MAX_HORIZON}, got {horizon}")
    return int(horizon)


class Forecaster:
    """Stateful LSTM forecaster for many sensors, backed by one single-step TFLite model."""

    def __init__(self, model: StepModel, max_sensors: int = 10_000) -> None:
        self.model = model
        self.meta: ModelMeta = model.meta
        self.n_features = self.meta.n_features
        self.store = StateStore(self.meta.state_size, self.n_features, max_sensors)

    @classmethod
    def load(
        cls, path: Path | str, backend: str | None = None, max_sensors: int = 10_000
    ) -> Forecaster:
        """Load ``path`` (``.tflite``) with its sidecar ``.json``."""
        return cls(StepModel.load(path, backend=backend), max_sensors=max_sensors)

    # -- advancing the state ---------------------------------------------------------------

    def observe(self, sensor_id: str, value: Value) -> None:
        """Advance ``sensor_id`` by one model step with an observed value (original units)."""
        self.observe_batch({sensor_id: value})

    def observe_batch(self, values: Mapping[str, Value]) -> list[str]:
        """Advance every listed sensor by one step in one batched call.

        All values are validated first: on a bad one nothing is applied. Returns the ids of
        sensors evicted to make room (least recently seen), usually empty.
        """
        if not values:
            return []
        ids = list(values)
        x = as_matrix(values, ids, self.n_features)
        slots, evicted = self.store.acquire(ids)
        if evicted:
            log.info("evicted %d least recently seen sensor(s), e.g. %r", len(evicted), evicted[0])
        self._advance(slots, self.meta.scaler.transform(x))
        self.store.steps[slots] += 1
        return evicted

    def fill(self, sensor_ids: Sequence[str]) -> None:
        """Advance sensors one step on their own one-step prediction (a missing reading)."""
        if not sensor_ids:
            return
        slots = self.store.slots(unique(sensor_ids))
        self._advance(slots, self.store.last_y[slots])

    def _advance(self, slots: npt.NDArray[np.intp], x: FloatArray) -> None:
        y, new_state = self.model.step(x, self.store.state[slots])
        self.store.state[slots] = new_state
        self.store.last_y[slots] = y

    def reset(self, sensor_id: str) -> None:
        """Forget a sensor's state: its next reading starts from a fresh (zero) state."""
        self.store.remove(sensor_id)

    # -- forecasting -----------------------------------------------------------------------

    def forecast(self, sensor_id: str, horizon: int | None = None) -> FloatArray:
        """The next ``horizon`` steps for one sensor, shape ``(horizon, F)``, original units."""
        one: FloatArray = self.forecast_batch([sensor_id], horizon)[0]
        return one

    def forecast_batch(self, sensor_ids: Sequence[str], horizon: int | None = None) -> FloatArray:
        """Forecasts for many sensors, shape ``(N, horizon, F)``.

        The loop runs on a copy of the state: forecasting never changes what a later
        ``observe`` does. Step 1 is the prediction the last observation already produced.
        """
        steps = check_horizon(self.meta.horizon if horizon is None else horizon)
        slots = self.store.slots(sensor_ids)
        out = np.empty((len(slots), steps, self.n_features), dtype=np.float32)
        if len(slots) == 0:
            return out
        y = self.store.last_y[slots]
        state = self.store.state[slots]  # fancy indexing: already a copy
        out[:, 0] = y
        for k in range(1, steps):
            y, state = self.model.step(y, state)
            out[:, k] = y
        result: FloatArray = self.meta.scaler.inverse(out)
        return result

    # -- introspection and persistence -------------------------------------------------------

    def steps_seen(self, sensor_id: str) -> int:
        """Observed steps since the sensor was created or reset (0 if unknown)."""
        return self.store.steps_of(sensor_id)

    def is_warm(self, sensor_id: str) -> bool:
        return self.steps_seen(sensor_id) >= max(1, self.meta.warmup)

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
        same = (
            model.meta.layout_key() == self.meta.layout_key()
            and model.meta.scaler == self.meta.scaler
        )
        if not same:
            meta = model.meta
            self.store = StateStore(meta.state_size, meta.n_features, self.store.capacity)
        self.model, self.meta = model, model.meta
        self.n_features = self.meta.n_features
        return same
