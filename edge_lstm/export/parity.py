"""Prove that the exported single-step model forecasts like the original Keras model.

The Keras side is the loop users run (see ``shared/seeds``): reset the states, feed the known
sequence one step at a time, then feed each prediction back as the next input. Stateless models
have no state to carry, so they are re-run on the growing sequence instead, which is what their
own ``predict`` would give. The TFLite side is :class:`edge_lstm.runtime.StepModel`: the real
interpreter, through the same code the device runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..runtime import StepModel
from .architecture import Architecture, reset_states

FloatArray = npt.NDArray[np.float32]

#: Allowed max |keras - tflite| relative to the data scale, per quantize mode. float32 TFLite
#: matches Keras to ~1e-6; float16 weights cost ~1e-3; dynamic-range int8 weights ~1e-2.
TOLERANCE = {"none": 1e-4, "float16": 2e-2, "dynamic": 1e-1}


@dataclass(frozen=True)
class ParityResult:
    """Measured agreement between Keras and the exported model."""

    max_abs_error: float
    tolerance: float
    scale: float
    steps: int
    sequences: int

    @property
    def ok(self) -> bool:
        return self.max_abs_error <= self.tolerance


def keras_rollout(model: Any, arch: Architecture, known: FloatArray, horizon: int) -> FloatArray:
    """One-step predictions ``(N, T + horizon, F_out)``: teacher-forced for ``T``, then fed back."""
    n_seq, n_known, _ = known.shape
    batch = arch.batch_size if arch.stateful and arch.batch_size else n_seq
    if n_seq % batch:
        raise ValueError(f"{n_seq} sequences do not split into batches of {batch}")
    out = np.empty((n_seq, n_known + horizon, arch.n_outputs), np.float32)
    for start in range(0, n_seq, batch):
        chunk = known[start : start + batch]
        if arch.stateful:
            out[start : start + batch] = _stateful_loop(model, chunk, horizon)
        else:
            out[start : start + batch] = _stateless_loop(model, chunk, horizon)
    return out


def _last_step(value: Any) -> FloatArray:
    array = np.asarray(value, dtype=np.float32)
    return array[:, -1, :] if array.ndim == 3 else array


def _stateful_loop(model: Any, known: FloatArray, horizon: int) -> FloatArray:
    reset_states(model)
    preds = []
    for t in range(known.shape[1]):
        preds.append(_last_step(model(known[:, t : t + 1, :], training=False)))
    for _ in range(horizon):
        preds.append(_last_step(model(preds[-1][:, None, :], training=False)))
    reset_states(model)
    return np.stack(preds, axis=1)


def _stateless_loop(model: Any, known: FloatArray, horizon: int) -> FloatArray:
    seq = known
    preds = [_last_step(model(known[:, :1, :], training=False))]
    for t in range(2, known.shape[1] + 1):
        preds.append(_last_step(model(known[:, :t, :], training=False)))
    for _ in range(horizon):
        seq = np.concatenate([seq, preds[-1][:, None, :]], axis=1)
        preds.append(_last_step(model(seq, training=False)))
    return np.stack(preds, axis=1)


def step_rollout(step_model: StepModel, known: FloatArray, horizon: int) -> FloatArray:
    """The same rollout through the exported model, all sequences in one batch per step."""
    n_seq, n_known, _ = known.shape
    state = step_model.zero_state(n_seq)
    preds = []
    x = known[:, 0, :]
    for t in range(n_known + horizon):
        y, state = step_model.step(x, state)
        preds.append(y)
        x = known[:, t + 1, :] if t + 1 < n_known else y
    return np.stack(preds, axis=1)


def check_parity(
    keras_model: Any,
    arch: Architecture,
    step_model: StepModel,
    quantize: str = "none",
    sequences: int = 4,
    known_steps: int = 24,
    horizon: int = 12,
    seed: int = 0,
) -> ParityResult:
    """Roll random sequences through both models and measure the worst disagreement."""
    if arch.stateful and arch.batch_size:
        sequences = max(arch.batch_size, sequences - sequences % arch.batch_size)
    rng = np.random.default_rng(seed)
    # Model units: a trained model sees scaled data, so unit-variance inputs are its data scale.
    known = rng.normal(size=(sequences, known_steps, arch.n_features)).astype(np.float32)
    expected = keras_rollout(keras_model, arch, known, horizon)
    got = step_rollout(step_model, known, horizon)
    error = float(np.max(np.abs(expected - got))) if np.all(np.isfinite(got)) else float("inf")
    scale = max(1.0, float(np.max(np.abs(expected))))
    return ParityResult(
        max_abs_error=error,
        tolerance=TOLERANCE[quantize] * scale,
        scale=scale,
        steps=known_steps + horizon,
        sequences=sequences,
    )
