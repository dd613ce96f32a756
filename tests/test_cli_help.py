"""``--help`` of every command, through typer's runner: what a newcomer reads first."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from edge_lstm.cli.app import app

COMMANDS = sorted(str(c.name) for c in app.registered_commands)


def test_every_command_renders_help_the_same_way() -> None:
    from edge_lstm.cli.help import EdgeCommand

    assert "replay" in COMMANDS and "status" in COMMANDS
    assert all(c.cls is EdgeCommand for c in app.registered_commands)


def help_of(command: str) -> str:
    done = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "250"})
    assert done.exit_code == 0, done.output
    return done.output


def option_line(text: str, flag: str) -> str:
    """The help row of ``flag`` with its wrapped continuation lines, table borders removed."""
    rows = [line.strip("│ ").strip() for line in text.splitlines()]
    start = next(i for i, row in enumerate(rows) if re.match(rf"{re.escape(flag)}\b", row))
    joined = [rows[start]]
    for row in rows[start + 1 :]:
        if row.startswith("-") or not row or row.startswith("╰"):
            break
        joined.append(row)
    return " ".join(joined)


@pytest.mark.parametrize("command", COMMANDS)
def test_no_bool_labels_on_flags_and_no_braces_in_usage(command: str) -> None:
    text = help_of(command)
    assert "<bool>" not in text
    assert "<list[" not in text
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage, usage


def test_arguments_are_named_like_man_pages() -> None:
    assert "Usage: edge-lstm export [OPTIONS] MODEL" in help_of("export")
    assert "Usage: edge-lstm inspect [OPTIONS] MODEL" in help_of("inspect")


def test_run_help_names_every_environment_variable_and_default() -> None:
    from edge_lstm.daemon.config import FIELDS

    text = help_of("run")
    flat = " ".join(line.strip("│ ") for line in text.splitlines())
    for name in FIELDS:
        assert f"EDGE_LSTM_{name.upper()}" in flat.replace(" ", ""), name
    assert "default: localhost:1883" in option_line(text, "--broker")
    assert "default: sensors/{sensor}" in option_line(text, "--topic")
    assert "<template>" in option_line(text, "--topic")
    assert "default: --no-tls-insecure" in option_line(text, "--tls-insecure")
    assert "default: 30" in option_line(text, "--keepalive-s")


def test_run_flags_still_parse_after_the_help_changes(tmp_path: object) -> None:
    done = CliRunner().invoke(
        app,
        ["run", "--validate-config", "--topic", "a/{sensor}", "--topic", "b/{sensor}",
         "--tls-insecure", "--keepalive-s", "7"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert '"topics": [\n    "a/{sensor}",\n    "b/{sensor}"\n  ]' in done.output
    assert '"tls_insecure": true' in done.output and '"keepalive_s": 7' in done.output


def test_export_help_tells_the_true_feature_name_default() -> None:
    line = option_line(help_of("export"), "--feature-names")
    assert "default value, or f0,f1,.." in line


def test_version_is_in_the_readme_command_table() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("## What is in the box", 1)[1].split("\n\n", 2)[1]
    for command in COMMANDS:
        assert f"`edge-lstm {command}`" in table, command
