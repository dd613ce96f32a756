"""What a model's extra inputs cost: the same-size model with and without them, in one run.

Issue 11's criterion: the per sensor-step cost of a model with lags, calendar covariates and a
per-sensor level is at most ``LIMIT`` times that of the same-size model without them. The two
models ship with the package (``edge_lstm/bench/models/``, built by
``scripts/make_bench_models.py``; random weights, since the cost does not depend on them): both
1 x LSTM(32), one feature, horizon 12, the same held-out band; ``seasonal`` adds lags of a day and
a week, time of day and day of week in Europe/London (a zone with DST), a 24-step level and a
14-day companion blended at every step (the largest ``scripts/train.py`` chooses).

For each sensor count both forecasters are first warmed past the longest lag with bands issued
(the steady state a daemon runs in). Then rounds alternate the two models (the order flips every
round, so drift in the machine's load hits both alike); in a round each operation is repeated
for at least ``min_time_s`` of this process's CPU time. The figure is the median over rounds of
CPU microseconds per sensor-step, and the ratio ``seasonal / plain``:

* ``observe``: ``observe_batch`` of every sensor at the next step time;
* ``forecast``: ``forecast_batch`` at the model's horizon (per sensor-forecast);
* ``cycle``: observe, forecast and ``interval_batch`` on those forecasts: what the daemon does
  for every closed step.

The cycle is also timed for ``seasonal`` without its companion (``BARE``: the same file, its
metadata's ``companion`` left out), in the same rounds: the inputs the issue names alone, and so
what the companion adds (``scripts/train.py`` keeps one only where validation shows it helps;
the default model has none).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..model.metadata import ModelMeta, sidecar_path
from ..model.runtime import StepModel
from .engine import QUICK_COUNTS, StepClock, bench_values, repeat_for

__all__ = [
    "BARE",
    "FULL_COUNTS",
    "LIMIT",
    "MODELS",
    "QUICK_COUNTS",
    "bench_model_paths",
    "run_inputs",
]

FULL_COUNTS = (1, 4, 64, 1000, 10_000)
"""The engine's counts and a few sensors (a home's Pi): below about ``covariates.FEW`` sensors
the seasonal model's inputs are a Python loop over sensors, above it numpy's batch path."""
LIMIT = 1.5
"""The issue's bound on ``seasonal / plain`` per sensor-step."""
MODELS = ("plain", "seasonal")
BARE = "no_companion"
"""``seasonal`` without its companion (its cycle only)."""
OPERATIONS = ("observe", "forecast", "cycle")


def bench_model_paths() -> dict[str, Path]:
    """The two shipped bench models, by name."""
    folder = Path(__file__).resolve().parent / "models"
    return {name: folder / f"{name}.tflite" for name in MODELS}


class _Subject:
    """One model's forecaster, its sensors' readings and its step clock."""

    def __init__(
        self, path: Path, sensors: int, backend: str | None, companion: bool = True
    ) -> None:
        from ..model.forecaster import Forecaster

        content, meta = StepModel.read(path)
        if not companion:
            meta = replace(meta, companion=None)
        model = StepModel(content, meta, backend=backend, source=str(path))
        self.forecaster = Forecaster(model, max_sensors=max(sensors, 1))
        self.meta: ModelMeta = self.forecaster.meta
        self.values = bench_values(self.meta, sensors, np.random.default_rng(0))
        self.ids = list(self.values)
        self.clock = StepClock(self.meta.step_s)
        self.horizon = self.meta.horizon

    def observe(self) -> None:
        self.clock.observe(self.forecaster, self.values)

    def forecast(self) -> None:
        self.forecaster.forecast_batch(self.ids, self.horizon)

    def cycle(self) -> None:
        self.observe()
        forecasts = self.forecaster.forecast_batch(self.ids, self.horizon)
        self.forecaster.interval_batch(self.ids, self.horizon, forecasts)

    def warm(self, steps: int) -> None:
        """Past the longest lag, with a horizon of bands issued and waiting to be scored."""
        for _ in range(max(steps - self.horizon, 0)):
            self.observe()
        for _ in range(self.horizon):
            self.cycle()


