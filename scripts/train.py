"""Train an LSTM forecaster on a CSV of sensors, export it, and score it on the held-out tail.

Example (reproduces ``models/default.tflite``; see docs/training.md)::

    python scripts/train.py --data data/tmy_hourly_temperature.csv \
        --columns greensboro,sand_point,miami --feature-name temperature --step 1h \
        --out models/default

Each column is one series of the same single feature (one sensor each). The series are resampled
onto the ``--step`` grid (mean per step) and split in time: training, validation (early stopping
and the forecast band) and the held-out last quarter, never seen in training.

With no other flag the inputs follow the data (see docs/training.md): the value one day and one
week before the predicted step (the week only when the data holds three), the time of day and
weekday of the predicted step in ``--timezone``, and a per-sensor level (the mean of the last day).
Every input row comes from :func:`edge_lstm.model.features.training_inputs`, the code the device
runs.
The model is one LSTM layer and a Dense head, trained teacher-forced on many overlapping windows.

The exported ``.tflite`` is then replayed over the whole series through the device's
``Forecaster`` and scored on a rolling origin over the held-out part against naive, seasonal naive
and, when statsforecast is installed, MSTL (the same table as ``edge-lstm evaluate --peer mstl``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow's start-up notes (oneDNN, absl) would bury the report; oneDNN is off for the same
# reason (float rounding differs by ~1e-7, far inside the export's parity tolerance).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # seed_ensemble, when loaded by path

from seed_ensemble import forecaster_model, merge_seeds

from edge_lstm.errors import EdgeLstmError
from edge_lstm.export.options import parse_duration, parse_names
from edge_lstm.model.features import CALENDAR_KINDS, InputSpec, training_inputs
from edge_lstm.model.metadata import Scaler, Validation, sidecar_path
from edge_lstm.offline.csvdata import DataError, Series, load_csv

DAY_S = 86_400.0
#: Rolling-origin forecasts scored per series on the held-out part (MSTL refits at each one).
ORIGINS_PER_SERIES = 100
#: Training windows per epoch at most (see training_windows).
MAX_WINDOWS = 1500


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="CSV with a time column")
    p.add_argument("--time-column", default="time")
    p.add_argument("--columns", help="comma-separated series columns (default: all)")
    p.add_argument("--feature-name", default="value", help="name of the feature in the metadata")
    p.add_argument("--step", default="1h", help="model time step (resampled by mean)")
    p.add_argument("--timezone", default="UTC", help="IANA zone of the calendar inputs")
    p.add_argument("--lags", help="seasons in steps, e.g. 24,168 (default: a day and a week)")
    p.add_argument(
        "--calendar", help=f"calendar inputs, from {','.join(CALENDAR_KINDS)} ('none': none)"
    )
    p.add_argument("--level-window", type=int, help="per-sensor level steps (default: a day)")
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--epochs", type=int, default=150, help="at most, per seed")
    p.add_argument("--patience", type=int, default=10, help="early stopping patience (epochs)")
    p.add_argument(
        "--time-budget", type=float, default=360.0, help="seconds of training for all seeds"
    )
    p.add_argument("--window", type=int, help="steps per training window (default: 4 days)")
    p.add_argument("--horizon", type=int, default=12)
    p.add_argument("--warmup", type=int, default=24)
    p.add_argument("--test-fraction", type=float, default=0.25, help="held-out tail")
    p.add_argument("--val-fraction", type=float, default=0.15, help="early stopping and band")
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument(
        "--stride", type=int, help="steps between training windows (default: a sixth of a day)"
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--seeds", type=int, default=3, help="models averaged (one wider LSTM)")
    p.add_argument(
        "--skip",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="the head also sees the step's inputs (a linear skip past the LSTM); off by default: "
        "better held out on the four long shipped series, worse on the two short ones "
        "(docs/training.md)",
    )
    p.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after early stopping picks each seed's epochs on the validation part, train that "
        "seed again on training + validation for as many epochs (the band still comes from "
        "the first models, out of sample)",
    )
    p.add_argument(
        "--companion",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="blend a linear forecast from the last 7 or 14 days' changes with the LSTM's, "
        "where validation shows it helps (docs/training.md)",
    )
    p.add_argument("--no-peer", action="store_true", help="skip MSTL in the report")
    p.add_argument(
        "--out", type=Path, required=True, help="output stem: writes .keras/.tflite/.json"
    )
    p.add_argument("--verbose", type=int, default=1, help="0 quiet, 1 progress bar")
    return p.parse_args(argv)


@dataclass(frozen=True)
class Grid:
    """The series on the model's step grid: ``values`` ``(S, N, 1)``, ``times_s`` ``(N,)``."""

    raw: Series
    values: np.ndarray
    times_s: np.ndarray
    step_s: float


