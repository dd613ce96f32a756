"""A trained model's out-of-sample figures: its band from the validation part, its held-out table.

What ``scripts/train.py`` reports after training, kept here (no TensorFlow) so the training
script is training: the band is the validation part's rollout residual quantiles per horizon
step; the held-out part is a rolling origin against naive, seasonal naive and an optional peer,
plus the band's coverage on every held-out origin, as published (static) and recalibrated online
as the daemon does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..model.forecaster import Forecaster
from .csvdata import DataError, Series
from .evaluate import Evaluation, OnlineBand, Peer, band_coverage, evaluate

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Span:
    """Where a series is scored: seasonal-naive ``season``, gaps filled up to ``max_gap``
    steps, validation from ``t_val`` to ``t_test`` (epoch seconds), held out from ``t_test``."""

    horizon: int
    season: int
    max_gap: int
    t_val: float
    t_test: float


@dataclass(frozen=True)
class Band:
    """Quantiles ``(horizon, F)`` of the validation rollouts' residuals, and how many."""

    q10: F64
    q90: F64
    rollouts: int

    @classmethod
    def of(cls, residuals: F64) -> Band:
        """From the residuals ``(N, horizon, F)`` (``actual - forecast``, NaN unscored)."""
        if not np.isfinite(residuals).any(axis=(0, 2)).all():
            raise DataError("no forecast could be scored on the validation part")
        q10 = np.nanquantile(residuals, 0.1, axis=0)
        q90 = np.nanquantile(residuals, 0.9, axis=0)
        return cls(q10, q90, residuals.shape[0])

    def rows(self) -> tuple[list[list[float]], list[list[float]]]:
        """The quantiles as the metadata stores them."""
        return [[float(v) for v in r] for r in self.q10], [[float(v) for v in r] for r in self.q90]


def replay(
    model: Path,
    series: Series,
    span: Span,
    held_out_part: bool = False,
    every: int = 1,
    peer: Peer | None = None,
    online_band: bool = False,
) -> Evaluation:
    """``model`` replayed over ``series`` from the first row on a fresh forecaster, scored on
    the validation part (or the held-out part); the options are ``evaluate``'s."""
    start, stop = (span.t_test, None) if held_out_part else (span.t_val, span.t_test)
    return evaluate(
        Forecaster.load(model),
        series,
        span.horizon,
        span.season,
        span.max_gap,
        score_from_s=start,
        score_until_s=stop,
        every=every,
        peer=peer,
        online_band=online_band,
    )


def replay_validation(model: Path, series: Series, span: Span) -> Evaluation:
    """``model``'s rollouts on the validation part.

    The model must not have seen the validation part (``train.py`` scores the models as selected,
    before any refit): otherwise its residuals there, and so the band, are too narrow.
    """
    return replay(model, series, span)


@dataclass(frozen=True)
class HeldOut:
    """The held-out rolling origin (every ``every`` steps, with the peer) and the band's coverage
    per horizon step on every held-out origin: static quantiles, and recalibrated online."""

    table: Evaluation
    every: int
    coverage: tuple[float, ...]
    coverage_origins: int
    online: OnlineBand

    def beaten_by(self) -> list[str]:
        """The methods whose mean MAE is below the LSTM's."""
        methods = self.table.methods
        lstm = methods["lstm"].mae_mean
        return [name for name, s in methods.items() if name != "lstm" and s.mae_mean < lstm]


def held_out(
    model: Path, series: Series, span: Span, band: Band, every: int, peer: Peer | None
) -> HeldOut:
    """Score ``model`` (whose sidecar carries ``band``) on the held-out part, from a fresh replay.

    Coverage is counted on every origin (cheap without a peer): 100 origins alone would leave
    each step's figure +-4 points of binomial noise.
    """

    table = replay(model, series, span, True, every, peer)
    every_origin = replay(model, series, span, True, online_band=True)
    coverage = band_coverage(every_origin, band.q10, band.q90)
    if every_origin.online_band is None:
        raise DataError("the held-out replay published no band")
    return HeldOut(table, every, coverage, int(every_origin.points[0]), every_origin.online_band)
