"""The TFLite runtime's XNNPACK notice stays off stderr; everything else written there is kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CODE = """
import os, sys
from edge_lstm import Forecaster
from edge_lstm.model.native_log import without_xnnpack_notice
fc = Forecaster.load(sys.argv[1])
fc.observe("s", 21.5, at=1_700_000_000.0)
print(fc.forecast("s", 3).shape)
with without_xnnpack_notice():
    os.write(2, b"a real error from C\\n")
    print("and Python's stderr", file=sys.stderr, flush=True)
"""


def test_forecasting_prints_no_xnnpack_notice_but_keeps_other_stderr(default_model: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CODE, str(default_model)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(3, 1)"
    assert "XNNPACK" not in done.stderr
    assert done.stderr == "a real error from C\nand Python's stderr\n"


def test_cli_commands_print_no_xnnpack_notice() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edge_lstm", "inspect", "models/default.tflite"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr
    assert "XNNPACK delegate" not in done.stderr
