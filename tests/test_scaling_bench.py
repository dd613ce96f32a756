"""``edge-lstm bench --only scaling --quick``: three real daemons, figures as ratios to plain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from edge_lstm.bench.scaling import format_scaling
from edge_lstm.cli.app import app

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_scaling_quick_json_and_text(default_model: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", "--quick", "--json", "--only", "scaling", "--model", str(default_model)]
    )
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)["scaling"]
    assert doc["broker"].startswith("started: mosquitto") and doc["readings"] == 50 * 4
    plain, state, skip = doc["plain_rate_per_s"], doc["broker_state"], doc["other_shard"]
    assert plain > 0 and state["rate_per_s"] > 0 and skip["rate_per_s"] > 0
    assert state["vs_plain"] == pytest.approx(state["rate_per_s"] / plain)
    assert skip["vs_plain"] == pytest.approx(skip["rate_per_s"] / plain)
    # Every sensor's state went out at least once; one state is a few KB for the default model.
    assert state["state_publishes"] >= 50 and 1_000 < state["bytes_per_sensor"] < 64_000
    assert skip["skipped"] == 200 and skip["shard"].endswith("/1000")
    text = "\n".join(format_scaling(doc))
    assert "broker_state (snapshot every 1 s)" in text and "other_shard skipping" in text
