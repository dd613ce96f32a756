"""Engine throughput: the batched ``Forecaster`` beside the per-sensor loop it replaces.

Every figure is sensor-steps per second (one sensor advanced by one model step). For each sensor
count the same run measures:

* ``forecaster``: ``Forecaster.observe_batch`` for all sensors at the next step time (the
  daemon's path: validation, scaling, the model's inputs, state gather/scatter, one batched
  interpreter call per 1,024 sensors);
* ``step``: ``StepModel.step`` on all sensors at once, the interpreter part of the above;
* ``loop``: the baseline, one interpreter call per sensor (``StepModel.step`` at batch 1, states
  kept in one array, so the loop pays no bookkeeping the batched path pays);
* ``forecast``: ``Forecaster.forecast_batch`` at the model horizon, in sensor-forecasts per second;
* ``keras``: when TensorFlow is importable, Keras ``predict`` on a single-step model of the same
  architecture (random weights: speed does not depend on the weights' values).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..model.metadata import ModelMeta
from .report import ratio

FULL_COUNTS = (1, 64, 1000, 10_000)
QUICK_COUNTS = (1, 16, 64)


@dataclass(frozen=True)
class EngineRow:
    """Figures for one sensor count; rates are per second, ``None`` when not measured."""

    sensors: int
    forecaster_steps_per_s: float
    step_steps_per_s: float
    loop_steps_per_s: float
    forecast_per_s: float
    keras_steps_per_s: float | None
    speedup_vs_loop: float | None
    step_speedup_vs_loop: float | None
    speedup_vs_keras: float | None
    forecaster_us_per_sensor: float
    loop_us_per_sensor: float


def repeat_for(
    work: Callable[[], object], min_time_s: float, clock: Callable[[], float] = time.perf_counter
) -> tuple[int, float]:
    """Call ``work`` until ``min_time_s`` of ``clock`` has passed (at least once): the number
    of calls and the time they took."""
    calls = 0
    start = clock()
    elapsed = 0.0
    while calls == 0 or elapsed < min_time_s:
        work()
        calls += 1
        elapsed = clock() - start
    return calls, elapsed


def measure_rate(work: Callable[[], object], units: int, min_time_s: float) -> float:
    """Units per second of ``work`` (called once untimed, then repeatedly for ``min_time_s``)."""
    work()  # warm-up: first calls allocate interpreters and touch memory
    reps, elapsed = repeat_for(work, min_time_s)
    return units * reps / elapsed


def run_engine(
    model_path: Path,
    counts: Sequence[int] = FULL_COUNTS,
    backend: str | None = None,
    min_time_s: float = 1.0,
    keras: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure every count; returns the JSON-able ``engine`` section of the bench report."""
    from ..model.forecaster import Forecaster
    from ..model.runtime import StepModel

    model = StepModel.load(model_path, backend=backend)
    meta = model.meta
    keras_model = _keras_model(meta) if keras else None
    rng = np.random.default_rng(0)
    rows: list[EngineRow] = []
    for n in counts:
        if progress:
            progress(f"engine: {n} sensor(s)")
        forecaster = Forecaster(model, max_sensors=max(n, 1))
        values = bench_values(meta, n, rng)
        ids = list(values)
        clock = StepClock(meta.step_s)
        batched = measure_rate(partial(clock.observe, forecaster, values), n, min_time_s)
        forecasts = measure_rate(
            partial(forecaster.forecast_batch, ids, meta.horizon), n, min_time_s
        )
        # The model's input width (D), not F: a model with lags/calendar reads more than values.
        x = rng.normal(size=(n, meta.input_width)).astype(np.float32)
        state = model.zero_state(n)
        step = measure_rate(partial(model.step, x, state), n, min_time_s)
        loop = measure_rate(partial(_per_sensor_loop, model, x, state), n, min_time_s)
        keras_rate = None
        if keras_model is not None:
            feeds = [x] + [np.zeros((n, s.size), np.float32) for s in meta.state]
            predict = partial(keras_model.predict, feeds, batch_size=n, verbose=0)
            keras_rate = measure_rate(predict, n, min_time_s)
        rows.append(
            EngineRow(
                sensors=n,
                forecaster_steps_per_s=batched,
                step_steps_per_s=step,
                loop_steps_per_s=loop,
                forecast_per_s=forecasts,
                keras_steps_per_s=keras_rate,
                speedup_vs_loop=ratio(batched, loop),
                step_speedup_vs_loop=ratio(step, loop),
                speedup_vs_keras=ratio(batched, keras_rate),
                forecaster_us_per_sensor=1e6 / batched,
                loop_us_per_sensor=1e6 / loop,
            )
        )
    return {
        "model": {"path": str(model_path), "name": meta.name, "sha256": meta.tflite_sha256},
        "backend": model.backend,
        "horizon": meta.horizon,
        "min_time_s": min_time_s,
        "keras": "same architecture, random weights" if keras_model is not None else None,
        "rows": [asdict(r) for r in rows],
    }


