"""``edge-lstm demo``: see the daemon forecast real recorded data in one command."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import EdgeLstmError
from .common import ModelOption, broker_or, client_address, fail


def demo(
    broker: Annotated[str | None, broker_or("an embedded broker")] = None,
    speed: Annotated[
        float, typer.Option(min=0.1, help="Replay speed in data rows (model steps) per second.")
    ] = 10.0,
    duration: Annotated[
        float,
        typer.Option(min=1.0, help="Stop after this many seconds (or at the end of the data)."),
    ] = 60.0,
    plot: Annotated[
        Path | None, typer.Option(help="Draw actual vs forecast for each sensor into a PNG.")
    ] = None,
    model: ModelOption = None,
    data: Annotated[
        Path | None,
        typer.Option(help="CSV to replay, one sensor per column (default: the shipped data)."),
    ] = None,
) -> None:
    """Run the daemon on an embedded broker and replay real data as sensors, with a live table."""
    from ..demo.runner import plot_demo, run_demo
    from ..demo.scoreboard import default_demo_data, summary
    from ..demo.view import LiveTable
    from ..model.paths import default_model_path
    from ..offline.csvdata import DataError

    if broker is not None:
        client_address(broker)  # a bad address fails here, before anything starts
    table = LiveTable() if sys.stdout.isatty() else None
    try:
        with table or contextlib.nullcontext():
            result = run_demo(
                model or default_model_path(),
                data or default_demo_data(),
                broker,
                speed,
                duration,
                show=lambda text: typer.echo(text),
                live=table.update if table is not None else None,
            )
    except DataError as exc:
        fail(str(exc), code=2)
    except (EdgeLstmError, ValueError, OSError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:  # Ctrl-C during start-up: run_demo already cleaned up
        typer.echo("interrupted", err=True)
        raise typer.Exit(code=130) from None
    typer.echo(summary(result))
    if plot is not None:
        try:
            plot_demo(result, plot)
        except EdgeLstmError as exc:
            fail(str(exc))
        typer.echo(f"plot written to {plot}")
    if result.interrupted:
        raise typer.Exit(code=130)
