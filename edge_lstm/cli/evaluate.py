"""``edge-lstm evaluate``: score a model on a CSV against naive and seasonal-naive forecasts."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import EdgeLstmError
from .common import BackendOption, ModelOption, fail, json_safe

if TYPE_CHECKING:
    from ..offline.evaluate import Evaluation, OnlineBand

#: Exit code for a CSV that cannot be used (missing column, bad time, too short).
EXIT_BAD_DATA = 2
#: Rows above which a progress bar is drawn (on stderr, so --json output stays clean).
PROGRESS_ROWS = 2_000


def evaluate(
    data: Annotated[Path, typer.Option("--data", help="CSV file with a time column.")],
    model: ModelOption = None,
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
    backend: BackendOption = None,
    peer: Annotated[
        str | None,
        typer.Option(
            help="Add a statistical peer on the same origins: mstl (daily and weekly seasons, "
            "AutoETS trend; needs the peer extra). Refitted at each origin: use --every."
        ),
    ] = None,
    held_out: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Score only forecasts issued in this last share of the CSV's time span "
            "(0.25: the part scripts/train.py holds out); the state still runs from the start.",
        ),
    ] = 1.0,
    every: Annotated[
        int | None,
        typer.Option(
            min=1, help="Score an origin every N steps (default: 1; about 100 origins with --peer)."
        ),
    ] = None,
    band: Annotated[
        bool,
        typer.Option(
            "--band",
            help="Publish the 80% band at every step with its online calibration, as the daemon "
            "does, and report its coverage per step (overall and per sensor).",
        ),
    ] = False,
) -> None:
    """Replay a CSV through the daemon's path and report MAE, RMSE and MASE per horizon step."""
    from ..model.forecaster import Forecaster
    from ..model.paths import default_model_path
    from ..offline.csvdata import DataError, load_csv
    from ..offline.evaluate import evaluate as run_evaluation
    from ..offline.peers import make_peer

    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    try:
        series = load_csv(data, wanted, time_column)
        forecaster = Forecaster.load(model or default_model_path(), backend=backend)
        step_s = forecaster.meta.step_s
        peer_model = make_peer(peer, step_s) if peer else None
        span = float(series.times[-1] - series.times[0])
        score_from = None if held_out >= 1.0 else float(series.times[-1]) - held_out * span
        if every is None:
            every = _default_every(span * held_out / step_s, step_s) if peer else 1
        replay = functools.partial(
            run_evaluation, score_from_s=score_from, every=every, peer=peer_model, online_band=band
        )
        if series.rows > PROGRESS_ROWS:
            with typer.progressbar(length=series.rows, label="replaying", file=sys.stderr) as bar:
                done = 0

                def advance(current: int, total: int) -> None:
                    nonlocal done
                    bar.update(current - done)
                    done = current

                result = replay(forecaster, series, horizon, season, max_gap_steps, advance)
        else:
            result = replay(forecaster, series, horizon, season, max_gap_steps)
    except DataError as exc:
        fail(str(exc), code=EXIT_BAD_DATA)
    except (EdgeLstmError, ValueError) as exc:
        fail(str(exc))
    if plot is not None:
        from ..offline.plots import plot_evaluation

        try:
            plot_evaluation(result, plot)
        except EdgeLstmError as exc:
            fail(str(exc))
    if as_json:
        typer.echo(json.dumps(json_safe(result.to_dict()), indent=2))
    else:
        typer.echo(format_table(result))
        if plot is not None:
            typer.echo(f"plot written to {plot}")


def _default_every(steps: float, step_s: float) -> int:
    """About 100 origins per sensor, never a whole number of days apart."""
    day = round(86_400 / step_s)
    stride = max(1, int(steps) // 100)
    while day > 1 and stride > 1 and stride % day == 0:
        stride += 1
    return stride


def format_table(result: Evaluation) -> str:
    """The human report: averages (and the ratio to seasonal naive), then MAE per step."""
    names = {
        "lstm": "LSTM",
        "naive": "naive",
        "seasonal_naive": f"seasonal naive ({result.season})",
        "mstl": "MSTL",
    }
    reference = result.methods["seasonal_naive"].mae_mean
    lines = [
        f"model {result.model['name']} ({result.model['sha256'][:12]}), "
        f"{len(result.sensors)} sensor(s), {result.steps_observed} sensor-steps of "
        f"{result.step_s:g} s, "
        f"{result.points[0]} forecasts scored per horizon step",
        "",
        f"{'method':<22}{'MAE':>9}{'RMSE':>9}{'MASE':>9}{'/ s.naive':>11}",
    ]
    for key, scores in result.methods.items():
        ratio = scores.mae_mean / reference if reference > 0 else float("nan")
        lines.append(
            f"{names.get(key, key):<22}{scores.mae_mean:>9.3f}{scores.rmse_mean:>9.3f}"
            f"{scores.mase_mean:>9.3f}{ratio:>11.3f}"
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
    if result.online_band is not None:
        lines += ["", *format_band(result.online_band)]
    return "\n".join(lines)


def format_band(band: OnlineBand) -> list[str]:
    """The online-calibrated band's coverage per step, overall and its range over sensors."""
    import numpy as np

    per_sensor = np.array([band.coverage(s) for s in band.scored])
    low, high = np.nanmin(per_sensor, axis=0), np.nanmax(per_sensor, axis=0)
    return [
        "80% band recalibrated online (coverage per horizon step):",
        "  all sensors  " + " ".join(f"{c:.0%}" for c in band.coverage()),
        "  lowest       " + " ".join(f"{c:.0%}" for c in low),
        "  highest      " + " ".join(f"{c:.0%}" for c in high),
    ]
