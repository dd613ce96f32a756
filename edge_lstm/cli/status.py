"""``edge-lstm status``: is the daemon up, and how is it doing? Read from its retained topics."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import EdgeLstmError
from .common import BrokerOption, client_address, fail

if TYPE_CHECKING:
    from ..daemon.status import DaemonStatus


def status(
    broker: BrokerOption = "localhost:1883",
    prefix: Annotated[
        str, typer.Option(help="The daemon's output_prefix (its status and health topics).")
    ] = "edge-lstm",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print status and the health document as JSON.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for the retained messages.")
    ] = 3.0,
) -> None:
    """Show the daemon's retained status and health: up, sensors, rejections, drops, accuracy."""
    from ..daemon.status import DaemonStatus
    from ..mqttkit.clients import Recorder

    topics = (f"{prefix}/status", f"{prefix}/health")
    try:
        address = client_address(broker)
        recorder = Recorder(address, topics).start(timeout_s=timeout)
    except EdgeLstmError as exc:
        fail(str(exc))
    try:
        # Retained messages come right after the subscription is confirmed; both, or the wait ends.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if {m.topic for m in recorder.snapshot()} >= set(topics):
                break
            time.sleep(0.02)
    finally:
        recorder.close()
    latest = {m.topic: m.payload for m in recorder.snapshot()}
    if not latest:
        fail(
            f"no edge-lstm daemon has published on {address} under {prefix}/ "
            f"(no retained {topics[0]} within {timeout:g} s; is --prefix its output_prefix?)"
        )
    st = DaemonStatus.from_payloads(latest.get(topics[0]), latest.get(topics[1]))
    if as_json:
        typer.echo(json.dumps(st.as_json(str(address), prefix), indent=2))
    else:
        _print_tables(st, str(address), prefix)
    if not st.up:
        raise typer.Exit(code=3)  # scripts can tell "down" from "could not ask"


def _print_tables(st: DaemonStatus, where: str, prefix: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..daemon.status import accuracy_rows, band_column, summary_rows

    console = Console(highlight=False)
    table = Table(
        title=f"edge-lstm on {where} ({prefix}/)", show_header=False, title_justify="left"
    )
    table.add_column(style="bold")
    table.add_column()
    for what, value in summary_rows(st):
        style = "green" if what == "daemon" and st.up else "red" if what == "daemon" else None
        table.add_row(what, value, style=style)
    console.print(table)
    accuracy = accuracy_rows(st)
    if accuracy:
        acc = Table(title="running accuracy", title_justify="left")
        acc.add_column("lead")
        acc.add_column("MAE", justify="right")
        acc.add_column("scored", justify="right")
        acc.add_column("MAE / seasonal naive", justify="right")
        acc.add_column(band_column(st), justify="right")
        for row in accuracy:
            acc.add_row(*row)
        console.print(acc)
