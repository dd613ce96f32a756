"""Multi-step rollout validation of an exported model against naive and seasonal-naive forecasts.

Pure numpy plus :class:`edge_lstm.model.runtime.StepModel`: the model is validated as it will run
on the device, with its state carried from the start of each series (never reset at the held-out
tail).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..model.metadata import Validation
from ..model.runtime import StepModel

Array = npt.NDArray[np.float64]


def rollout_forecasts(
    step_model: StepModel, series: Array, origins: list[int], horizon: int
) -> Array:
    """Forecasts ``(S, len(origins), horizon, F)`` in original units.

    ``series`` is ``(S, N, F)`` in original units, all series the same length; origin ``t`` means
    the model has observed ``series[:, : t + 1]`` and forecasts ``t + 1 .. t + horizon``.
    """
    meta = step_model.meta
    n_series, _, n_features = series.shape
    scaled = meta.scaler.transform(series)
    state = step_model.zero_state(n_series)
    wanted = set(origins)
    saved_state: dict[int, npt.NDArray[np.float32]] = {}
    saved_pred: dict[int, npt.NDArray[np.float32]] = {}
    for t in range(max(origins) + 1):
        y, state = step_model.step(scaled[:, t], state)
        if t in wanted:
            saved_state[t], saved_pred[t] = state, y
    # All origins of all series advance together: one batched call per horizon step.
    x = np.concatenate([saved_pred[t] for t in origins])
    state = np.concatenate([saved_state[t] for t in origins])
    steps = [x]
    for _ in range(horizon - 1):
        x, state = step_model.step(x, state)
        steps.append(x)
    out = np.stack(steps, axis=1)  # (len(origins) * S, H, F), origin-major
    out = out.reshape(len(origins), n_series, horizon, n_features).transpose(1, 0, 2, 3)
    return np.asarray(meta.scaler.inverse(out), dtype=np.float64)


def baseline_forecasts(
    series: Array, origins: list[int], horizon: int, season: int
) -> dict[str, Array]:
    """Naive (last value) and seasonal-naive (same step one season earlier) forecasts."""
    idx = np.asarray(origins)
    ks = np.arange(1, horizon + 1)
    naive = np.repeat(series[:, idx, None, :], horizon, axis=2)
    # For step k the seasonal value is the latest observed one at lag season * ceil(k / season).
    lag = season * np.ceil(ks / season).astype(int)
    seasonal_idx = idx[:, None] + ks[None, :] - lag[None, :]
    return {"naive": naive, "seasonal_naive": series[:, seasonal_idx, :]}


def validation_report(
    step_model: StepModel, series: Array, first_origin: int, horizon: int, season: int
) -> Validation:
    """MAE per horizon step for lstm / naive / seasonal_naive, and the LSTM residual band."""
    n_steps = series.shape[1]
    origins = list(range(max(first_origin, season - 1), n_steps - horizon))
    if not origins:
        raise ValueError("held-out tail is shorter than the horizon")
    idx = np.asarray(origins)
    actual = series[:, idx[:, None] + np.arange(1, horizon + 1)[None, :], :]
    forecasts = {"lstm": rollout_forecasts(step_model, series, origins, horizon)}
    forecasts.update(baseline_forecasts(series, origins, horizon, season))
    mae = {
        name: [float(v) for v in np.mean(np.abs(actual - f), axis=(0, 1, 3))]
        for name, f in forecasts.items()
    }
    residual = (actual - forecasts["lstm"]).reshape(-1, horizon, series.shape[2])
    q10 = np.quantile(residual, 0.1, axis=0)
    q90 = np.quantile(residual, 0.9, axis=0)
    return Validation(
        horizon=horizon,
        season=season,
        mae=mae,
        residual_q10=[[float(v) for v in row] for row in q10],
        residual_q90=[[float(v) for v in row] for row in q90],
        rows=int(residual.shape[0]),
    )
