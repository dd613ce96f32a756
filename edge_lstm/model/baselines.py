"""Naive baselines with the forecaster contract: last value, and the value one season ago.

Pure Python/numpy. They are what the LSTM must beat (``evaluate``, the daemon's running accuracy).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import UnknownSensorError
from .arrays import FloatArray
from .metadata import ModelMeta
from .values import At, Value, as_vector, check_horizon


def model_season(meta: ModelMeta) -> int:
    """The season a model is compared at: its validation season, else a day of steps (>= 1)."""
    validation = meta.validation
    if validation is not None and validation.season >= 1:
        return validation.season
    return max(1, round(86_400 / meta.step_s))


class SeasonalNaiveForecaster:
    """Forecast step ``k`` as the value observed one ``season`` before it.

    Until a sensor has a full season of history it forecasts its last value (naive).
    ``season=1`` is the plain naive forecaster.
    """

    def __init__(self, season: int, n_features: int = 1, horizon: int = 12) -> None:
        if season < 1:
            raise ValueError("season must be >= 1")
        self.season = season
        self.n_features = n_features
        self.horizon = horizon
        self._history: dict[str, deque[np.ndarray]] = {}
        self._steps: dict[str, int] = {}

    def observe(self, sensor_id: str, value: Value, at: At = None) -> None:
        """Record one step's value (``at`` is accepted for the contract and not needed)."""
        self.observe_batch({sensor_id: value}, at)

    def observe_batch(self, values: Mapping[str, Value], at: At = None) -> list[str]:
        vectors = {s: as_vector(s, v, self.n_features) for s, v in values.items()}
        for sensor_id, vector in vectors.items():
            self._history.setdefault(sensor_id, deque(maxlen=self.season)).append(vector)
            self._steps[sensor_id] = self._steps.get(sensor_id, 0) + 1
        return []

    def fill(self, sensor_ids: Sequence[str]) -> None:
        """A missing step: repeat what this forecaster would have predicted for it."""
        for sensor_id in dict.fromkeys(sensor_ids):
            self._history_of(sensor_id).append(self.forecast(sensor_id, 1)[0].astype(np.float64))

    def forecast(self, sensor_id: str, horizon: int | None = None) -> FloatArray:
        steps = check_horizon(self.horizon if horizon is None else horizon)
        history = self._history_of(sensor_id)
        if len(history) < self.season:
            return np.repeat(history[-1][None, :], steps, axis=0).astype(np.float32)
        # step k (1-based) looks back `season` steps, folding around for k > season
        picks = [history[(k - 1) % self.season] for k in range(1, steps + 1)]
        return np.stack(picks).astype(np.float32)

    def forecast_batch(self, sensor_ids: Sequence[str], horizon: int | None = None) -> FloatArray:
        steps = check_horizon(self.horizon if horizon is None else horizon)
        out = np.empty((len(sensor_ids), steps, self.n_features), dtype=np.float32)
        for i, sensor_id in enumerate(sensor_ids):
            out[i] = self.forecast(sensor_id, steps)
        return out

    def reset(self, sensor_id: str) -> None:
        self._history.pop(sensor_id, None)
        self._steps.pop(sensor_id, None)

    def steps_seen(self, sensor_id: str) -> int:
        return self._steps.get(sensor_id, 0)

    def sensors(self) -> list[str]:
        return list(self._history)

    def _history_of(self, sensor_id: str) -> deque[np.ndarray]:
        history = self._history.get(sensor_id)
        if not history:
            raise UnknownSensorError(f"unknown sensor {sensor_id!r}")
        return history


class NaiveForecaster(SeasonalNaiveForecaster):
    """Forecast every step as the last observed value."""

    def __init__(self, n_features: int = 1, horizon: int = 12) -> None:
        super().__init__(season=1, n_features=n_features, horizon=horizon)
