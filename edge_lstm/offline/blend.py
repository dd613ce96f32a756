"""Whether a trained model gets a linear seasonal companion, and with what share: chosen on the
validation part (see :mod:`edge_lstm.model.companion`).

The LSTM's validation rollouts are replayed once alone and once per companion depth (7 or 14
days of daily changes) with the companion in the sidecar at share 0, both through the device's
own ``Forecaster``; the share per horizon step is the one with the least validation MAE. A
companion is kept only where it takes at least ``ADOPT_BELOW`` off the LSTM's validation MAE,
and the 14-day one only where it beats the 7-day one by ``PREFER_SHORTER``: it doubles the
history each sensor keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..model.companion import Companion, choose_share, fit_companion
from ..model.metadata import ModelMeta, sidecar_path
from .csvdata import Series
from .evaluate import Evaluation, residuals
from .heldout import Span, replay_validation

F64 = npt.NDArray[np.float64]

DEPTHS_DAYS = (7, 14)
ADOPT_BELOW = 0.99
"""A companion must bring the validation MAE to at most this share of the LSTM's alone."""
PREFER_SHORTER = 1.02
"""The 7-day companion unless the 14-day one's validation MAE is this factor lower."""


@dataclass(frozen=True)
class Choice:
    """The companion chosen (None: the LSTM alone) and the validation figures behind it."""

    companion: Companion | None
    residuals: F64
    """Validation residuals ``(N, horizon, F)`` of what will be published (for the band)."""
    lstm_ratio: float
    """The LSTM alone on validation, mean MAE over seasonal naive's on the same points."""
    ratio: float
    """What will be published, the same way."""
    tried: dict[int, float] = field(default_factory=dict)
    """Companion depth in days -> its blend's validation ratio."""

    def note(self) -> str:
        """One line for the report and the metadata's info."""
        tried = ", ".join(f"{d} days {r:.3f}" for d, r in self.tried.items()) or "none possible"
        if self.companion is None:
            return (
                f"no companion (LSTM alone {self.lstm_ratio:.3f} of seasonal naive; "
                f"blends: {tried})"
            )
        c = self.companion
        shares = f"{min(c.share):.1f}..{max(c.share):.1f}"
        return (
            f"companion of {len(c.lags)} daily changes, LSTM share {shares}: validation "
            f"{self.lstm_ratio:.3f} -> {self.ratio:.3f} of seasonal naive (blends: {tried})"
        )


def lstm_alone(lstm: Evaluation) -> Choice:
    """No companion: the LSTM's own validation figures."""
    lstm_res = residuals(lstm)
    ratio = _mean_mae(lstm_res) / _mean_mae(residuals(lstm, "seasonal_naive"))
    return Choice(None, lstm_res, ratio, ratio)


def _mean_mae(res: F64) -> float:
    """Mean over horizon steps of each step's MAE (``evaluate``'s mean MAE, the same points)."""
    return float(np.mean(np.nanmean(np.abs(res), axis=(0, 2))))


def companion_lags(day: int, days: int) -> tuple[int, ...]:
    """The same step on each of the last ``days`` days."""
    return tuple(day * k for k in range(1, days + 1))


def choose_companion(
    model: Path, series: Series, span: Span, fit_on: Sequence[F64], day: int, lstm: Evaluation
) -> Choice:
    """The companion for ``model`` (its sidecar is restored afterwards), fitted on ``fit_on``
    (each series' training part, ``(N, F)``); ``lstm``: its validation replay alone."""
    alone = lstm_alone(lstm)
    lstm_res, lstm_ratio = alone.residuals, alone.lstm_ratio
    naive = _mean_mae(residuals(lstm, "seasonal_naive"))
    if span.horizon > day or day < 2:
        return alone  # the companion reads observed history only: at most a day ahead
    meta_path = sidecar_path(model)
    meta = ModelMeta.load(meta_path)
    shortest = min(len(values) for values in fit_on)
    options: list[tuple[int, float, Companion, F64]] = []
    for days in DEPTHS_DAYS:
        lags = companion_lags(day, days)
        if shortest < 3 * (lags[-1] + 1):
            continue
        weights, constant = fit_companion(fit_on, lags)
        trial = Companion(lags, _rows(weights), tuple(map(float, constant)), (0.0,) * span.horizon)
        replace(meta, companion=trial).save(meta_path)
        try:
            lin_res = residuals(replay_validation(model, series, span))
        finally:
            meta.save(meta_path)
        share = choose_share(-lstm_res, -lin_res)
        mixed = share[None, :, None] * lstm_res + (1 - share[None, :, None]) * lin_res
        ratio = _mean_mae(mixed) / naive
        options.append((days, ratio, replace(trial, share=tuple(map(float, share))), mixed))
    tried = {days: ratio for days, ratio, _, _ in options}
    if not options:
        return replace(alone, tried=tried)
    best = min(ratio for _, ratio, _, _ in options)
    days, ratio, companion, mixed = next(o for o in options if o[1] <= best * PREFER_SHORTER)
    if ratio > lstm_ratio * ADOPT_BELOW:
        return replace(alone, tried=tried)
    return Choice(companion, mixed, lstm_ratio, ratio, tried)


def refit(companion: Companion, fit_on: Sequence[F64]) -> Companion:
    """The same lags and shares, weights fitted on ``fit_on`` (e.g. training + validation)."""
    weights, constant = fit_companion(fit_on, companion.lags)
    return replace(companion, weights=_rows(weights), constant=tuple(map(float, constant)))


def _rows(weights: F64) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(w) for w in row) for row in weights)
