"""``edge-lstm run`` at the command line: flags, --validate-config, one-line errors, exit 1."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_lstm.cli import app
from edge_lstm.config import FIELDS

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
