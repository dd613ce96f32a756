"""The training model, and several seeds' models as ONE wider LSTM whose output is their mean.

The model is one ``LSTM(U)`` layer and a ``Dense(F)`` head; with ``skip`` the head also sees the
step's inputs (``Dense(concat(h_t, x_t))``, the linear "highway" of LSTNet, Lai et al. 2018), so
a linear forecast such as last week's value plus this step's weekly change is one weight vector
away, and the LSTM learns what that misses.

Merging: the seeds' LSTMs side by side are one ``LSTM(kU)`` whose kernels are block-diagonal per
gate (Keras' gate order i, f, c, o: unit ``j`` of model ``m`` sits at ``m*U + j`` inside every
gate), so each block runs its own model and never sees the others; the head averages the blocks
(and the skip weights). The device then still runs one single-step model with one state per
sensor, and the export proves parity as for any model.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def forecaster_model(n_inputs: int, units: int, n_out: int, skip: bool) -> Any:
    """``LSTM(units)`` and a ``Dense(n_out)`` head over ``h_t`` (and ``x_t`` with ``skip``)."""
    import keras

    inputs = keras.Input(shape=(None, n_inputs))
    value = keras.layers.LSTM(units, return_sequences=True)(inputs)
    if skip:
        value = keras.layers.Concatenate()([value, inputs])
    return keras.Model(inputs, keras.layers.Dense(n_out)(value))


def _parts(model: Any) -> tuple[Any, Any, bool]:
    """A forecaster model's LSTM layer, its head, and whether the head sees the inputs."""
    kinds = {type(layer).__name__: layer for layer in model.layers}
    return kinds["LSTM"], kinds["Dense"], "Concatenate" in kinds


def merge_seeds(models: list[Any]) -> Any:
    """One :func:`forecaster_model` computing the mean of ``models``' outputs."""
    if len(models) == 1:
        return models[0]
    parts = [_parts(m) for m in models]
    skip = parts[0][2]
    weights = [
        [np.asarray(w) for w in lstm.get_weights() + head.get_weights()] for lstm, head, _ in parts
    ]
    k = len(weights)
    n_inputs, gates = weights[0][0].shape
    units = gates // 4
    n_out = weights[0][3].shape[1]
    wide = k * units
    kernel = np.zeros((n_inputs, 4 * wide), np.float32)
    recurrent = np.zeros((wide, 4 * wide), np.float32)
    bias = np.zeros(4 * wide, np.float32)
    head = np.zeros((wide + (n_inputs if skip else 0), n_out), np.float32)
    head_bias = np.zeros(n_out, np.float32)
    for m, (k_m, r_m, b_m, d_m, db_m) in enumerate(weights):
        rows = slice(m * units, (m + 1) * units)
        for g in range(4):
            cols = slice(g * wide + m * units, g * wide + (m + 1) * units)
            src = slice(g * units, (g + 1) * units)
            kernel[:, cols] = k_m[:, src]
            recurrent[rows, cols] = r_m[:, src]
            bias[cols] = b_m[src]
        head[rows] = d_m[:units] / k
        head[wide:] += d_m[units:] / k  # the skip's input weights (none without skip)
        head_bias += db_m / k
    merged = forecaster_model(n_inputs, wide, n_out, skip)
    lstm, dense, _ = _parts(merged)
    lstm.set_weights([kernel, recurrent, bias])
    dense.set_weights([head, head_bias])
    return merged
