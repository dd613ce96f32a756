"""The systemd unit: required directives present, and ``systemd-analyze verify`` accepts it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "edge-lstm.service"
REQUIRED = [
    "Type=notify",
    "WatchdogSec=",
    "Restart=on-failure",
    "DynamicUser=yes",
    "StateDirectory=edge-lstm",
    "ProtectSystem=strict",
    "NoNewPrivileges=yes",
    "ExecReload=",
    "--state-dir ${STATE_DIRECTORY}",
]


def test_unit_has_the_directives_the_daemon_relies_on() -> None:
    text = UNIT.read_text()
    missing = [d for d in REQUIRED if d not in text]
    assert not missing


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this environment's edge-lstm.
    exe = Path(sys.executable).parent / "edge-lstm"
    if not exe.exists():
        pytest.skip("edge-lstm console script not installed next to the interpreter")
    unit = tmp_path / "edge-lstm.service"
    unit.write_text(UNIT.read_text().replace("/opt/edge-lstm/venv/bin/edge-lstm", str(exe)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in result.stderr.splitlines() if "edge-lstm.service" in line]
    assert result.returncode == 0 and not problems, result.stderr
