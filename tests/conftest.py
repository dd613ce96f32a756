"""Shared fixtures. Broker fixtures live in tests/mosquitto.py and are re-exported here.

With ``EDGE_LSTM_REQUIRE_ALL=1`` (set by ``.ci/run``) a test that would be skipped because
TensorFlow or mosquitto is missing fails instead, so CI can never pass on skipped tests.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .mosquitto import broker_pki, mosquitto, mosquitto_factory  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"


@pytest.fixture(scope="session")
def golden_model() -> Path:
    """The committed 2-layer, 2-feature golden model (regenerate: scripts/make_golden.py)."""
    return GOLDEN / "golden.tflite"


@pytest.fixture(scope="session")
def default_model() -> Path:
    """The shipped default model, trained by scripts/train.py."""
    return ROOT / "models" / "default.tflite"


def skip_or_fail(reason: str) -> None:
    """Skip, or fail under ``EDGE_LSTM_REQUIRE_ALL=1`` (CI): a skip there is a hidden failure."""
    if os.environ.get("EDGE_LSTM_REQUIRE_ALL") == "1":
        pytest.fail(f"EDGE_LSTM_REQUIRE_ALL=1 but this test cannot run: {reason}")
    pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = []
    if shutil.which("mosquitto") is None:
        missing.append(("broker", "mosquitto is not on the PATH"))
    try:
        import importlib.util

        has_tf = importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        has_tf = False
    if not has_tf:
        missing.append(("train", "TensorFlow is not installed (pip install -e '.[train]')"))
    if importlib.util.find_spec("statsforecast") is None:
        missing.append(("peer", "statsforecast is not installed (pip install -e '.[peer]')"))
    strict = os.environ.get("EDGE_LSTM_REQUIRE_ALL") == "1"
    for marker, why in missing:
        needed = [item for item in items if marker in item.keywords]
        if needed and strict:
            raise pytest.UsageError(
                f"EDGE_LSTM_REQUIRE_ALL=1 but {why} ({len(needed)} tests need it)"
            )
        for item in needed:
            item.add_marker(pytest.mark.skip(reason=why))
