"""Runs the demo: broker, in-process daemon, replay and live table; and its plot.

The IO half of ``edge-lstm demo`` (``edge_lstm.demo.scoreboard`` holds the pure scoring and table).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from ..offline.replay import reading_payload, replay_rows
from .scoreboard import DemoResult, Scoreboard, demo_client_id, format_table


def run_demo(
    model: Path,
    data: Path,
    broker: str | None,
    speed: float,
    duration_s: float,
    show: Callable[[str], None],
    live: Callable[[Scoreboard, float], None] | None = None,
) -> DemoResult:
    """Broker, daemon, replay and table; everything started here is stopped here.

    ``live`` redraws a table in place on every tick; without it ``show`` gets a plain-text
    table every 5 seconds (for logs and pipes).
    """
    import logging

    from ..daemon.config import Config
    from ..daemon.service import Daemon
    from ..errors import BrokerError
    from ..mqttkit.clients import Publisher, Recorder
    from ..offline.csvdata import load_csv
    from ..stream.address import parse_broker
    from .embedded_broker import EmbeddedBroker

    series = load_csv(data)
    embedded = EmbeddedBroker().start() if broker is None else None
    address = embedded.address if embedded is not None else str(broker)
    prefix = demo_client_id()
    daemon: Daemon | None = None
    clients: list[Recorder | Publisher] = []
    board = Scoreboard(list(series.columns))
    result = DemoResult(board, 0, 0.0, f"embedded amqtt at {address}" if embedded else address)
    logging.getLogger("edge_lstm").setLevel(logging.WARNING)
    try:
        endpoint = parse_broker(address)
        status = Recorder(endpoint, [f"{prefix}/status"]).start()
        clients.append(status)
        overrides: dict[str, object] = {}
        if embedded is not None:
            overrides["mqtt_version"] = "3.1.1"  # amqtt speaks MQTT 3.1.1 only
        config = Config.load(
            None,
            {},
            {
                **overrides,
                "broker": address,
                "model": model,
                "client_id": prefix,
                "topics": (f"{prefix}/sensors/{{sensor}}",),
                "output_prefix": prefix,
                "health_interval_s": 5.0,
                "log_level": "WARNING",
            },
        )
        daemon = Daemon(config)
        daemon.start()
        result.step_s = daemon.pipeline.meta.step_s
        deadline = time.monotonic() + 15
        while not any(m.payload == b"online" for m in status.snapshot()):
            if time.monotonic() > deadline:
                raise BrokerError(f"the daemon did not come online on {address}")
            time.sleep(0.05)
        forecasts = Recorder(
            endpoint,
            [f"{prefix}/+/forecast"],
            on_message=lambda m: board.on_message(m.at, m.topic, m.payload),
        )
        clients.append(forecasts.start())
        publisher = Publisher(endpoint)
        clients.append(publisher)
        last_print = [time.monotonic()]

        def tick(_rows: int) -> None:
            board.update()
            if live is not None:
                live(board, result.step_s)
            elif time.monotonic() - last_print[0] >= 5.0:
                show(format_table(board, result.step_s) + "\n")
                last_print[0] = time.monotonic()

        def send(sensor: str, ts: float, value: float) -> None:
            publisher.publish(f"{prefix}/sensors/{sensor}", reading_payload(value, ts), qos=1)
            board.replayed(sensor, ts, value)

        try:
            result.rows = replay_rows(series, send, speed, duration_s, tick)
        except KeyboardInterrupt:
            result.interrupted = True
        # The last row's step closes on the daemon's wall clock; give its forecasts a moment.
        settle = time.monotonic() + 3.0
        wanted = {s: v.last_t for s, v in board.views.items()}
        while time.monotonic() < settle:
            board.update()
            if all(
                v.forecast and v.forecast[0][0] > (wanted[s] or 0) for s, v in board.views.items()
            ):
                break
            time.sleep(0.1)
        board.update()
    finally:
        for client in reversed(clients):
            with contextlib.suppress(Exception):  # cleanup goes on: the broker must stop
                client.close()
        if daemon is not None:
            daemon.stop()
        if embedded is not None:
            embedded.stop()
    return result


def plot_demo(result: DemoResult, path: Path) -> Path:
    """Actual vs forecast for each sensor: one-step-ahead forecasts and the last full forecast."""
    from ..offline.plots import Panel, save_panels

    panels = []
    for sensor, view in result.board.views.items():
        times = sorted(view.actual)
        one = sorted(view.one_step.items())
        panel = Panel(sensor, times, [view.actual[t] for t in times])
        panel.lines["LSTM, 1 step ahead"] = ([t for t, _ in one], [v for _, v in one])
        if view.forecast:
            panel.lines["last forecast"] = (
                [t for t, _ in view.forecast],
                [v for _, v in view.forecast],
            )
        panels.append(panel)
    return save_panels(panels, path, f"edge-lstm demo: {result.rows} steps replayed")