def load_series(args: argparse.Namespace) -> Grid:
    """Read and resample; short gaps interpolated (for training only, documented)."""
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
            raise DataError(f"{args.data}: column {name!r} has too few readings")
        series.append(np.interp(np.arange(len(grid)), have, mean[have]))
    return Grid(data, np.stack(series)[:, :, None], grid * step_s, step_s)


def choose_inputs(args: argparse.Namespace, n_steps: int, step_s: float) -> InputSpec:
    """The default inputs for this step and data length (flags override each part)."""
    day = round(DAY_S / step_s)
    week = 7 * day
    if args.lags is not None:
        lags = tuple(int(v) for v in parse_names(args.lags)) if args.lags.strip() else ()
    else:
        lags = tuple(s for s in (day, week) if s >= 2 and n_steps >= 3 * s)
    if args.calendar is not None:
        calendar = () if args.calendar == "none" else parse_names(args.calendar)
    else:
        calendar = tuple(
            kind
            for kind, period in (("time_of_day", day), ("day_of_week", week))
            if period >= 2 and n_steps >= 2 * period
        )
    level = args.level_window if args.level_window is not None else (day if day >= 2 else 0)
    return InputSpec(lags=lags, calendar=calendar, timezone=args.timezone, level_window=level)


def fit_scaler(grid: Grid, n_train: int, spec: InputSpec) -> Scaler:
    """Median and robust spread of ``v_{t+1} - level_t`` over the training part of every series.

    Robust (1.4826 x median absolute deviation, the standard deviation of normal data) because
    real sensors have faults: the water-flow series' maintenance drops to a quarter of its flow
    made the plain standard deviation ten times too wide (held-out MAE 1.70 vs 0.97 of seasonal
    naive, measured).
    """
    identity = Scaler.identity(1)
    targets = [
        training_inputs(series[:n_train], grid.times_s[:n_train], spec, identity)[1]
        for series in grid.values
    ]
    pooled = np.concatenate(targets)[:, 0]
    center = float(np.median(pooled))
    spread = 1.4826 * float(np.median(np.abs(pooled - center)))
    if not spread > 1e-9:
        spread = max(float(pooled.std()), 1e-6)
    return Scaler((center,), (spread,))


