"""Several seeds' LSTM forecasters as ONE wider LSTM whose output is exactly their mean.

Each model is one ``LSTM(U)`` layer and a ``Dense(F)`` head. Their LSTMs side by side are one
``LSTM(kU)`` whose kernels are block-diagonal per gate (Keras' gate order i, f, c, o: unit ``j``
of model ``m`` sits at ``m*U + j`` inside every gate), so each block runs its own model and never
sees the others; the head averages the blocks. The device then still runs one single-step
model with one state per sensor, and the export proves parity as for any model.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def merge_seeds(models: list[Any]) -> Any:
    """One ``Sequential([LSTM(kU), Dense(F)])`` computing the mean of ``models``' outputs."""
    import keras

    if len(models) == 1:
        return models[0]
    weights = [
        [np.asarray(w) for w in m.layers[0].get_weights() + m.layers[1].get_weights()]
        for m in models
    ]
    k = len(weights)
    n_inputs, gates = weights[0][0].shape
    units = gates // 4
    n_out = weights[0][3].shape[1]
    wide = k * units
    kernel = np.zeros((n_inputs, 4 * wide), np.float32)
    recurrent = np.zeros((wide, 4 * wide), np.float32)
    bias = np.zeros(4 * wide, np.float32)
    head = np.zeros((wide, n_out), np.float32)
    head_bias = np.zeros(n_out, np.float32)
    for m, (k_m, r_m, b_m, d_m, db_m) in enumerate(weights):
        rows = slice(m * units, (m + 1) * units)
        for g in range(4):
            cols = slice(g * wide + m * units, g * wide + (m + 1) * units)
            src = slice(g * units, (g + 1) * units)
            kernel[:, cols] = k_m[:, src]
            recurrent[rows, cols] = r_m[:, src]
            bias[cols] = b_m[src]
        head[rows] = d_m / k
        head_bias += db_m / k
    merged = keras.Sequential(
        [
            keras.Input(shape=(None, n_inputs)),
            keras.layers.LSTM(wide, return_sequences=True),
            keras.layers.Dense(n_out),
        ]
    )
    merged.layers[0].set_weights([kernel, recurrent, bias])
    merged.layers[1].set_weights([head, head_bias])
    return merged
