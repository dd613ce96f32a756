"""``edge-lstm bench`` at a terminal: a Rich progress bar over its sections, the report after it."""

from __future__ import annotations

import sys

from .terminal import run_in_terminal


def test_bench_shows_a_progress_bar_in_a_terminal() -> None:
    code, text = run_in_terminal(
        [sys.executable, "-m", "edge_lstm", "bench", "--quick", "--only", "engine", "--no-keras"]
    )
    assert code == 0, text
    assert "engine done" in text and "1/1" in text  # the bar, finished
    assert "engine, sensor-steps/s" in text  # then the report
    assert "XNNPACK" not in text
