"""scripts/test.sh runs every phase even when one fails, and fails at the end if any did.

The real script runs under bash in a scratch tree whose tools (setup, ruff, mypy, the two
pythons) are stand-ins that log their call and fail on demand: the point is the script's
control flow, which decided before that a failing first pytest phase silently skipped the
tflite-runtime phase.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tree(tmp_path: Path, failing: set[str]) -> Path:
    (tmp_path / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "test.sh", tmp_path / "scripts" / "test.sh")
    (tmp_path / "scripts" / "setup.sh").write_text("exit 0\n")
    for venv, tool in [(".venv", "ruff"), (".venv", "mypy"), (".venv", "python"),
                       (".venv-tflite", "python")]:  # fmt: skip
        path = tmp_path / venv / "bin" / tool
        path.parent.mkdir(parents=True, exist_ok=True)
        name = f"{venv}/{tool}"
        code = 1 if name in failing else 0
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> "$CALLS"\nexit {code}\n')
        path.chmod(0o755)
    return tmp_path


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not found")
@pytest.mark.parametrize("failing", [set(), {".venv/python"}, {".venv/ruff", ".venv/python"}])
def test_every_phase_runs_and_any_failure_fails_the_script(
    tmp_path: Path, failing: set[str]
) -> None:
    tree = _tree(tmp_path / "tree", failing)
    calls = tmp_path / "calls.log"
    result = subprocess.run(
        ["bash", str(tree / "scripts" / "test.sh")],
        env={"PATH": "/usr/bin:/bin", "CALLS": str(calls)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    ran = calls.read_text().splitlines()
    assert any(line.startswith(".venv-tflite/python") for line in ran), ran
    assert sum(line.startswith(".venv/python") for line in ran) == 1
    assert (result.returncode != 0) == bool(failing), result.stderr
    if failing:
        assert "FAILED: " in result.stderr
