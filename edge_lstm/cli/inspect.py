"""``edge-lstm inspect``: what a model is, how it was proved and how well it forecasts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import EdgeLstmError
from ..model.metadata import ModelMeta
from .common import BackendOption, fail


def inspect(
    model: Annotated[Path, typer.Argument(help="Exported .tflite model (its .json beside it).")],
    backend: BackendOption = None,
) -> None:
    """Print a model's metadata, ops, tensor shapes, size, parity error and validation table."""
    from ..model.runtime import StepModel

    try:
        step_model = StepModel.load(model, backend=backend)
        ops = step_model.ops()
    except EdgeLstmError as exc:
        fail(str(exc))
    for line in describe(step_model.meta, model.stat().st_size, ops, step_model.backend):
        typer.echo(line)


def describe(meta: ModelMeta, size_bytes: int, ops: list[str], backend: str) -> list[str]:
    """The report ``inspect`` prints, as lines (pure, for tests and other commands)."""
    lines = [
        f"model      {meta.name}  ({size_bytes / 1024:.1f} KiB, sha256 {meta.tflite_sha256[:16]}…)",
        f"backend    {backend}",
        "layers     "
        + " -> ".join(f"{layer.kind.upper()}({layer.units})" for layer in meta.layers),
        f"features   {', '.join(meta.features)}",
        f"step       {meta.step_s:g} s   horizon {meta.horizon}   warmup {meta.warmup}",
        _inputs_line(meta),
        _companion_line(meta),
        "scaler     mean "
        + ", ".join(f"{v:.6g}" for v in meta.scaler.mean)
        + "   scale "
        + ", ".join(f"{v:.6g}" for v in meta.scaler.scale),
        f"ops        {', '.join(ops)}",
        "tensors",
        f"  x        {meta.x_input}  [B, {meta.input_width}]",
        f"  y        {meta.y_output}  [B, {meta.n_features}]",
    ]
    for s in meta.state:
        lines.append(f"  {s.name:<8} {s.input} -> {s.output}  [B, {s.size}]")
    if meta.parity is None:
        lines.append("parity     not measured")
    else:
        p = meta.parity
        verdict = "ok" if p.max_abs_error <= p.tolerance else "FAILED"
        lines.append(
            f"parity     max abs error {p.max_abs_error:.2e} (tolerance {p.tolerance:.1e}, "
            f"quantize {p.quantize}, {p.sequences} sequences x {p.steps} steps) {verdict}"
        )
    lines += _validation_lines(meta)
    keys = ("source_model", "trained_with", "train_seconds", "held_out", "band_from", "command")
    for key in keys:
        if key in meta.info:
            lines.append(f"{key:<10} {meta.info[key]}")
    return lines


def _inputs_line(meta: ModelMeta) -> str:
    spec = meta.inputs
    if spec is None:
        return f"inputs     the observed value(s) only (format {meta.format_version})"
    return (
        f"inputs     value, lags {list(spec.lags)}, calendar {list(spec.calendar)} in "
        f"{spec.timezone}, level over {spec.level_window} steps (D = {meta.input_width})"
    )


def _companion_line(meta: ModelMeta) -> str:
    c = meta.companion
    if c is None:
        return "companion  none (the LSTM's forecast alone)"
    return (
        f"companion  {len(c.lags)} seasonal changes (lags {c.lags[0]}..{c.lags[-1]} steps), "
        f"LSTM share per step {', '.join(f'{v:g}' for v in c.share)}; "
        f"history {meta.history_len} steps a sensor"
    )


def _validation_lines(meta: ModelMeta) -> list[str]:
    v = meta.validation
    if v is None:
        return ["validation none (not trained by scripts/train.py)"]
    methods = list(v.mae)
    lines = [
        f"validation held-out MAE per horizon step ({v.rows} forecasts, season {v.season})",
        "  step " + "".join(f"{m:>16}" for m in methods),
    ]
    for k in range(v.horizon):
        lines.append(f"  {k + 1:>4} " + "".join(f"{v.mae[m][k]:>16.3f}" for m in methods))
    means = {m: sum(v.mae[m]) / len(v.mae[m]) for m in methods}
    lines.append("  mean " + "".join(f"{means[m]:>16.3f}" for m in methods))
    band = v.band(meta.n_features)
    if band is not None:
        lo, hi = band
        lines.append(
            f"  residual band q10..q90: step 1 {lo[0, 0]:+.3f}..{hi[0, 0]:+.3f}, "
            f"step {v.horizon} {lo[-1, 0]:+.3f}..{hi[-1, 0]:+.3f} ({meta.features[0]})"
        )
    coverage = meta.info.get("band_coverage_held_out")
    if isinstance(coverage, list) and coverage:
        lines.append(
            "  band coverage on held-out data per step: "
            + " ".join(f"{float(c):.0%}" for c in coverage)
        )
    return lines
