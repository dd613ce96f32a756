"""``edge-lstm replay``: publish a recorded CSV to a broker as timestamped sensor readings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ..errors import EdgeLstmError
from ..offline.replay import DEFAULT_TOPIC
from .common import BrokerOption, client_address, fail


def replay(
    broker: BrokerOption = "localhost:1883",
    data: Annotated[
        Path | None,
        typer.Option(
            help="CSV with a time column and one column per sensor (default: the shipped data)."
        ),
    ] = None,
    speed: Annotated[float, typer.Option(min=0.01, help="Rows (model steps) per second.")] = 10.0,
    topic: Annotated[
        str, typer.Option(metavar="TEMPLATE", help="Topic template; {sensor} is the column name.")
    ] = DEFAULT_TOPIC,
    start: Annotated[
        str | None,
        typer.Option(metavar="TIME", help="Begin at the first row at or after this time."),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            min=0.1, help="Stop after this many seconds (default: at the end of the data)."
        ),
    ] = None,
    columns: Annotated[
        str | None, typer.Option(help="Comma-separated columns to replay (default: all).")
    ] = None,
    time_column: Annotated[str, typer.Option(help="Name of the time column.")] = "time",
    qos: Annotated[int, typer.Option(min=0, max=1, help="QoS of the readings.")] = 1,
) -> None:
    """Publish each CSV column as a sensor: {"value": v, "ts": row time} on the topic template.

    With the shipped model (1 h step, a week of warm-up: its longest lag) the default speed gets
    the daemon's first forecast out in well under a second, and warm ("ok") ones after about
    17 seconds.
    """
    from ..demo.scoreboard import default_demo_data
    from ..mqttkit.clients import Publisher
    from ..offline.csvdata import DataError, load_csv
    from ..offline.replay import first_row_at, reading_payload, replay_rows
    from ..stream.documents import iso
    from ..stream.timestamps import parse_timestamp
    from ..stream.topics import TopicTemplate

    try:
        address = client_address(broker)
        template = TopicTemplate(topic)
        if template.subscription.count("+") > 1:
            fail(f"--topic {topic!r}: a topic to publish on cannot contain '+'")
        wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
        series = load_csv(data or default_demo_data(), wanted, time_column)
        try:
            start_ts = parse_timestamp(start) if start else None
        except ValueError:
            fail(f"--start {start!r}: expected an ISO 8601 time or epoch seconds")
        first = first_row_at(series, start_ts)
    except DataError as exc:
        fail(str(exc), code=2)
    except (EdgeLstmError, ValueError) as exc:
        fail(str(exc))
    sent = [0]

    def send(sensor: str, ts: float, value: float) -> None:
        publisher.publish(topics[sensor], reading_payload(value, ts), qos=qos)
        sent[0] += 1

    last_note = [time.monotonic()]

    def tick(rows: int) -> None:
        if time.monotonic() - last_note[0] >= 10.0:
            last_note[0] = time.monotonic()
            typer.echo(f"  {rows} rows, {sent[0]} readings", err=True)

    rows = 0
    interrupted = False
    try:
        publisher = Publisher(address)
    except EdgeLstmError as exc:
        fail(str(exc))
    topics = {s: template.topic_for(s) for s in series.columns}
    sensors = ", ".join(series.columns)
    typer.echo(
        f"replaying {series.source}: {len(series.columns)} sensor(s) ({sensors}), "
        f"{series.rows - first} rows from {iso(float(series.times[first]))}, "
        f"{speed:g} rows/s, to {address} {topic}",
        err=True,
    )
    try:
        rows = replay_rows(series, send, speed, duration, tick, first_row=first)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        unacked = publisher.close(flush_timeout_s=10.0)
    typer.echo(
        f"sent {sent[0]} readings ({rows} rows)"
        + (f", {unacked} not acknowledged by the broker" if unacked else "")
        + (" (interrupted)" if interrupted else ""),
        err=True,
    )
    if interrupted:
        raise typer.Exit(code=130)
    if unacked:
        raise typer.Exit(code=1)