def bench_values(
    meta: ModelMeta, sensors: int, rng: np.random.Generator
) -> dict[str, tuple[float, ...]]:
    """One plausible reading per sensor (``bench-0`` ...), as the daemon's resampler hands them
    to ``observe_batch``: tuples of floats in original units."""
    original = meta.scaler.inverse(rng.normal(size=(sensors, meta.n_features)))
    return {f"bench-{i}": tuple(row) for i, row in enumerate(original.astype(np.float64).tolist())}


class StepClock:
    """Step start times as the daemon passes them: epoch-aligned, one model step per call.

    A model with calendar inputs refuses an ``observe`` without its step's time, and a real
    clock makes the calendar work (a new step time per call) what the daemon pays.
    """

    def __init__(self, step_s: float, start_s: float | None = None) -> None:
        self.step_s = step_s
        now = time.time() if start_s is None else start_s
        self.at = math.floor(now / step_s) * step_s

    def next(self) -> float:
        """The next step's start time."""
        self.at += self.step_s
        return self.at

    def observe(self, forecaster: Any, values: dict[str, tuple[float, ...]]) -> object:
        """``forecaster.observe_batch(values)`` at the next step."""
        return forecaster.observe_batch(values, at=self.next())


def _per_sensor_loop(model: Any, x: np.ndarray[Any, Any], state: np.ndarray[Any, Any]) -> None:
    for i in range(x.shape[0]):
        _, state[i : i + 1] = model.step(x[i : i + 1], state[i : i + 1])


def keras_available() -> bool:
    """True when TensorFlow (and so Keras) can be found, without importing it."""
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


def _keras_model(meta: ModelMeta) -> Any:
    """A Keras single-step model shaped like ``meta`` (None without TensorFlow)."""
    if not keras_available():
        return None
    try:
        return _build_keras(meta)
    except Exception:  # an architecture Keras cannot rebuild only loses the optional column
        return None


def _build_keras(meta: ModelMeta) -> Any:
    import keras

    inputs = [keras.Input((meta.input_width,), name="x")]
    states = [keras.Input((s.size,), name=f"state_{i}") for i, s in enumerate(meta.state)]
    inputs += states
    h: Any = inputs[0]
    outputs: list[Any] = []
    cursor = 0
    for layer in meta.layers:
        if layer.kind == "lstm":
            cell: Any = keras.layers.LSTMCell(layer.units)
            h, new = cell(h, [states[cursor], states[cursor + 1]])
            cursor += 2
        else:
            cell = keras.layers.GRUCell(layer.units)
            h, new = cell(h, [states[cursor]])
            cursor += 1
        outputs += list(new) if isinstance(new, (list, tuple)) else [new]
    y = keras.layers.Dense(meta.n_features)(h)
    return keras.Model(inputs, [y, *outputs])
