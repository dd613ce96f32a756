"""``edge-lstm evaluate``: score a model on a CSV against naive and seasonal-naive forecasts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .cmd_common import json_safe
from .errors import EdgeLstmError

if TYPE_CHECKING:
    from .evaluate import Evaluation

#: Exit code for a CSV that cannot be used (missing column, bad time, too short).
EXIT_BAD_DATA = 2
#: Rows above which a progress bar is drawn (on stderr, so --json output stays clean).
PROGRESS_ROWS = 2_000


def evaluate(
    data: Annotated[Path, typer.Option("--data", help="CSV file with a time column.")],
    model: Annotated[
        Path | None, typer.Option(help="Model .tflite (default: the shipped default model).")
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(help="Comma-separated value columns, one sensor each (default: all)."),
    ] = None,
    time_column: Annotated[str, typer.Option(help="Name of the time column.")] = "time",
    horizon: Annotated[
        int | None, typer.Option(min=1, help="Steps ahead to score (default: the model's).")
    ] = None,
    season: Annotated[
        int | None,
        typer.Option(min=1, help="Seasonal-naive period in steps (default: one day of steps)."),
    ] = None,
    max_gap_steps: Annotated[
        int, typer.Option(min=0, help="Gaps up to this many steps are filled, longer ones reset.")
    ] = 3,
    plot: Annotated[
        Path | None, typer.Option(help="Write actual vs forecast and error per step to a PNG.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
    backend: Annotated[
        str | None, typer.Option(help="Interpreter: ai_edge_litert, tflite_runtime, tensorflow.")
    ] = None,
) -> None:
    """Replay a CSV through the daemon's path and report MAE, RMSE and MASE per horizon step."""
    from .csvdata import DataError, load_csv
    from .evaluate import evaluate as run_evaluation
    from .forecaster import Forecaster
    from .paths import default_model_path

    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    try:
        series = load_csv(data, wanted, time_column)
        forecaster = Forecaster.load(model or default_model_path(), backend=backend)
        if series.rows > PROGRESS_ROWS:
            with typer.progressbar(length=series.rows, label="replaying", file=sys.stderr) as bar:
                done = 0

                def advance(current: int, total: int) -> None:
                    nonlocal done
                    bar.update(current - done)
                    done = current

                result = run_evaluation(forecaster, series, horizon, season, max_gap_steps, advance)
        else:
            result = run_evaluation(forecaster, series, horizon, season, max_gap_steps)
    except DataError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=EXIT_BAD_DATA) from None
    except (EdgeLstmError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    if plot is not None:
        from .plots import plot_evaluation

        try:
            plot_evaluation(result, plot)
        except EdgeLstmError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from None
    if as_json:
        typer.echo(json.dumps(json_safe(result.to_dict()), indent=2))
    else:
        typer.echo(format_table(result))
        if plot is not None:
            typer.echo(f"plot written to {plot}")


def format_table(result: Evaluation) -> str:
    """The human report: averages, then MAE per horizon step."""
    names = {
        "lstm": "LSTM",
        "naive": "naive",
        "seasonal_naive": f"seasonal naive ({result.season})",
    }
    lines = [
        f"model {result.model['name']} ({result.model['sha256'][:12]}), "
        f"{len(result.sensors)} sensor(s), {result.steps_observed} steps of {result.step_s:g} s, "
        f"{result.points[0]} forecasts scored per horizon step",
        "",
        f"{'method':<22}{'MAE':>9}{'RMSE':>9}{'MASE':>9}",
    ]
    for key, scores in result.methods.items():
        lines.append(
            f"{names.get(key, key):<22}{scores.mae_mean:>9.3f}{scores.rmse_mean:>9.3f}"
            f"{scores.mase_mean:>9.3f}"
        )
    share = result.win_share
    lines += [
        "",
        f"LSTM error smaller than naive at {share['naive']:.0%} of points, than seasonal naive at "
        f"{share['seasonal_naive']:.0%}, than both at {share['both']:.0%}",
        "",
        "MAE per horizon step:",
        f"{'step':>6}" + "".join(f"{names.get(k, k)[:14]:>16}" for k in result.methods),
    ]
    for k in range(result.horizon):
        lines.append(f"{k + 1:>6}" + "".join(f"{s.mae[k]:>16.3f}" for s in result.methods.values()))
    return "\n".join(lines)
