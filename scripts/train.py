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
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow's start-up notes (oneDNN, absl) would bury the report; oneDNN is off for the same
# reason (float rounding differs by ~1e-7, far inside the export's parity tolerance).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# keras_fit and seed_ensemble, beside this file, also when it is loaded by path
sys.path.insert(0, str(Path(__file__).resolve().parent))

from keras_fit import train

from edge_lstm.errors import EdgeLstmError
from edge_lstm.model.features import CALENDAR_KINDS, InputSpec
from edge_lstm.model.metadata import Validation, sidecar_path
from edge_lstm.offline.csvdata import DataError
from edge_lstm.offline.heldout import Span
from edge_lstm.offline.trainset import (
    DAY_S,
    Grid,
    default_inputs,
    fit_scaler,
    load_series,
    origin_stride,
)


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


def choose_inputs(args: argparse.Namespace, n_steps: int, step_s: float) -> InputSpec:
    """The default inputs for this step and data length, each part overridable by its flag."""
    return default_inputs(
        step_s, n_steps, args.timezone, args.lags, args.calendar, args.level_window
    )


def grid_of(args: argparse.Namespace) -> Grid:
    return load_series(args.data, args.columns, args.time_column, args.step)


def parts_of(args: argparse.Namespace, grid: Grid) -> tuple[int, int, int]:
    """``(n_train, n_val_end, n_test)``: training is steps ``[0, n_train)``, validation
    ``[n_train, n_val_end)``, the held-out part the last ``n_test``."""
    n_steps = grid.values.shape[1]
    n_test = int(n_steps * args.test_fraction)
    n_val_end = n_steps - n_test
    return n_val_end - int(n_steps * args.val_fraction), n_val_end, n_test


def span_of(args: argparse.Namespace, grid: Grid, spec: InputSpec) -> Span:
    """Where the validation and held-out parts are scored, and how."""
    n_train, n_val_end, _ = parts_of(args, grid)
    day = round(DAY_S / grid.step_s)
    # Gaps up to the longest input are filled by the model (a longer one resets the sensor, which
    # then warms up again): the training data was interpolated over them too.
    return Span(
        horizon=args.horizon,
        season=day if day >= 2 else 1,
        max_gap=max(3, spec.history_len),
        t_val=float(grid.times_s[n_train]),
        t_test=float(grid.times_s[n_val_end]),
    )


def main(argv: list[str] | None = None) -> None:
    try:
        run(parse_args(argv), argv)
    except (DataError, EdgeLstmError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def run(args: argparse.Namespace, argv: list[str] | None) -> None:
    from edge_lstm.export import ExportOptions, export_model, require_keras
    from edge_lstm.offline.blend import choose_companion, lstm_alone, refit
    from edge_lstm.offline.heldout import Band, held_out, replay_validation
    from edge_lstm.offline.peers import make_peer, peer_available

    require_keras("scripts/train.py")  # before minutes of data work, one line naming the extra
    started = time.monotonic()
    grid = grid_of(args)
    n_steps = grid.values.shape[1]
    n_train, n_val_end, n_test = parts_of(args, grid)
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
    span = span_of(args, grid, spec)
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