def cpu_us_per_call(work: Callable[[], None], min_time_s: float) -> float:
    """CPU microseconds (this process, all threads) per call of ``work``, over at least
    ``min_time_s`` of CPU time. CPU rather than wall time: other processes on a loaded machine
    take the core away without being counted."""
    calls, elapsed = repeat_for(work, min_time_s, time.process_time)
    return 1e6 * elapsed / calls


def run_inputs(
    counts: Sequence[int] = FULL_COUNTS,
    rounds: int = 7,
    min_time_s: float = 0.15,
    backend: str | None = None,
    progress: Callable[[str], None] | None = None,
    paths: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Measure every count; the JSON-able ``inputs`` section of the bench report."""
    models = paths or bench_model_paths()
    metas = {name: ModelMeta.load(sidecar_path(models[name])) for name in MODELS}
    rows = []
    for n in counts:
        if progress:
            progress(f"inputs: {n} sensor(s), {rounds} rounds")
        subjects = {name: _Subject(models[name], n, backend) for name in MODELS}
        subjects[BARE] = _Subject(models["seasonal"], n, backend, companion=False)
        warm = max(s.meta.warmup_steps for s in subjects.values()) + 1
        for subject in subjects.values():
            subject.warm(warm)
        timed = {op: MODELS + ((BARE,) if op == "cycle" else ()) for op in OPERATIONS}
        samples: dict[tuple[str, str], list[float]] = {
            (m, op): [] for op in OPERATIONS for m in timed[op]
        }
        for r in range(rounds):
            for op in OPERATIONS:
                order = timed[op] if r % 2 == 0 else timed[op][::-1]
                for name in order:
                    work = getattr(subjects[name], op)
                    work()  # untimed: the first call after a switch touches cold memory
                    samples[name, op].append(cpu_us_per_call(work, min_time_s) / n)
        rows.append(_row(n, samples))
    return {
        "models": {name: _describe(models[name], metas[name]) for name in MODELS},
        "backend": subjects["plain"].forecaster.model.backend if counts else backend,
        "rounds": rounds,
        "min_time_s": min_time_s,
        "clock": "process CPU time",
        "limit": LIMIT,
        "max_ratio": max((row[f"{op}_ratio"] for row in rows for op in OPERATIONS), default=None),
        "max_cycle_ratio_no_companion": max(
            (row["cycle_no_companion_ratio"] for row in rows), default=None
        ),
        "rows": rows,
    }


def _row(sensors: int, samples: dict[tuple[str, str], list[float]]) -> dict[str, Any]:
    row: dict[str, Any] = {"sensors": sensors}
    for op in OPERATIONS:
        row[f"{op}_plain_us"] = statistics.median(samples["plain", op])
        _timed(row, f"{op}_seasonal_us", f"{op}_ratio", samples, ("seasonal", op))
    _timed(row, "cycle_no_companion_us", "cycle_no_companion_ratio", samples, (BARE, "cycle"))
    return row


def _timed(
    row: dict[str, Any],
    us_key: str,
    ratio_key: str,
    samples: dict[tuple[str, str], list[float]],
    which: tuple[str, str],
) -> None:
    """``which``'s median µs, its ratio to the plain model's median in the same operation and
    the lowest and highest ratio of a single round (``ratio_key`` + ``_range``)."""
    timed, plain = samples[which], samples["plain", which[1]]
    per_round = [t / p for t, p in zip(timed, plain, strict=True)]
    row[us_key] = statistics.median(timed)
    row[ratio_key] = row[us_key] / statistics.median(plain)
    row[f"{ratio_key}_range"] = [min(per_round), max(per_round)]


def _describe(path: Path, meta: ModelMeta) -> dict[str, Any]:
    spec = meta.input_spec
    return {
        "path": str(path),
        "sha256": meta.tflite_sha256,
        "layers": [f"{layer.kind}({layer.units})" for layer in meta.layers],
        "input_width": meta.input_width,
        "inputs": None if spec.is_plain else spec.to_doc(),
        "companion": None
        if meta.companion is None
        else {"lags": list(meta.companion.lags), "history_len": meta.history_len},
    }
