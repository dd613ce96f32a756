"""Replay a recorded series through the daemon's path and score the LSTM against naive baselines.

Pure: no files, no plots. Each row's readings go through the same ``Resampler`` and
``apply_events`` as the daemon, into the LSTM ``Forecaster`` and, on the very same events, into
the naive (last value) and seasonal-naive forecasters. After every closed bucket each warm sensor
gets a forecast from all three; a forecast for step ``k`` is scored against the bucket mean that
later closes ``k`` steps on (filled buckets have no actual and are not scored). All three methods
are scored on exactly the same points: a point counts only once the LSTM is warm and the
seasonal-naive forecaster has a full season of history.

MASE divides each sensor's errors by that sensor's mean absolute one-step change over the
replay (the in-sample naive error), so < 1 means better than "no change" at one step.

A rolling origin over part of a series (``score_from_s``/``score_until_s``, every ``every``-th
step) scores only the forecasts issued there; the state is still carried from the first row, as on
the device. A ``peer`` (e.g. MSTL, :mod:`edge_lstm.offline.peers`) forecasts from each sensor's own
history at exactly those origins, and is scored on the same points.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..model.baselines import NaiveForecaster, SeasonalNaiveForecaster, model_season
from ..model.forecaster import Forecaster
from ..stream.resample import (
    DuplicateReading,
    LateReading,
    Reading,
    Resampler,
    StepEvent,
    apply_events,
)
from .csvdata import DataError, Series

METHODS = ("lstm", "naive", "seasonal_naive")
F64 = npt.NDArray[np.float64]


class Peer(Protocol):
    """A forecaster fitted afresh at each origin on a sensor's history (``(n, F)``, no gaps)."""

    @property
    def name(self) -> str: ...
    @property
    def label(self) -> str: ...
    def forecast(self, history: F64, horizon: int) -> F64: ...


@dataclass(frozen=True)
class MethodScores:
    """Errors of one method in original units, per horizon step (index 0 is step 1)."""

    mae: tuple[float, ...]
    rmse: tuple[float, ...]
    mase: tuple[float, ...]

    @property
    def mae_mean(self) -> float:
        return float(np.mean(self.mae))

    @property
    def rmse_mean(self) -> float:
        return float(np.mean(self.rmse))

    @property
    def mase_mean(self) -> float:
        return float(np.mean(self.mase))


@dataclass
class Trace:
    """One sensor's replay, kept for plots: actuals by step, forecasts by issue step."""

    steps: dict[int, F64] = field(default_factory=dict)
    issued: list[int] = field(default_factory=list)
    forecasts: dict[str, list[F64]] = field(default_factory=lambda: {m: [] for m in METHODS})
    bands: dict[int, tuple[F64, F64]] = field(default_factory=dict)
    """The band ``(lo, hi)``, each ``(H, F)``, published after each step (``online_band``)."""

    def history(self, until: int) -> F64:
        """Observed values of steps ``first .. until`` (gaps interpolated), ``(n, F)``."""
        steps = np.asarray([s for s in sorted(self.steps) if s <= until])
        values = np.stack([self.steps[s] for s in steps.tolist()])
        grid = np.arange(int(steps[0]), until + 1)
        if len(grid) == len(steps):
            return values
        return np.stack(
            [np.interp(grid, steps, values[:, f]) for f in range(values.shape[1])], axis=1
        )


@dataclass(frozen=True)
class Evaluation:
    """The scores of a replay; ``to_dict`` is the ``--json`` document."""

    model: dict[str, str]
    sensors: tuple[str, ...]
    horizon: int
    season: int
    step_s: float
    rows: int
    steps_observed: int
    readings_dropped: int
    points: tuple[int, ...]
    methods: dict[str, MethodScores]
    win_share: dict[str, float]
    win_share_by_step: dict[str, tuple[float, ...]]
    traces: dict[str, Trace] = field(repr=False, compare=False)
    online_band: OnlineBand | None = None
    """Coverage of the band published at every step and recalibrated online, as the daemon does
    (``evaluate(..., online_band=True)`` on a model with a band)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (traces left out)."""
        return {
            "model": self.model,
            "sensors": list(self.sensors),
            "horizon": self.horizon,
            "season": self.season,
            "step_s": self.step_s,
            "rows": self.rows,
            "steps_observed": self.steps_observed,
            "readings_dropped": self.readings_dropped,
            "points_per_step": list(self.points),
            "methods": {
                name: {
                    "mae": list(s.mae),
                    "rmse": list(s.rmse),
                    "mase": list(s.mase),
                    "mae_mean": s.mae_mean,
                    "rmse_mean": s.rmse_mean,
                    "mase_mean": s.mase_mean,
                }
                for name, s in self.methods.items()
            },
            "lstm_win_share": self.win_share,
            "lstm_win_share_by_step": {k: list(v) for k, v in self.win_share_by_step.items()},
            **({} if self.online_band is None else {"online_band": self.online_band.to_dict()}),
        }


