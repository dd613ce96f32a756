"""A linear seasonal companion, blended with the LSTM's forecast per horizon step.

Pure numpy. The companion forecasts a sensor from the change at the same time of day on each of
the last ``K`` days (metadata ``companion``)::

    lin_{t+h} = v_t + h * c + sum_k w_k * (v_{t+h-L_k} - v_{t-L_k})        (L_k = k days)

the closed form of "each step changes by a weighted mean of the same step's change on the days
before, plus a drift ``c``", fitted by least absolute deviations on the training part
(:func:`fit_companion`). It reads only observed history (``h <= min(L_k)``, so at most a day
ahead). The published forecast is ``share_h * lstm_h + (1 - share_h) * lin_h`` for the horizon
steps the blend was fitted on (``share`` chosen on the validation part by ``scripts/train.py``),
the LSTM's alone past them and for a sensor whose history is still shorter than the longest
``L_k``. The LSTM's own rollout never sees the blend: it feeds back its own predictions.

Why: a smoothed daily profile is what a seasonal-trend decomposition (MSTL) forecasts from, and
the LSTM, which reads one day and one week back, misses it at the first steps. On the half-hourly
demand check series the blend took the validation part from 0.204 to 0.162 of seasonal naive
(docs/training.md); where the companion does not help, validation gives the LSTM the whole
share and train.py leaves it out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

Float64Array = npt.NDArray[np.float64]

COMPANION_KEYS = ("lags", "weights", "constant", "share")
SHARE_GRID = np.linspace(0.0, 1.0, 11)
"""The LSTM shares validation chooses from, per horizon step."""


@dataclass(frozen=True)
class Companion:
    """The metadata ``companion`` object: lags (steps), weights ``(K, F)``, drift ``(F,)`` and
    the LSTM's share per horizon step."""

    lags: tuple[int, ...]
    weights: tuple[tuple[float, ...], ...]
    constant: tuple[float, ...]
    share: tuple[float, ...]

    def __post_init__(self) -> None:
        lags = self.lags
        if not lags or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in lags):
            raise ValueError(f"lags must be integers >= 1, got {list(lags)}")
        if list(lags) != sorted(set(lags)):
            raise ValueError(f"lags must be ascending without repeats, got {list(lags)}")
        n_features = len(self.constant)
        if n_features < 1 or len(self.weights) != len(lags):
            raise ValueError("weights needs one row per lag and constant one value per feature")
        if any(len(row) != n_features for row in self.weights):
            raise ValueError(f"each weights row needs {n_features} value(s), one per feature")
        numbers = [*self.constant, *(w for row in self.weights for w in row), *self.share]
        if not all(math.isfinite(v) for v in numbers):
            raise ValueError("weights, constant and share must be finite")
        if not self.share or not all(0.0 <= s <= 1.0 for s in self.share):
            raise ValueError("share needs one value in [0, 1] per horizon step")
        if len(self.share) > lags[0]:
            raise ValueError(
                f"share covers {len(self.share)} steps, more than the shortest lag ({lags[0]}): "
                "the companion reads only observed history"
            )

    @property
    def n_features(self) -> int:
        return len(self.constant)

    @property
    def history_len(self) -> int:
        """Values it reads: back to ``v_{t - max(L_k)}``."""
        return self.lags[-1] + 1

    @property
    def horizon(self) -> int:
        """The steps blended (later steps are the LSTM's alone)."""
        return len(self.share)

    @cached_property
    def weight_array(self) -> Float64Array:
        return np.asarray(self.weights, dtype=np.float64)

    @cached_property
    def constant_array(self) -> Float64Array:
        return np.asarray(self.constant, dtype=np.float64)

    @cached_property
    def share_array(self) -> Float64Array:
        return np.asarray(self.share, dtype=np.float64)

    @cached_property
    def drift_array(self) -> Float64Array:
        """``h * c`` for ``h = 1..horizon``, ``(horizon, F)``."""
        steps = np.arange(1, self.horizon + 1, dtype=np.float64)[:, None]
        drift: Float64Array = steps * self.constant_array
        return drift

    @cached_property
    def lin_share_array(self) -> Float64Array:
        """The companion's share ``1 - share_h``, ``(horizon, 1)``."""
        return (1.0 - self.share_array)[:, None]

    def sum_positions(self, offsets: npt.ArrayLike) -> npt.NDArray[np.intp]:
        """Where the seasonal sums ``S(t + j) = sum_k w_k v_{t+j-L_k}`` read, for each ``j`` in
        ``offsets`` (``0 <= j <= L_1``): positions in a window of ``history_len`` values (0 the
        oldest, ``history_len - 1`` is ``v_t``), ``(J, K)``."""
        newest = self.history_len - 1
        lags = np.asarray(self.lags, dtype=np.intp)
        ahead: npt.NDArray[np.intp] = newest + np.asarray(offsets, np.intp)[:, None] - lags
        return ahead

    def sums(self, values: Float64Array) -> Float64Array:
        """``S`` from the values at :meth:`sum_positions`, ``(B, J, K, F)`` -> ``(B, J, F)``."""
        summed: Float64Array = np.einsum("bjkf,kf->bjf", values, self.weight_array)
        return summed

    def forecast(self, recent: npt.ArrayLike, steps: int) -> Float64Array:
        """``lin`` ``(B, steps, F)`` from each sensor's last ``history_len`` values
        ``(B, history_len, F)`` (oldest first); ``steps <= horizon``."""
        values = np.asarray(recent, dtype=np.float64)
        sums = self.sums(values[:, self.sum_positions(np.arange(steps + 1))])
        return self.from_sums(values[:, -1], sums)

    def from_sums(self, newest: Float64Array, sums: Float64Array) -> Float64Array:
        """``lin`` ``(B, J-1, F)`` from ``v_t`` ``(B, F)`` and ``S(t), S(t+1) ..`` ``(B, J, F)``:
        ``v_t + h * c + S(t + h) - S(t)``."""
        steps = sums.shape[1] - 1
        lin: Float64Array = sums[:, 1:] - sums[:, :1]
        lin += newest[:, None, :]
        lin += self.drift_array[:steps]
        return lin

    def blend(
        self, lstm: Float64Array, lin: Float64Array, ready: npt.ArrayLike | None = None
    ) -> Float64Array:
        """``lstm`` ``(B, S, F)`` with its first ``min(S, horizon)`` steps blended with ``lin``
        for the sensors that are ``ready`` (``(B,)``: their history reaches the longest lag;
        None: all are): ``share * lstm + (1 - share) * lin``. Works in place: ``lstm``
        (returned) and ``lin`` are overwritten."""
        steps = min(lstm.shape[1], self.horizon)
        head = lstm[:, :steps]
        mixed = lin[:, :steps]
        mixed -= head  # lstm + (1 - share) * (lin - lstm)
        mixed *= self.lin_share_array[:steps]
        if ready is not None:
            ready = np.asarray(ready, dtype=bool)
            mixed[~ready] = 0.0
        head += mixed
        return lstm

    def to_doc(self) -> dict[str, Any]:
        return {
            "lags": list(self.lags),
            "weights": [list(row) for row in self.weights],
            "constant": list(self.constant),
            "share": list(self.share),
        }

    @classmethod
    def from_doc(cls, doc: object) -> Companion:
        """Parse a metadata ``companion`` object; ``ValueError`` says what is wrong."""
        if not isinstance(doc, dict):
            raise ValueError("companion must be an object")
        unknown = sorted(set(doc) - set(COMPANION_KEYS))
        missing = [k for k in COMPANION_KEYS if k not in doc]
        if unknown or missing:
            what = f"unknown key {unknown[0]!r}" if unknown else f"missing key {missing[0]!r}"
            raise ValueError(f"companion: {what} (keys: {', '.join(COMPANION_KEYS)})")
        try:
            return cls(
                lags=tuple(_int(v) for v in doc["lags"]),
                weights=tuple(tuple(_number(w) for w in row) for row in doc["weights"]),
                constant=tuple(_number(v) for v in doc["constant"]),
                share=tuple(_number(v) for v in doc["share"]),
            )
        except TypeError as exc:
            raise ValueError(f"companion: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"companion: {exc}") from None


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not an integer")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def fit_companion(
    series: Sequence[npt.ArrayLike], lags: Sequence[int], iterations: int = 10
) -> tuple[Float64Array, Float64Array]:
    """Weights ``(K, F)`` and drift ``(F,)`` of the one-step form, ``v_{t+1} - v_t = c +
    sum_k w_k (v_{t+1-L_k} - v_{t-L_k})``, over every step of every series ``(N, F)`` that has
    the history, by least absolute deviations (iteratively reweighted least squares): the loss
    the LSTM is trained with, and robust to a sensor's faults."""
    longest = max(lags)
    rows: list[Float64Array] = []
    targets: list[Float64Array] = []
    for one in series:
        values = np.asarray(one, dtype=np.float64)
        values = values[:, None] if values.ndim == 1 else values
        t = np.arange(longest, len(values) - 1)
        if len(t) == 0:
            continue
        rows.append(np.stack([values[t + 1 - lag] - values[t - lag] for lag in lags], axis=1))
        targets.append(values[t + 1] - values[t])
    if not rows:
        raise ValueError(f"no series is longer than the companion's longest lag ({longest})")
    x = np.concatenate(rows)  # (N, K, F)
    y = np.concatenate(targets)  # (N, F)
    weights = np.zeros((len(lags), y.shape[1]))
    constant = np.zeros(y.shape[1])
    for f in range(y.shape[1]):
        design = np.column_stack([x[:, :, f], np.ones(len(y))])
        target = y[:, f]
        beta = np.linalg.lstsq(design, target, rcond=None)[0]
        floor = 1e-3 * max(float(np.median(np.abs(target))), 1e-12)
        for _ in range(iterations):
            root = 1.0 / np.sqrt(np.maximum(np.abs(target - design @ beta), floor))
            beta = np.linalg.lstsq(design * root[:, None], target * root, rcond=None)[0]
        weights[:, f], constant[f] = beta[:-1], beta[-1]
    return weights, constant


def choose_share(lstm_errors: npt.ArrayLike, lin_errors: npt.ArrayLike) -> Float64Array:
    """The LSTM's share per horizon step (from ``SHARE_GRID``) with the least mean absolute
    error of ``share * lstm + (1 - share) * lin``, given each one's signed errors (forecast
    minus actual, ``(N, H, F)``, NaN where unscored) on the same points."""
    a = np.asarray(lstm_errors, dtype=np.float64)
    b = np.asarray(lin_errors, dtype=np.float64)
    mixed = SHARE_GRID[:, None, None, None] * a + (1 - SHARE_GRID)[:, None, None, None] * b
    mae = np.nanmean(np.abs(mixed), axis=(1, 3))  # (grid, H)
    share: Float64Array = SHARE_GRID[np.argmin(mae, axis=0)]
    return share
