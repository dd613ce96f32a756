"""``edge-lstm run`` at the command line: flags, --validate-config, one-line errors, exit 1."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_lstm.cli.app import app
from edge_lstm.daemon.config import FIELDS

runner = CliRunner()


@pytest.fixture(autouse=True)
def _keep_root_logging() -> Iterator[None]:
    # `run` points the root logger at the runner's (soon closed) stderr; undo that.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_every_setting_is_a_flag() -> None:
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in FIELDS:
        flag = "--topic" if name == "topics" else "--" + name.replace("_", "-")
        assert flag in result.output, flag


def test_validate_config_merges_file_env_and_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('broker = "pi:1884"\nclient_id = "from-file"\n')
    result = runner.invoke(
        app,
        ["run", "--config", str(cfg), "--validate-config", "--topic", "a/{sensor}",
         "--topic", "b/{sensor}", "--retain-forecasts"],
        env={"EDGE_LSTM_CLIENT_ID": "from-env", "EDGE_LSTM_GRACE_S": "5"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["broker"] == "pi:1884" and doc["client_id"] == "from-env"
    assert doc["topics"] == ["a/{sensor}", "b/{sensor}"] and doc["retain_forecasts"] is True
    assert doc["grace_s"] == 5.0


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--broker", "host:abc"], {}, "port 'abc' is not a number"),
        (["--qos", "2"], {}, "qos must be 0 or 1"),
        (["--topic", "sensors/#"], {}, "topic template"),
        ([], {"EDGE_LSTM_BROKR": "x"}, "EDGE_LSTM_BROKR"),
        (["--model", "/nonexistent/model.tflite"], {}, "/nonexistent/model"),
        (["--username", "u", "--password-file", "/nonexistent/pw"], {}, "password_file"),
        (["--keepalive-s", "100000"], {}, "keepalive_s must be between 5 and 65,535"),
        (["--max-sensors", "1000000000"], {}, "max_sensors must be between 1 and 1,000,000"),
        (["--output-prefix", "$SYS/x"], {}, "topics starting with '$' belong to the broker"),
        (["--broker", "tcp://host:1883"], {}, "unknown scheme tcp://"),
    ],
)
def test_errors_are_one_line_and_exit_1(args: list[str], env: dict[str, str], needle: str) -> None:
    validate = [] if "--model" in args else ["--validate-config"]
    result = runner.invoke(app, ["run", *args, *validate], env=env)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.output


def test_unknown_key_in_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("brokr = 'x'\n")
    result = runner.invoke(app, ["run", "--config", str(cfg), "--validate-config"])
    assert result.exit_code == 1 and "unknown key 'brokr'" in result.stderr


@pytest.mark.parametrize(
    ("model", "needle"),
    [
        ("nope.tflite", "nope.tflite: model file not found"),
        ("models/default.json", "not a .tflite file"),
    ],
)
def test_validate_config_fails_on_a_model_that_cannot_load(
    tmp_path: Path, model: str, needle: str
) -> None:
    """Issue 12, item 4: the systemd pre-flight check passed a model file that did not exist."""
    path = Path(__file__).resolve().parents[1] / model if "/" in model else tmp_path / model
    result = runner.invoke(app, ["run", "--model", str(path), "--validate-config"])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr


def test_validate_config_loads_the_model(golden_model: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--model", str(golden_model), "--validate-config"])
    assert result.exit_code == 0, result.output
    truncated = tmp_path / "golden.tflite"
    truncated.write_bytes(golden_model.read_bytes()[:-10])
    (tmp_path / "golden.json").write_bytes(golden_model.with_suffix(".json").read_bytes())
    result = runner.invoke(app, ["run", "--model", str(truncated), "--validate-config"])
    assert result.exit_code == 1 and "sha256" in result.stderr, result.output


def test_topic_and_output_prefix_that_feed_back_are_refused() -> None:
    args = ["run", "--topic", "mf/{sensor}", "--output-prefix", "mf", "--validate-config"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "matches the daemon's own output" in result.stderr


def test_the_lean_daemon_is_only_started_by_edge_lstm_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edge_lstm.daemon"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "python -m edge_lstm.daemon is started by `edge-lstm run`"
    ]


def test_the_hand_over_keeps_every_flag(tmp_path: Path) -> None:
    """What ``edge-lstm run`` hands the lean daemon loads to the same config it checked."""
    from edge_lstm.daemon.__main__ import handover, taken_over
    from edge_lstm.daemon.config import Config

    cfg = tmp_path / "c.toml"
    cfg.write_text('broker = "pi:1884"\n')
    overrides = {"topics": ("a/{sensor}", "b/{sensor}"), "model": tmp_path / "m.tflite"}
    overrides |= {"retain_forecasts": True, "grace_s": None}
    path, again = taken_over(handover(cfg, overrides))
    env: dict[str, str] = {}
    assert path == cfg and Config.load(path, env, again) == Config.load(cfg, env, overrides)
