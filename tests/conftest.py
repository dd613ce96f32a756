"""Shared fixtures (a real Mosquitto from ``edge_lstm.mqttkit``), markers, and the skip policy.

Skip policy: with ``EDGE_LSTM_REQUIRE_ALL=1`` (set by scripts/test.sh, i.e. in every CI phase)
a skip is a failure unless its reason matches an allowed pattern (``--allow-skip REGEX``,
repeatable). A phase that legitimately cannot run something (no systemd in a minbase userland,
no TensorFlow on the Pi) names it; anything else that skips fails the run, whether it skipped by
a marker, inside a test body, or at import (``pytest.importorskip``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from edge_lstm.mqttkit.broker import Mosquitto, mosquitto_binary
from edge_lstm.mqttkit.pki import MissingTool, Pki, make_pki

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


# -- a real broker ---------------------------------------------------------------------------


@contextlib.contextmanager
def _tool_or_skip() -> Iterator[None]:
    try:
        yield
    except MissingTool as exc:
        pytest.skip(str(exc))


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A plain anonymous broker on a free loopback port, killed after the test."""
    with _tool_or_skip():
        broker = Mosquitto(tmp_path / "mosquitto")
    with broker:
        yield broker


@pytest.fixture(scope="module")
def module_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker shared by a module's tests (each uses its own topic prefix)."""
    with _tool_or_skip():
        broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    with broker:
        yield broker


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Build brokers with options (``persistence``, ``users``, ``tls``...); all killed after."""
    brokers: list[Mosquitto] = []

    def make(**options: object) -> Mosquitto:
        with _tool_or_skip():
            broker = Mosquitto(tmp_path / f"mosquitto-{len(brokers)}", **options)  # type: ignore[arg-type]
        brokers.append(broker)
        return broker.start()

    try:
        yield make
    finally:
        for broker in brokers:
            broker.kill()


@pytest.fixture(scope="session")
def broker_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throw-away CA with server and client certs, generated once per test session."""
    try:
        return make_pki(tmp_path_factory.mktemp("pki"))
    except MissingTool as exc:
        pytest.skip(str(exc))


# -- what a missing extra or tool means -------------------------------------------------------


@pytest.hookimpl(trylast=True)  # after -m/-k deselected: count only the tests that will run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = []
    if mosquitto_binary() is None:
        missing.append(("broker", "mosquitto is not installed"))
    if importlib.util.find_spec("tensorflow") is None:
        missing.append(("train", "TensorFlow is not installed (pip install -e '.[train]')"))
    if importlib.util.find_spec("statsforecast") is None:
        missing.append(("peer", "statsforecast is not installed (pip install -e '.[peer]')"))
    for marker, why in missing:
        needed = [item for item in items if marker in item.keywords]
        if needed and _strict() and not _allowed(config, why):
            # One line up front instead of a failure per test.
            raise pytest.UsageError(
                f"EDGE_LSTM_REQUIRE_ALL=1 but {why} ({len(needed)} tests need it)"
            )
        for item in needed:
            item.add_marker(pytest.mark.skip(reason=why))


# -- the skip policy --------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--allow-skip",
        action="append",
        default=[],
        metavar="REGEX",
        help="under EDGE_LSTM_REQUIRE_ALL=1, a skip whose reason matches may pass (repeatable)",
    )


def _strict() -> bool:
    return os.environ.get("EDGE_LSTM_REQUIRE_ALL") == "1"


def _allowed(config: pytest.Config, reason: str) -> bool:
    patterns: list[str] = config.getoption("--allow-skip")
    return any(re.search(p, reason, re.IGNORECASE) for p in patterns)


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_unexpected_skip(
    config: pytest.Config, report: pytest.TestReport | pytest.CollectReport
) -> None:
    if not (_strict() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if _allowed(config, reason):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"unexpected skip under EDGE_LSTM_REQUIRE_ALL=1: {reason}\n"
        "(if this phase cannot run it, allow it by reason: pytest --allow-skip REGEX)"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    _fail_unexpected_skip(item.config, outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, None]:
    outcome = yield
    _fail_unexpected_skip(collector.config, outcome.get_result())
