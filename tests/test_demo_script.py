"""``scripts/demo.sh``: set up once, then start at once; paths are the caller's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A copy of the scripts beside the real environment, set up as a first run leaves it."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "demo.sh", repo / "scripts" / "demo.sh")
    # setup.sh would build a whole venv: one that fails loudly shows whether it ran at all
    (repo / "scripts" / "setup.sh").write_text("echo 'setup ran' >&2; exit 1\n")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "edge-lstm").symlink_to(Path(sys.executable).parent / "edge-lstm")
    (repo / ".venv" / ".demo-setup-done").touch()
    return repo


def demo_sh(repo: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(repo / "scripts" / "demo.sh"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_set_up_clone_runs_without_setting_up_again(clone: Path) -> None:
    if not (Path(sys.executable).parent / "edge-lstm").exists():
        pytest.skip("edge-lstm is not installed in this environment")
    done = demo_sh(clone, clone, "--help")
    assert done.returncode == 0, done.stderr
    assert "setup ran" not in done.stderr
    assert "Usage: edge-lstm demo" in done.stdout


def test_a_changed_pyproject_sets_up_again(clone: Path) -> None:
    stamp = clone / ".venv" / ".demo-setup-done"
    os.utime(stamp, (1_000_000_000, 1_000_000_000))  # older than pyproject.toml
    done = demo_sh(clone, clone, "--help")
    assert "setup ran" in done.stderr and done.returncode == 1


def test_data_is_found_relative_to_the_callers_directory(clone: Path, tmp_path: Path) -> None:
    if not (Path(sys.executable).parent / "edge-lstm").exists():
        pytest.skip("edge-lstm is not installed in this environment")
    here = tmp_path / "elsewhere"
    here.mkdir()
    (here / "mine.csv").write_text("time,a\n2024-01-01T00:00:00Z,warm\n")
    done = demo_sh(clone, here, "--data", "mine.csv", "--duration", "1")
    assert done.returncode == 2
    # the caller's file was read (its bad cell is named), not <repo>/mine.csv
    assert done.stderr.strip() == "error: mine.csv: line 2, column 'a': 'warm' is not a number"