@dataclass(frozen=True)
class OnlineBand:
    """Coverage of the online-calibrated 80% band issued in the scoring window.

    ``scored``/``covered``: per sensor, per horizon step, the bands whose actual arrived and
    those of them that held it.
    """

    scored: dict[str, npt.NDArray[np.int64]]
    covered: dict[str, npt.NDArray[np.int64]]

    @classmethod
    def of(cls, traces: dict[str, Trace], horizon: int) -> OnlineBand:
        scored, covered = {}, {}
        for sensor_id, trace in traces.items():
            if not trace.bands:
                continue
            issued = sorted(trace.bands)
            actual = _targets(replace(trace, issued=issued), horizon)  # (n, H, F)
            lo = np.stack([trace.bands[i][0] for i in issued])
            hi = np.stack([trace.bands[i][1] for i in issued])
            valid = np.isfinite(actual).all(axis=2)
            inside = ((actual >= lo) & (actual <= hi)).all(axis=2) & valid
            scored[sensor_id] = valid.sum(axis=0).astype(np.int64)
            covered[sensor_id] = inside.sum(axis=0).astype(np.int64)
        return cls(scored, covered)

    def coverage(self, sensor_id: str | None = None) -> tuple[float, ...]:
        """Share of the scored bands that held the actual, per horizon step (NaN: none)."""
        names = list(self.scored) if sensor_id is None else [sensor_id]
        scored = np.sum([self.scored[s] for s in names], axis=0)
        covered = np.sum([self.covered[s] for s in names], axis=0)
        return tuple(float(c / n) if n else math.nan for c, n in zip(covered, scored, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "coverage": list(self.coverage()),
            "scored": np.sum(list(self.scored.values()), axis=0).tolist(),
            "per_sensor": {s: list(self.coverage(s)) for s in self.scored},
        }


def default_season(forecaster: Forecaster) -> int:
    """The model's validation season, else one day of steps (at least 1)."""
    return model_season(forecaster.meta)


def readings_of(series: Series, n_features: int) -> tuple[tuple[str, ...], list[list[Reading]]]:
    """Per row, the readings it holds: one sensor per column, or one multi-feature sensor."""
    if n_features == 1:
        sensors = series.columns
        rows = [
            [
                Reading(s, (float(v),), float(t))
                for s, v in zip(sensors, row, strict=True)
                if math.isfinite(v)
            ]
            for t, row in zip(series.times.tolist(), series.values.tolist(), strict=True)
        ]
        return sensors, rows
    if len(series.columns) != n_features:
        raise DataError(
            f"{series.source}: the model takes {n_features} features; name exactly that many "
            f"columns, in the model's feature order (got {len(series.columns)})"
        )
    sensor = "series"
    rows = [
        [Reading(sensor, tuple(row), t)] if all(math.isfinite(v) for v in row) else []
        for t, row in zip(series.times.tolist(), series.values.tolist(), strict=True)
    ]
    return (sensor,), rows


def evaluate(
    forecaster: Forecaster,
    series: Series,
    horizon: int | None = None,
    season: int | None = None,
    max_gap_steps: int = 3,
    progress: Callable[[int, int], None] | None = None,
    score_from_s: float | None = None,
    score_until_s: float | None = None,
    every: int = 1,
    peer: Peer | None = None,
    online_band: bool = False,
) -> Evaluation:
    """Replay ``series`` (original units) and score LSTM, naive and seasonal naive.

    Only forecasts issued from steps starting in ``[score_from_s, score_until_s)`` whose step
    index is a multiple of ``every`` are scored (all, by default); ``peer`` adds a method.
    ``online_band`` (a model with a band): every warm sensor publishes its band at every step
    from the first row, as the daemon does, so the online calibration runs; the result's
    ``online_band`` scores the bands issued in ``[score_from_s, score_until_s)``.
    """
    meta = forecaster.meta
    horizon = meta.horizon if horizon is None else horizon
    season = default_season(forecaster) if season is None else season
    if horizon < 1 or season < 1 or every < 1:
        raise ValueError("horizon, season and every must be >= 1")
    lo = -math.inf if score_from_s is None else score_from_s
    hi = math.inf if score_until_s is None else score_until_s

    def scored(bucket_start: float) -> bool:
        index = round(bucket_start / meta.step_s)
        return lo <= bucket_start < hi and index % every == 0

    sensors, rows = readings_of(series, meta.n_features)
    needed = max(meta.warmup, season, 1) + 1
    buckets = len(np.unique(np.floor(series.times / meta.step_s)))
    if buckets < needed + 1:
        raise DataError(
            f"{series.source}: too short: {buckets} model step(s) of {meta.step_s:g} s, need more "
            f"than {needed} (warm-up {meta.warmup}, season {season}) before anything can be scored"
        )
    resampler = Resampler(meta.step_s, meta.n_features, max_gap_steps=max_gap_steps)
    naive = NaiveForecaster(meta.n_features, horizon)
    seasonal = SeasonalNaiveForecaster(season, meta.n_features, horizon)
    traces = {s: Trace() for s in sensors}
    dropped = 0
    if online_band and not forecaster.has_bands:
        raise DataError(f"model {meta.name!r} has no band (residual quantiles) to calibrate")

    def publish_bands(observed: dict[str, float]) -> None:
        """Every warm sensor's band, as the daemon publishes it (scored online when its actuals
        arrive); those issued in the scoring window are kept for the report."""
        warm = [s for s in observed if forecaster.is_warm(s)]
        if not warm:
            return
        low, high = forecaster.interval_batch(warm, horizon)
        for i, sensor_id in enumerate(warm):
            start = observed[sensor_id]
            if lo <= start < hi:
                bands = traces[sensor_id].bands
                bands[round(start / meta.step_s)] = (
                    low[i].astype(np.float64),
                    high[i].astype(np.float64),
                )

    def advance(events: list[StepEvent]) -> None:
        observed = apply_events(forecaster, events)
        apply_events(naive, events)
        apply_events(seasonal, events)
        if online_band:
            publish_bands(observed)
        for event in events:
            if event.kind == "observe" and event.values is not None:
                index = round(event.bucket_start / meta.step_s)
                traces[event.sensor_id].steps[index] = np.asarray(event.values, np.float64)
        ready = [
            s
            for s, start in observed.items()
            if scored(start) and forecaster.is_warm(s) and seasonal.steps_seen(s) >= season
        ]
        if not ready:
            return
        outputs = {
            "lstm": forecaster.forecast_batch(ready, horizon),
            "naive": naive.forecast_batch(ready, horizon),
            "seasonal_naive": seasonal.forecast_batch(ready, horizon),
        }
        for i, sensor_id in enumerate(ready):
            trace = traces[sensor_id]
            trace.issued.append(round(observed[sensor_id] / meta.step_s))
            for name, out in outputs.items():
                trace.forecasts[name].append(out[i].astype(np.float64))

    report_every = max(1, len(rows) // 100)
    for i, readings in enumerate(rows):
        events: list[StepEvent] = []
        for reading in readings:
            try:
                events += resampler.add(reading)
            except (LateReading, DuplicateReading):
                dropped += 1
        if events:
            advance(events)
        if progress is not None and (i % report_every == 0 or i == len(rows) - 1):
            progress(i + 1, len(rows))
    advance(resampler.flush())
    if peer is not None:
        for trace in traces.values():
            trace.forecasts[peer.name] = [
                peer.forecast(trace.history(step), horizon) for step in trace.issued
            ]
    result = _score(forecaster, series, sensors, horizon, season, rows, traces, dropped)
    if not online_band:
        return result
    return replace(result, online_band=OnlineBand.of(traces, horizon))


def _score(
    forecaster: Forecaster,
    series: Series,
    sensors: Sequence[str],
    horizon: int,
    season: int,
    rows: Sequence[Sequence[Reading]],
    traces: dict[str, Trace],
    dropped: int,
) -> Evaluation:
    names = list(next(iter(traces.values())).forecasts) if traces else list(METHODS)
    raw: dict[str, list[F64]] = {m: [] for m in names}
    scaled: dict[str, list[F64]] = {m: [] for m in names}
    for trace in traces.values():
        if not trace.issued:
            continue
        actual = _targets(trace, horizon)  # (n_issued, H, F), NaN where no actual
        scale = _naive_scale(trace)
        for name in names:
            error = np.stack(trace.forecasts[name]) - actual
            raw[name].append(error)
            scaled[name].append(error / scale)
    if not raw["lstm"]:
        raise DataError(
            f"{series.source}: no forecast could be scored (too short, or too many gaps, for "
            f"warm-up {forecaster.meta.warmup} and season {season})"
        )
    methods: dict[str, MethodScores] = {}
    abs_err: dict[str, F64] = {}
    points: tuple[int, ...] = ()
    for name in names:
        error = np.concatenate(raw[name])  # (N, H, F)
        relative = np.concatenate(scaled[name])
        valid = np.isfinite(error)
        points = tuple(int(v) for v in valid.all(axis=2).sum(axis=0))
        methods[name] = MethodScores(
            mae=_per_step(np.abs(error), valid),
            rmse=tuple(math.sqrt(v) for v in _per_step(error**2, valid)),
            mase=_per_step(np.abs(relative), np.isfinite(relative)),
        )
        # mean over features; a point with no actual stays NaN and is left out of win shares
        count = valid.sum(axis=2)
        total = np.where(valid, np.abs(error), 0.0).sum(axis=2)
        abs_err[name] = np.where(count > 0, total / np.maximum(count, 1), np.nan)  # (N, H)
    lstm = abs_err["lstm"]
    best_baseline = np.fmin(abs_err["naive"], abs_err["seasonal_naive"])
    shares = {
        "naive": _wins(lstm, abs_err["naive"]),
        "seasonal_naive": _wins(lstm, abs_err["seasonal_naive"]),
        "both": _wins(lstm, best_baseline),
    }
    meta = forecaster.meta
    return Evaluation(
        model={"name": meta.name, "sha256": meta.tflite_sha256},
        sensors=tuple(sensors),
        horizon=horizon,
        season=season,
        step_s=meta.step_s,
        rows=len(rows),
        steps_observed=sum(len(t.steps) for t in traces.values()),
        readings_dropped=dropped,
        points=points,
        methods=methods,
        win_share={k: v[0] for k, v in shares.items()},
        win_share_by_step={k: v[1] for k, v in shares.items()},
        traces=traces,
    )


def _targets(trace: Trace, horizon: int) -> F64:
    issued = np.asarray(trace.issued)
    n_features = next(iter(trace.steps.values())).shape[0]
    out = np.full((len(issued), horizon, n_features), np.nan)
    for i, step in enumerate(issued.tolist()):
        for k in range(horizon):
            value = trace.steps.get(step + k + 1)
            if value is not None:
                out[i, k] = value
    return out


def _naive_scale(trace: Trace) -> F64:
    """Mean absolute one-step change between consecutive observed steps (per feature)."""
    steps = sorted(trace.steps)
    diffs = [
        np.abs(trace.steps[b] - trace.steps[a]) for a, b in itertools.pairwise(steps) if b == a + 1
    ]
    if not diffs:
        return np.full(next(iter(trace.steps.values())).shape, np.nan)
    scale = np.mean(diffs, axis=0)
    return np.where(scale > 0, scale, np.nan)  # a constant sensor has no MASE


def _per_step(values: F64, valid: npt.NDArray[np.bool_]) -> tuple[float, ...]:
    total = np.where(valid, values, 0.0).sum(axis=(0, 2))
    count = valid.sum(axis=(0, 2))
    return tuple(float(t / c) if c else math.nan for t, c in zip(total, count, strict=True))


def _wins(lstm: F64, other: F64) -> tuple[float, tuple[float, ...]]:
    """Share of points where the LSTM's error is smaller (ties count half), overall and per step."""
    valid = np.isfinite(lstm) & np.isfinite(other)
    score = np.where(lstm < other, 1.0, np.where(lstm == other, 0.5, 0.0))
    overall = float(score[valid].mean()) if valid.any() else math.nan
    per_step = tuple(
        float(score[:, k][valid[:, k]].mean()) if valid[:, k].any() else math.nan
        for k in range(lstm.shape[1])
    )
    return overall, per_step


def residuals(evaluation: Evaluation, method: str = "lstm") -> F64:
    """``actual - forecast`` of every scored forecast, ``(N, horizon, F)``, NaN without actual."""
    parts = [
        _targets(trace, evaluation.horizon) - np.stack(trace.forecasts[method])
        for trace in evaluation.traces.values()
        if trace.issued
    ]
    return np.concatenate(parts)


def band_coverage(
    evaluation: Evaluation, q10: npt.ArrayLike, q90: npt.ArrayLike
) -> tuple[float, ...]:
    """Share of actuals inside ``[forecast + q10, forecast + q90]`` per horizon step.

    ``q10``/``q90`` are ``(horizon, F)`` residual quantiles (what the metadata stores).
    """
    res = residuals(evaluation)
    shape = (1, evaluation.horizon, res.shape[2])
    lo = np.asarray(q10, dtype=np.float64)[: evaluation.horizon].reshape(shape)
    hi = np.asarray(q90, dtype=np.float64)[: evaluation.horizon].reshape(shape)
    valid = np.isfinite(res)
    inside = (res >= lo) & (res <= hi)
    return tuple(
        float(inside[:, k][valid[:, k]].mean()) if valid[:, k].any() else math.nan
        for k in range(evaluation.horizon)
    )
