"""Regenerate the golden single-step model and its expected outputs in ``tests/golden/``.

Usage: ``python scripts/make_golden.py [--out tests/golden]`` (needs the ``train`` extra).

Writes ``golden.tflite`` + ``golden.json`` (a seed-style stateful Keras model: LSTM(8,
return_sequences) -> LSTM(4) -> Dense(2), F = 2, fixed seed, exported by ``edge-lstm export``) and
``golden.csv``: 32 rows of random ``x`` and random state with the Keras single-step model's
outputs, columns ``x0..x{F-1}, s0..s{S-1}, y0..y{F-1}, ns0..ns{S-1}``. ``s`` is the flattened
state in ``meta.state`` order and ``ns`` the new state; all in model (scaled) units. Tests run the
``.tflite`` in the real interpreter and compare with the CSV.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SEED = 1234
ROWS = 32
FEATURES = ("temperature", "humidity")


def build_model() -> object:
    """The golden Keras model, built the way the seed threads build theirs."""
    import keras

    keras.utils.set_random_seed(SEED)
    model = keras.Sequential(
        [
            keras.Input(batch_shape=(1, None, len(FEATURES))),
            keras.layers.LSTM(8, stateful=True, return_sequences=True),
            keras.layers.LSTM(4, stateful=True),
            keras.layers.Dense(len(FEATURES)),
        ]
    )
    # Random, larger-than-init weights so that every gate and bias matters in the comparison.
    rng = np.random.default_rng(SEED)
    model.set_weights([rng.normal(scale=0.5, size=w.shape) for w in model.get_weights()])
    return model


def main() -> None:
    from edge_lstm.export import ExportOptions, export_model
    from edge_lstm.export.architecture import build_step_model, describe
    from edge_lstm.model.metadata import Scaler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/golden"))
    args = parser.parse_args()
    model = build_model()
    options = ExportOptions(
        step_s=60.0,
        horizon=6,
        warmup=3,
        feature_names=FEATURES,
        scaler=Scaler(mean=(20.0, 50.0), scale=(5.0, 10.0)),
        name="golden",
        info={"generated_by": "scripts/make_golden.py", "seed": SEED},
    )
    result = export_model(model, args.out / "golden.tflite", options)
    meta = result.meta
    step = build_step_model(describe(model))
    rng = np.random.default_rng(SEED + 1)
    x = rng.normal(size=(ROWS, meta.n_features)).astype(np.float32)
    state = rng.normal(scale=0.5, size=(ROWS, meta.state_size)).astype(np.float32)
    offsets = np.cumsum([0] + [s.size for s in meta.state])
    parts = [state[:, offsets[i] : offsets[i + 1]] for i in range(len(meta.state))]
    outputs = step([x, *parts], training=False)
    y = np.asarray(outputs[0], dtype=np.float32)
    new_state = np.concatenate([np.asarray(o, dtype=np.float32) for o in outputs[1:]], axis=1)
    f, s = meta.n_features, meta.state_size
    header = (
        [f"x{i}" for i in range(f)]
        + [f"s{i}" for i in range(s)]
        + [f"y{i}" for i in range(f)]
        + [f"ns{i}" for i in range(s)]
    )
    with (args.out / "golden.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in np.concatenate([x, state, y, new_state], axis=1):
            # repr of a float32 widened to float64 round-trips exactly.
            writer.writerow([repr(float(v)) for v in row])
    print(
        f"wrote {args.out}/golden.tflite ({result.size_bytes} bytes), golden.json, golden.csv "
        f"({ROWS} rows); parity max error {result.parity.max_abs_error:.2e}"
    )


if __name__ == "__main__":
    main()
