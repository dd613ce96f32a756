"""``edge-lstm replay`` and the README's daemon quick start, against a real Mosquitto and daemon."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_lstm.cli.app import app
from edge_lstm.mqttkit.broker import Mosquitto
from edge_lstm.mqttkit.clients import Recorder, unique_prefix, wait_until
from edge_lstm.mqttkit.daemon import DaemonProcess
from edge_lstm.mqttkit.observer import Observer
from edge_lstm.offline.csvdata import load_csv
from edge_lstm.offline.replay import first_row_at, reading_payload

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "edge_lstm"]
pytestmark = pytest.mark.broker


def write_csv(path: Path) -> Path:
    path.write_text(
        "time,a,b\n"
        "2024-01-01T00:00:00Z,1.5,10\n"
        "2024-01-01T01:00:00Z,,11\n"  # a missing reading: not sent
        "2024-01-01T02:00:00Z,3.5,12\n"
    )
    return path


def test_payload_is_the_readme_reading_format() -> None:
    assert json.loads(reading_payload(21.5, 1_700_000_000.0)) == {
        "value": 21.5,
        "ts": "2023-11-14T22:13:20Z",
    }


def test_start_picks_the_first_row_at_or_after_it(tmp_path: Path) -> None:
    series = load_csv(write_csv(tmp_path / "d.csv"))
    assert first_row_at(series, None) == 0
    assert first_row_at(series, series.times[0] + 1) == 1
    with pytest.raises(ValueError, match="before --start"):
        first_row_at(series, series.times[-1] + 1)


def test_replay_publishes_each_column_as_a_sensor(mosquitto: Mosquitto, tmp_path: Path) -> None:
    prefix = unique_prefix("replay")
    seen = Recorder(mosquitto, [f"{prefix}/+/t"]).start()
    try:
        done = CliRunner().invoke(
            app,
            [
                "replay", "--broker", mosquitto.url, "--data", str(write_csv(tmp_path / "d.csv")),
                "--topic", f"{prefix}/{{sensor}}/t", "--speed", "50",
                "--start", "2024-01-01T01:00:00Z",
            ],
        )  # fmt: skip
        assert done.exit_code == 0, done.output
        assert "sent 3 readings (2 rows)" in done.output
        assert seen.wait_for(3, timeout_s=30), seen.snapshot()
    finally:
        seen.close()
    got = sorted((m.topic, m.payload.decode()) for m in seen.messages)
    assert got == [
        (f"{prefix}/a/t", '{"value": 3.5, "ts": "2024-01-01T02:00:00Z"}'),
        (f"{prefix}/b/t", '{"value": 11.0, "ts": "2024-01-01T01:00:00Z"}'),
        (f"{prefix}/b/t", '{"value": 12.0, "ts": "2024-01-01T02:00:00Z"}'),
    ]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--data", "nope.csv"], 2, "error: nope.csv: file not found"),
        (["--topic", "x/+/{sensor}"], 1, "a topic to publish on cannot contain '+'"),
        (["--topic", "x/y"], 1, "needs exactly one whole segment {sensor}"),
        (["--start", "yesterday"], 1, "--start 'yesterday': expected an ISO 8601 time"),
        (["--columns", "nope"], 2, "column 'nope' not found"),
    ],
)
def test_bad_input_is_one_line(args: list[str], code: int, message: str) -> None:
    done = CliRunner().invoke(app, ["replay", "--broker", "127.0.0.1:1", *args])
    assert done.exit_code == code, done.output
    assert message in done.output
    assert done.output.count("\n") == 1 and "Traceback" not in done.output


def test_unreachable_broker_is_one_line() -> None:
    done = CliRunner().invoke(app, ["replay", "--broker", "127.0.0.1:1"])
    assert done.exit_code == 1
    assert "error: cannot connect to MQTT broker 127.0.0.1:1" in done.output


def readme_daemon_commands() -> list[str]:
    """The shell lines of the README's "Running the daemon" block, comments stripped."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Running the daemon", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="mosquitto_sub not found")
def test_readme_daemon_section_shows_a_forecast(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """The README's commands as written, pointed at the test's broker instead of :1883."""
    commands = readme_daemon_commands()
    assert commands[0].startswith("sudo apt install mosquitto mosquitto-clients")
    assert commands[1] == "bash scripts/setup.sh"
    run, replay, sub, status, stop = commands[2:]
    assert stop == "kill %1"
    where = ["--broker", mosquitto.url]

    def edge_lstm(line: str) -> list[str]:
        words = shlex.split(line.rstrip("&"))
        assert words[0] == ".venv/bin/edge-lstm", line
        return [*CLI, *words[1:], *where]

    daemon = subprocess.Popen(
        edge_lstm(run), stderr=(tmp_path / "daemon.log").open("wb"), cwd=tmp_path
    )
    replayer = None
    try:
        # Same order as a person typing: the daemon first, then the replay right away. The daemon
        # may take a moment to subscribe; replay's QoS 1 readings before that are simply lost,
        # and the next rows make forecasts anyway.
        replayer = subprocess.Popen(edge_lstm(replay), stderr=subprocess.PIPE, cwd=tmp_path)
        sub_words = shlex.split(sub)
        assert sub_words[0] == "mosquitto_sub"
        got = subprocess.run(
            [*sub_words, "-h", mosquitto.host, "-p", str(mosquitto.port), "-W", "60"],
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert got.returncode == 0, (got.stderr, (tmp_path / "daemon.log").read_text())
        lines = got.stdout.splitlines()
        assert len(lines) == 3
        topic, doc = lines[0].split(" ", 1)
        assert re.fullmatch(r"edge-lstm/(greensboro|sand_point|miami)/forecast", topic)
        assert len(json.loads(doc)["forecast"]) == 12
        shown = subprocess.run(edge_lstm(status), capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert "online" in shown.stdout and "3 active" in shown.stdout
    finally:
        if replayer is not None:
            replayer.terminate()
            replayer.wait(timeout=30)
        daemon.terminate()
        assert daemon.wait(timeout=30) == 0


def test_replay_reaches_a_daemon_and_warm_forecasts_come_back(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    prefix = unique_prefix("rd")
    topic = f"{prefix}/in/{{sensor}}"
    observer = Observer(mosquitto, prefix)
    d = DaemonProcess(
        tmp_path, args=["--broker", mosquitto.url, "--topic", topic, "--output-prefix", prefix]
    ).start()
    try:
        observer.wait_online(d)
        done = subprocess.run(
            [
                *CLI,
                "replay",
                "--broker",
                mosquitto.url,
                "--topic",
                topic,
                "--duration",
                "4",
                "--speed",
                "60",
            ],  # 240 hours: past the default model's week of warm-up
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr

        def warm(sensor: str) -> bool:
            with observer.lock:
                docs = list(observer.forecasts.get(sensor, []))
            return any(doc["status"] == "ok" for doc in docs)

        assert wait_until(lambda: all(warm(s) for s in ("greensboro", "sand_point", "miami"))), (
            f"no warm forecasts for all three sensors\n{d.log()}"
        )
    finally:
        observer.close()
        assert d.terminate() == 0