def windows(
    x: np.ndarray, y: np.ndarray, start: int, stop: int, width: int, stride: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Overlapping windows of rows ``start..stop`` (targets inside the part)."""
    xs, ys = [], []
    for s in range(start, max(start, stop - width) + 1, stride):
        if s + width <= stop:
            xs.append(x[s : s + width])
            ys.append(y[s : s + width])
    return xs, ys


class Progress:
    """One line on stderr redrawn each epoch: a bar, the losses and the elapsed time."""

    def __init__(self, epochs: int, enabled: bool, label: str = "") -> None:
        self.epochs, self.enabled, self.start = epochs, enabled, time.monotonic()
        self.label = label

    def update(self, epoch: int, loss: float, val: float | None, stopping: bool = False) -> None:
        if not self.enabled:
            return
        done = round(20 * epoch / self.epochs) if not stopping else 20
        bar = "#" * done + "." * (20 - done)
        val_text = "" if val is None else f"val {val:.4f} "
        sys.stderr.write(
            f"\rtraining {self.label}[{bar}] epoch {epoch}/{self.epochs} loss {loss:.4f} "
            f"{val_text}{time.monotonic() - self.start:4.0f}s"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


@dataclass(frozen=True)
class Windows:
    """Training and validation windows ``(n, width, D)`` inputs and ``(n, width, 1)`` targets;
    ``all_x``/``all_y``: the training part's stride over training and validation (the refit)."""

    x: np.ndarray
    y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    all_x: np.ndarray
    all_y: np.ndarray


def training_windows(
    args: argparse.Namespace, spec: InputSpec, grid: Grid, scaler: Scaler, split: tuple[int, int]
) -> Windows:
    """Overlapping windows of the training part; the validation part's for early stopping."""
    n_train, n_val_end = split
    day = max(2, round(DAY_S / grid.step_s))
    width = args.window or 4 * day
    # Windows overlap (a new one every hour of a day-long step grid), but no more than
    # MAX_WINDOWS per epoch: longer data gets a wider stride, so an epoch's cost stays bounded.
    rows = grid.values.shape[0] * n_train
    stride = args.stride or max(1, width // 24, math.ceil(rows / MAX_WINDOWS))
    tx, ty, vx, vy, ax, ay = [], [], [], [], [], []
    for series in grid.values:
        x, y, _ = training_inputs(series[:n_val_end], grid.times_s[:n_val_end], spec, scaler)
        # Row t predicts step t + 1: rows < n_train - 1 have training targets.
        a, b = windows(x, y, 0, n_train - 1, width, stride)
        c, d = windows(x, y, n_train - 1, n_val_end - 1, width, max(1, width // 2))
        e, f = windows(x, y, 0, n_val_end - 1, width, stride)
        tx += a
        ty += b
        vx += c
        vy += d
        ax += e
        ay += f
    if not tx or not vx:
        raise DataError(f"{args.data}: too short for training windows of {width} steps")
    return Windows(*(np.stack(part) for part in (tx, ty, vx, vy, ax, ay)))


def fit_one(
    args: argparse.Namespace,
    data: Windows,
    seed: int,
    label: str,
    deadline: float,
    refit_epochs: int = 0,
) -> tuple[Any, int]:
    """One ``LSTM(units)`` + ``Dense`` fitted from ``seed``; returns it and its best epoch.

    Selection (``refit_epochs`` 0): on the training windows, ending at early stopping on the
    validation windows, ``--epochs``, or ``deadline`` (``time.monotonic()``), with the best
    validation epoch's weights. Refit: the same seed afresh on training + validation windows
    for ``refit_epochs`` epochs (or until ``deadline``), the learning rate halved as the
    training loss stalls, as it was by the validation loss.
    """
    import keras

    keras.utils.set_random_seed(seed)
    model = forecaster_model(data.x.shape[2], args.units, 1, args.skip)
    # MAE, the figure the model is judged by: measured better than MSE on the shipped series
    # (electricity 0.64 vs 0.67 of seasonal naive, freeway occupancy 0.61 vs 0.77).
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate, clipnorm=1.0), loss="mae")
    refit = refit_epochs > 0
    epochs = refit_epochs if refit else args.epochs
    progress = Progress(epochs, args.verbose > 0, label + ("refit " if refit else ""))

    class Report(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            progress.update(epoch + 1, float(logs.get("loss", math.nan)), logs.get("val_loss"))
            if time.monotonic() > deadline:
                self.model.stop_training = True

    if refit:
        callbacks = [keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2)]
        fit_data: dict[str, Any] = {"x": data.all_x, "y": data.all_y}
    else:
        callbacks = [
            keras.callbacks.EarlyStopping(patience=args.patience, restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=2),
        ]
        fit_data = {"x": data.x, "y": data.y, "validation_data": (data.val_x, data.val_y)}
    history = model.fit(
        **fit_data,
        epochs=epochs,
        batch_size=64,
        shuffle=True,
        callbacks=[*callbacks, Report()],
        verbose=0,
    )
    progress.close()
    if refit:
        return model, len(history.history["loss"])
    return model, int(np.argmin(history.history["val_loss"])) + 1


@dataclass(frozen=True)
class Trained:
    """The merged seeds as selected on validation, the shipped model, and their epochs."""

    selected: Any
    model: Any
    """``selected`` itself without ``--refit``; else the seeds refitted on train + validation."""
    epochs: list[int]
    refit_epochs: list[int]


def train(
    args: argparse.Namespace, spec: InputSpec, grid: Grid, scaler: Scaler, split: tuple[int, int]
) -> Trained:
    """``--seeds`` models fitted from consecutive seeds, merged into one LSTM (their mean).

    Averaging seeds was measured on validation parts (inside the first 75%): on the half-hourly
    demand check series 3 seeds gave 0.196 of seasonal naive against 0.192..0.215 for each one.
    The refit (``--refit``) trains each seed again on the validation part too, for the epochs
    that validation chose: the newest 15% of the data, the closest to what comes next (held
    out, three seeds: 0.157 -> 0.124 of seasonal naive on the half-hourly demand check series,
    0.60 -> 0.55 on freeway occupancy; worse on the water flow; docs/training.md).
    """
    data = training_windows(args, spec, grid, scaler, split)
    # Seed i may train until (i + 1)/seeds of the budget: time a seed leaves is the next one's.
    # With the refit, selection may use the first half of a seed's share, the refit the rest.
    start = time.monotonic()
    share = args.time_budget / args.seeds
    selected, epochs, refitted, refit_epochs = [], [], [], []
    for i in range(args.seeds):
        label = f"seed {i + 1}/{args.seeds} "
        select_by = start + share * (i + (0.5 if args.refit else 1.0))
        model, best = fit_one(args, data, args.seed + i, label, select_by)
        selected.append(model)
        epochs.append(best)
        if args.refit:
            again, ran = fit_one(args, data, args.seed + i, label, start + share * (i + 1), best)
            refitted.append(again)
            refit_epochs.append(ran)
    chosen = merge_seeds(selected)
    return Trained(chosen, merge_seeds(refitted) if args.refit else chosen, epochs, refit_epochs)


def origin_stride(n_steps: int, day: int) -> int:
    """Every how many steps an origin is scored: about ``ORIGINS_PER_SERIES``, never a multiple
    of the day (each origin would fall at the same hour)."""
    stride = max(1, n_steps // ORIGINS_PER_SERIES)
    while day > 1 and stride > 1 and stride % day == 0:
        stride += 1
    return stride


def main(argv: list[str] | None = None) -> None:
    try:
        run(parse_args(argv), argv)
    except (DataError, EdgeLstmError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def run(args: argparse.Namespace, argv: list[str] | None) -> None:
    from edge_lstm.export import ExportOptions, export_model, require_keras
    from edge_lstm.offline.blend import choose_companion, lstm_alone, refit
    from edge_lstm.offline.heldout import Band, Span, held_out, replay_validation
    from edge_lstm.offline.peers import make_peer, peer_available

    require_keras("scripts/train.py")  # before minutes of data work, one line naming the extra
    started = time.monotonic()
    grid = load_series(args)
    n_steps = grid.values.shape[1]
    n_test = int(n_steps * args.test_fraction)
    n_val_end = n_steps - n_test
    n_train = n_val_end - int(n_steps * args.val_fraction)
    spec = choose_inputs(args, n_train, grid.step_s)
    if n_train < 3 * max(spec.history_len, 24) or n_test <= args.horizon:
        raise DataError(f"{args.data}: {n_steps} steps of {args.step} is too short to train on")
    scaler = fit_scaler(grid, n_train, spec)
    columns = list(grid.raw.columns)
    print(
        f"{len(columns)} series x {n_steps} steps of {grid.step_s:g}s: train {n_train}, "
        f"validation {n_val_end - n_train}, held out {n_test}; inputs: lags {list(spec.lags)}, "
        f"calendar {list(spec.calendar)} in {spec.timezone}, level over {spec.level_window} steps"
    )
    trained = train(args, spec, grid, scaler, (n_train, n_val_end))
    model, epochs = trained.model, trained.epochs
    refit_note = (
        f", refit on training + validation for {'+'.join(map(str, trained.refit_epochs))}"
        if args.refit
        else ""
    )
    seeds_note = f" = mean of {args.seeds} LSTM({args.units})" if args.seeds > 1 else ""
    train_s = time.monotonic() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    keras_path = args.out.with_suffix(".keras")
    model.save(keras_path)
    tflite = args.out.with_suffix(".tflite")
    command = "python scripts/train.py " + " ".join(argv if argv is not None else sys.argv[1:])
    options = ExportOptions(
        step_s=grid.step_s,
        horizon=args.horizon,
        warmup=args.warmup,
        feature_names=(args.feature_name,),
        scaler=scaler,
        name=args.out.name,
        inputs=spec,
        info={
            "source_model": keras_path.name,
            "trained_with": f"1x LSTM({args.units * args.seeds}){seeds_note}"
            f"{', head over [h, x] (input skip)' if args.skip else ''}, epochs "
            f"{'+'.join(map(str, epochs))} (best on validation){refit_note}, "
            f"data {args.data.name} "
            f"columns {','.join(columns)}",
            "command": command,
        },
    )
    result = export_model(model, tflite, options)

    day = round(DAY_S / grid.step_s)
    # Gaps up to the longest input are filled by the model (a longer one resets the sensor, which
    # then warms up again): the training data was interpolated over them too.
    span = Span(
        horizon=args.horizon,
        season=day if day >= 2 else 1,
        max_gap=max(3, spec.history_len),
        t_val=float(grid.times_s[n_train]),
        t_test=float(grid.times_s[n_val_end]),
    )
    # The band and the companion, from the models as selected: a refitted model has seen the
    # validation part.
    with tempfile.TemporaryDirectory() as tmp:
        scored = tflite
        if trained.selected is not model:
            scored = Path(tmp) / "selected.tflite"
            export_model(trained.selected, scored, replace(options, parity_sequences=1))
        val = replay_validation(scored, grid.raw, span)
        choice = (
            choose_companion(scored, grid.raw, span, [v[:n_train] for v in grid.values], day, val)
            if args.companion
            else lstm_alone(val)
        )
    companion = choice.companion
    if companion is not None and args.refit:  # the LSTM's newest data, the companion's too
        companion = refit(companion, [v[:n_val_end] for v in grid.values])
    try:
        band = Band.of(choice.residuals)
    except DataError as exc:
        raise DataError(f"{args.data}: {exc}") from None
    export_s = time.monotonic() - started - train_s
    band_q10, band_q90 = band.rows()
    # The band goes into the sidecar now, so that the held-out replay can publish it and
    # calibrate it online as the daemon does; the held-out scores join it below.
    replace(
        result.meta,
        validation=Validation(args.horizon, span.season, {}, band_q10, band_q90),
        companion=companion,
    ).save(sidecar_path(tflite))
    peer = None
    if args.no_peer:
        peer_note = "MSTL skipped (--no-peer)"
    elif peer_available():
        peer = make_peer("mstl", grid.step_s)
        peer_note = "MSTL: statsforecast, daily and weekly seasons, AutoETS trend"
    else:
        peer_note = "MSTL not run: statsforecast is not installed (pip install 'edge-lstm[peer]')"
    test = held_out(tflite, grid.raw, span, band, origin_stride(n_test, day), peer)
    report_s = time.monotonic() - started - train_s - export_s
    validation = Validation(
        horizon=args.horizon,
        season=span.season,
        mae={name: list(scores.mae) for name, scores in test.table.methods.items()},
        residual_q10=band_q10,
        residual_q90=band_q90,
        rows=int(test.table.points[0]),
    )
    info = {
        **dict(result.meta.info),
        "train_seconds": round(train_s, 1),
        "held_out": f"rolling origin every {test.every} steps over the last {n_test} steps",
        "band_from": f"{band.rollouts} rollouts on the validation part"
        + (" (models before the refit)" if args.refit else ""),
        "validation_lstm_vs_seasonal_naive": round(choice.lstm_ratio, 4),
        "companion": choice.note(),
        "band_coverage_held_out": [round(c, 3) for c in test.coverage],
        "band_coverage_origins": test.coverage_origins,
        "band_coverage_online_held_out": [round(c, 3) for c in test.online.coverage()],
    }
    replace(result.meta, validation=validation, info=info, companion=companion).save(
        sidecar_path(tflite)
    )
    from edge_lstm.cli.evaluate import format_band, format_table

    print(
        f"wrote {keras_path}, {tflite} ({result.size_bytes / 1024:.1f} KiB), {sidecar_path(tflite)}"
    )
    print(
        f"trained in {train_s:.0f} s ({'+'.join(map(str, epochs))} epochs best on validation"
        f"{refit_note}), exported in {export_s:.0f} s (parity max "
        f"abs error {result.parity.max_abs_error:.2e} over {result.parity.steps} steps with the "
        f"inputs), scored in {report_s:.0f} s"
    )
    print(f"validation part (models before any refit): {choice.note()}")
    print(
        f"\nheld-out rolling origin (every {test.every} steps from step {n_val_end}, gaps up to "
        f"{span.max_gap} steps filled); {peer_note}"
    )
    print(format_table(test.table))
    print(
        f"\n80% band coverage per horizon step on all {test.coverage_origins} held-out origins, "
        "as the metadata's quantiles give it: " + " ".join(f"{c:.0%}" for c in test.coverage)
    )
    print("\n".join(format_band(test.online)))
    beaten = test.beaten_by()
    if beaten:
        print(f"warning: the LSTM's mean MAE is above {', '.join(beaten)} on the held-out part")


if __name__ == "__main__":
    main()
