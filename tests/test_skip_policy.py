"""CI fails on a skip it did not expect: tests/conftest.py's policy, run on small test files in
a pytest of their own (the same conftest, copied next to them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.slow  # three pytest runs of their own

FILES = {
    # Three ways to skip: in the body, by a marker, at import.
    "test_in_body.py": "import pytest\n\ndef test_a():\n    pytest.skip('no widget here')\n",
    "test_marker.py": (
        "import pytest\n\n@pytest.mark.skipif(True, reason='no gadget here')\n"
        "def test_a():\n    pass\n"
    ),
    "test_import.py": "import pytest\n\npytest.importorskip('no_gizmo_here')\n",
    # Neither is a skip.
    "test_xfail.py": (
        "import pytest\n\n@pytest.mark.xfail(reason='known')\ndef test_a():\n    assert False\n"
    ),
    "test_ok.py": "def test_a():\n    pass\n",
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("skips")
    shutil.copy(HERE / "conftest.py", root / "conftest.py")
    for name, body in FILES.items():
        (root / name).write_text(body)
    return root


def run_pytest(tree: Path, strict: bool, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EDGE_LSTM_REQUIRE_ALL"}
    if strict:
        env["EDGE_LSTM_REQUIRE_ALL"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
         "--rootdir", str(tree), "-c", os.devnull, str(tree), *args],
        capture_output=True, text=True, timeout=120, cwd=tree, env=env, check=False,
    )  # fmt: skip


def test_every_unexpected_skip_fails_under_require_all(tree: Path) -> None:
    # (A skip at import becomes a collection error, which stops a run by default.)
    done = run_pytest(tree, True, "--continue-on-collection-errors")
    out = done.stdout
    assert done.returncode != 0, out
    assert out.count("unexpected skip under EDGE_LSTM_REQUIRE_ALL=1") >= 3, out
    for reason in ("no widget here", "no gadget here", "no_gizmo_here"):  # each named
        assert reason in out, out
    assert "1 passed" in out and "1 xfailed" in out, out


def test_a_skip_whose_reason_is_allowed_passes(tree: Path) -> None:
    # Patterns are searched case-insensitively ("tensorflow" allows "TensorFlow is not...").
    done = run_pytest(tree, True, "--allow-skip", "WIDGET|gadget", "--allow-skip", "gizmo")
    assert done.returncode == 0, done.stdout
    assert "1 passed, 3 skipped, 1 xfailed" in done.stdout, done.stdout


def test_without_require_all_a_skip_is_a_skip(tree: Path) -> None:
    done = run_pytest(tree, strict=False)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 3 skipped, 1 xfailed" in done.stdout, done.stdout
