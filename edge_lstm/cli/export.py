"""``edge-lstm export``: a Keras LSTM model to a single-step TFLite model, parity proved."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import EdgeLstmError
from ..model.metadata import QUANTIZE_MODES, Scaler
from .common import fail


def export(
    model: Annotated[Path, typer.Argument(help="Keras 3 model file (.keras).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the .tflite.")],
    scaler: Annotated[
        str | None,
        typer.Option(help="Scaling the model was trained with: MEAN1,..:SCALE1,.. or a JSON file."),
    ] = None,
    step: Annotated[str, typer.Option(help="Model time step, e.g. 30min, 1h, 3600.")] = "1h",
    horizon: Annotated[int, typer.Option(min=1, help="Forecast steps to publish.")] = 12,
    warmup: Annotated[
        int, typer.Option(min=0, help="Steps a sensor needs before its forecast is trusted.")
    ] = 24,
    feature_names: Annotated[
        str | None,
        typer.Option(help="Comma-separated feature names (default value, or f0,f1,..)."),
    ] = None,
    quantize: Annotated[
        str, typer.Option(help=f"Weight quantization: {', '.join(QUANTIZE_MODES)}.")
    ] = "none",
    name: Annotated[str | None, typer.Option(help="Model name in the metadata.")] = None,
    lags: Annotated[
        str | None,
        typer.Option(help="Seasonal lag inputs in steps, e.g. 24,168 (docs/training.md)."),
    ] = None,
    calendar: Annotated[
        str | None,
        typer.Option(help="Calendar inputs: time_of_day,day_of_week,day_of_year (sin/cos)."),
    ] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone of the calendar inputs.")] = "UTC",
    level_window: Annotated[
        int, typer.Option(min=0, help="Per-sensor level: mean of the last N values (0: none).")
    ] = 0,
) -> None:
    """Export a Keras LSTM/GRU model to OUTPUT.tflite + OUTPUT.json and prove parity.

    A model whose input row holds more than the observed values (lags, calendar, level) declares
    them with --lags/--calendar/--timezone/--level-window; the parity proof then covers the whole
    rollout with those inputs.
    """
    from ..export.options import parse_duration, parse_names, parse_scaler
    from ..model.features import InputSpec

    try:
        step_s = parse_duration(step)
        parsed_scaler: Scaler | None = parse_scaler(scaler) if scaler else None
        names = parse_names(feature_names) if feature_names else None
        inputs = InputSpec(
            lags=tuple(int(v) for v in parse_names(lags)) if lags else (),
            calendar=parse_names(calendar) if calendar else (),
            timezone=timezone,
            level_window=level_window,
        )
    except ValueError as exc:
        fail(str(exc))
    from ..export import ExportOptions, export_model, load_keras, require_keras

    try:
        require_keras("edge-lstm export")
    except EdgeLstmError as exc:
        fail(str(exc))
    if quantize not in QUANTIZE_MODES:
        fail(f"--quantize must be one of {', '.join(QUANTIZE_MODES)}, not {quantize!r}")
    if output.suffix != ".tflite":
        fail(f"--output {output} must end in .tflite (the metadata goes beside it as .json)")
    try:
        result = export_model(
            load_keras(model),
            output,
            ExportOptions(
                step_s=step_s,
                horizon=horizon,
                warmup=warmup,
                feature_names=names,
                scaler=parsed_scaler,
                quantize=quantize,
                name=name,
                info={"source_model": model.name},
                inputs=inputs,
            ),
        )
    except EdgeLstmError as exc:
        fail(str(exc))
    meta = result.meta
    parity = result.parity
    typer.echo(
        f"wrote {output} ({result.size_bytes / 1024:.1f} KiB) and {output.with_suffix('.json')}: "
        f"{len(meta.layers)} recurrent layer(s) {[layer.units for layer in meta.layers]}, "
        f"features {list(meta.features)}, step {meta.step_s:g}s, quantize={quantize}"
    )
    typer.echo(
        f"parity: max abs error {parity.max_abs_error:.2e} <= tolerance {parity.tolerance:.1e} "
        f"over {parity.sequences} sequences x {parity.steps} steps"
    )
