"""Train an LSTM forecaster on a CSV of sensors, export it, and validate it on the held-out tail.

Example (reproduces ``models/default.tflite``; see docs/training.md)::

    python scripts/train.py --data data/tmy_hourly_temperature.csv \
        --columns greensboro,sand_point,miami --feature-name temperature --step 1h \
        --out models/default

Each column is one series of the same single feature (one sensor each). The series are resampled
onto the ``--step`` grid (mean per step), split in time into train / validation (early stopping)
/ test (the held-out tail, never seen in training), and the model is trained either on stateful
chunks (the seed threads' method: one long sequence per series, cut in consecutive chunks,
``shuffle=False``, states reset per epoch) or on shuffled stateless windows. The exported
``.tflite`` is then rolled out over the test tail exactly as the device runs it and compared with
the naive and seasonal-naive forecasts; the report goes into the metadata.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_lstm.csvdata import load_csv
from edge_lstm.export.options import parse_duration, parse_names
from edge_lstm.metadata import Scaler, sidecar_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="CSV with a time column")
    p.add_argument("--time-column", default="time")
    p.add_argument("--columns", help="comma-separated series columns (default: all)")
    p.add_argument("--feature-name", default="value", help="name of the feature in the metadata")
    p.add_argument("--step", default="1h", help="model time step (resampled by mean)")
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--patience", type=int, default=6, help="early stopping patience (epochs)")
    p.add_argument(
        "--mode",
        choices=("auto", "stateful", "stateless"),
        default="auto",
        help="auto trains both and keeps the one with the lower validation rollout MAE",
    )
    p.add_argument("--chunk", type=int, default=48, help="steps per stateful training chunk")
    p.add_argument("--window", type=int, default=96, help="steps per stateless training window")
    p.add_argument("--horizon", type=int, default=12)
    p.add_argument("--warmup", type=int, default=24)
    p.add_argument("--season", type=int, default=24, help="season length in steps")
    p.add_argument("--test-fraction", type=float, default=0.15, help="held-out tail")
    p.add_argument("--val-fraction", type=float, default=0.15, help="early-stopping part")
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--out", type=Path, required=True, help="output stem: writes .keras/.tflite/.json"
    )
    p.add_argument("--verbose", type=int, default=1, help="Keras progress: 0 none, 1 bar, 2 line")
    return p.parse_args(argv)


def load_series(args: argparse.Namespace) -> tuple[np.ndarray, list[str], float]:
    """``(S, N, 1)`` series on the step grid (short gaps interpolated), column names, step_s."""
    columns = list(parse_names(args.columns)) if args.columns else None
    data = load_csv(args.data, columns=columns, time_column=args.time_column)
    step_s = parse_duration(args.step)
    buckets = np.floor(data.times / step_s).astype(np.int64)
    grid = np.arange(buckets.min(), buckets.max() + 1)
    series = []
    for name in data.columns:
        values = data.column(name)
        sums = np.zeros(len(grid))
        counts = np.zeros(len(grid))
        ok = np.isfinite(values)
        np.add.at(sums, buckets[ok] - grid[0], values[ok])
        np.add.at(counts, buckets[ok] - grid[0], 1)
        mean = np.divide(sums, counts, out=np.full(len(grid), np.nan), where=counts > 0)
        have = np.flatnonzero(np.isfinite(mean))
        if len(have) < 10:
            raise SystemExit(f"{args.data}: column {name!r} has too few readings")
        mean = np.interp(np.arange(len(grid)), have, mean[have])  # training only, documented
        series.append(mean)
    return np.stack(series)[:, :, None], list(data.columns), step_s


def build(units: int, layers: int, batch: int | None, stateful: bool) -> Any:
    """The seed-style model: LSTM layers with return_sequences, a Dense head, one-step targets."""
    import keras

    model = keras.Sequential([keras.Input(batch_shape=(batch, None, 1))])
    for _ in range(layers):
        model.add(keras.layers.LSTM(units, stateful=stateful, return_sequences=True))
    model.add(keras.layers.Dense(1))
    return model


def training_batches(z: np.ndarray, mode: str, chunk: int, rng: Any) -> tuple[Any, Any]:
    """Inputs and one-step-ahead targets, shaped for the chosen training mode."""
    x, y = z[:, :-1], z[:, 1:]
    n_series, n_steps, _ = x.shape
    if mode == "stateful":
        # Chunk-major order, batch = one chunk of every series: the state of batch row i carries
        # series i from one chunk into the next (hence shuffle=False).
        n_chunks = n_steps // chunk
        cut = n_chunks * chunk
        xs = x[:, :cut].reshape(n_series, n_chunks, chunk, 1).transpose(1, 0, 2, 3)
        ys = y[:, :cut].reshape(n_series, n_chunks, chunk, 1).transpose(1, 0, 2, 3)
        return xs.reshape(-1, chunk, 1), ys.reshape(-1, chunk, 1)
    starts = [(s, t) for s in range(n_series) for t in range(0, n_steps - chunk, chunk // 4)]
    order = rng.permutation(len(starts))
    xs = np.stack([x[starts[i][0], starts[i][1] : starts[i][1] + chunk] for i in order])
    ys = np.stack([y[starts[i][0], starts[i][1] : starts[i][1] + chunk] for i in order])
    return xs, ys


def train(args: argparse.Namespace, mode: str, z: np.ndarray, n_train: int, n_val_end: int) -> Any:
    """Fit; early stopping on the one-step error of the validation part, state carried."""
    import keras

    keras.utils.set_random_seed(args.seed)
    n_series = z.shape[0]
    stateful = mode == "stateful"
    model = build(args.units, args.layers, n_series if stateful else None, stateful)
    # The twin sees whole series from their start, like the device: its validation error is what
    # early stopping watches, for both training modes alike.
    twin = build(args.units, args.layers, None, False)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate, clipnorm=1.0), loss="mse")
    xs, ys = training_batches(
        z[:, :n_train],
        mode,
        args.chunk if stateful else args.window,
        np.random.default_rng(args.seed),
    )

    class Monitor(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.best, self.best_weights, self.wait = np.inf, None, 0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            for layer in model.layers:
                if getattr(layer, "stateful", False):
                    layer.reset_states()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            twin.set_weights(model.get_weights())
            pred = np.asarray(twin.predict_on_batch(z[:, : n_val_end - 1]))
            val = float(np.mean((pred[:, n_train - 1 :] - z[:, n_train:n_val_end]) ** 2))
            print(f"  epoch {epoch + 1}: val one-step mse {val:.5f}", flush=True)
            if val < self.best - 1e-6:
                self.best, self.best_weights, self.wait = val, model.get_weights(), 0
            else:
                self.wait += 1
                if self.wait >= args.patience:
                    model.stop_training = True

    monitor = Monitor()
    model.fit(
        xs,
        ys,
        epochs=args.epochs,
        batch_size=n_series if stateful else 32,
        shuffle=not stateful,
        callbacks=[monitor],
        verbose=args.verbose,
    )
    twin.set_weights(
        monitor.best_weights if monitor.best_weights is not None else model.get_weights()
    )
    return twin


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from edge_lstm.export import ExportOptions, export_model
    from edge_lstm.export.validate import validation_report
    from edge_lstm.runtime import StepModel

    series, columns, step_s = load_series(args)
    n_steps = series.shape[1]
    n_test = int(n_steps * args.test_fraction)
    n_val_end = n_steps - n_test
    n_train = n_val_end - int(n_steps * args.val_fraction)
    if n_train < 4 * args.chunk or n_test <= args.horizon:
        raise SystemExit(f"{args.data}: {n_steps} steps is too short for this split and chunk")
    train_part = series[:, :n_train, 0]
    scaler = Scaler((float(train_part.mean()),), (float(train_part.std()),))
    z = scaler.transform(series)
    print(f"{len(columns)} series x {n_steps} steps of {step_s:g}s: train {n_train}, "
          f"validation {n_val_end - n_train}, test {n_test}")  # fmt: skip
    options = ExportOptions(
        step_s=step_s,
        horizon=args.horizon,
        warmup=args.warmup,
        feature_names=(args.feature_name,),
        scaler=scaler,
        name=args.out.name,
    )
    candidates = ("stateful", "stateless") if args.mode == "auto" else (args.mode,)
    scores: dict[str, float] = {}
    models: dict[str, Any] = {}
    for mode in candidates:
        print(f"training {mode}", flush=True)
        models[mode] = train(args, mode, z, n_train, n_val_end)
        # Model selection on multi-step rollouts over the validation part (the test tail stays
        # unseen), through the exported model as the device runs it.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "candidate.tflite"
            export_model(models[mode], path, options)
            report = validation_report(
                StepModel.load(path), series[:, :n_val_end], n_train - 1, args.horizon, args.season
            )
        scores[mode] = float(np.mean(report.mae["lstm"]))
        print(f"{mode}: validation rollout MAE {scores[mode]:.3f}", flush=True)
    mode = min(scores, key=lambda m: scores[m])
    model = models[mode]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    keras_path = args.out.with_suffix(".keras")
    model.save(keras_path)
    tflite = args.out.with_suffix(".tflite")
    command = "python scripts/train.py " + " ".join(argv if argv is not None else sys.argv[1:])
    options = replace(
        options,
        info={
            "source_model": keras_path.name,
            "trained_with": f"{mode}, {args.layers}x LSTM({args.units}), data {args.data.name} "
            f"columns {','.join(columns)}",
            "validation_rollout_mae": scores,
            "command": command,
        },
    )
    result = export_model(model, tflite, options)
    validation = validation_report(
        StepModel.load(tflite), series, n_val_end - 1, args.horizon, args.season
    )
    meta = replace(result.meta, validation=validation)
    meta.save(sidecar_path(tflite))
    means = {name: float(np.mean(v)) for name, v in validation.mae.items()}
    print(
        f"wrote {keras_path}, {tflite} ({result.size_bytes / 1024:.1f} KiB), {sidecar_path(tflite)}"
    )
    print(f"chose {mode} (validation rollout MAE {scores})")
    print(f"parity max abs error {result.parity.max_abs_error:.2e}")
    print("held-out MAE per step: " + "; ".join(
        f"{name} " + " ".join(f"{v:.2f}" for v in maes) for name, maes in validation.mae.items()
    ))  # fmt: skip
    print("held-out MAE mean over horizon: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))
    if not (means["lstm"] < means["naive"] and means["lstm"] < means["seasonal_naive"]):
        print("warning: the LSTM does not beat both baselines on the held-out tail", flush=True)


if __name__ == "__main__":
    main()
