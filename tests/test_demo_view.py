"""The demo's live Rich table: rendered from the scoreboard, and drawn when stdout is a terminal."""

from __future__ import annotations

import sys

import pytest
from rich.console import Console

from edge_lstm.demo.scoreboard import Scoreboard, format_table
from edge_lstm.demo.view import rich_table

from .terminal import run_in_terminal

pytest.importorskip("amqtt")


def board() -> Scoreboard:
    b = Scoreboard(["kitchen", "garage"])
    b.replayed("kitchen", 3600.0, 21.5)
    b.views["kitchen"].forecast = [(3600.0 * (k + 2), 20.0 + k) for k in range(12)]
    b.views["kitchen"].status = "ok"
    return b


def test_rich_table_shows_what_the_text_table_shows() -> None:
    console = Console(record=True, width=160)
    console.print(rich_table(board(), 3600.0))
    text = console.export_text()
    for line in format_table(board(), 3600.0).splitlines()[2:]:
        for cell in line.split("  "):
            assert cell.strip() in text, cell
    assert "+1h 20.0 +2h 21.0 +3h 22.0 +12h 31.0" in text
    assert "waiting" in text  # garage has no forecast yet


def test_demo_in_a_terminal_draws_the_live_table_then_the_summary() -> None:
    code, text = run_in_terminal(
        [sys.executable, "-m", "edge_lstm", "demo", "--duration", "3", "--speed", "80"]
    )
    assert code == 0, text
    assert "edge-lstm demo: forecasts as they arrive" in text  # the Rich table's title
    assert "┃" in text or "│" in text
    assert "MAE over" in text  # the closing summary, after the live table
    assert "XNNPACK" not in text
