"""``edge-lstm demo`` end to end, as a user runs it: a real process, a real broker, real data."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_lstm.demo.scoreboard import Scoreboard, format_table
from edge_lstm.mqttkit.broker import Mosquitto

pytest.importorskip("amqtt")

SENSORS = ("greensboro", "sand_point", "miami")
CLI = [
    sys.executable,
    "-c",
    "import sys; from edge_lstm.cli.app import app; sys.argv[0]='edge-lstm'; app()",
]


def demo(*args: str, timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "demo", *args], capture_output=True, text=True, timeout=timeout_s)


def final_table(stdout: str) -> dict[str, str]:
    """The last table's line for each sensor."""
    rows: dict[str, str] = {}
    for line in stdout.splitlines():
        name = line.split(" ", 1)[0]
        if name in SENSORS:
            rows[name] = line
    return rows


def check_summary(stdout: str) -> None:
    rows = final_table(stdout)
    assert set(rows) == set(SENSORS), stdout
    for sensor, line in rows.items():
        assert "+1h" in line and "+12h" in line, f"{sensor} shows no forecast: {line}"
        assert " ok " in line, f"{sensor} never got warm: {line}"
    assert "forecasts received" in stdout
    assert "MAE over" in stdout and "LSTM" in stdout


def test_demo_runs_to_the_end_and_shows_forecasts_for_every_sensor(tmp_path: Path) -> None:
    plot = tmp_path / "demo.png"
    done = demo("--duration", "6", "--speed", "60", "--plot", str(plot))
    assert done.returncode == 0, done.stderr
    check_summary(done.stdout)
    assert "embedded amqtt" in done.stdout
    assert "Traceback" not in done.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 20_000


@pytest.mark.broker
def test_demo_against_a_real_mosquitto(mosquitto: Mosquitto) -> None:
    done = demo(
        "--duration", "4", "--speed", "60", "--broker", f"{mosquitto.host}:{mosquitto.port}"
    )
    assert done.returncode == 0, done.stderr
    check_summary(done.stdout)
    assert f"{mosquitto.host}:{mosquitto.port}" in done.stdout


def test_ctrl_c_ends_the_demo_cleanly() -> None:
    proc = subprocess.Popen(
        [*CLI, "demo", "--duration", "120", "--speed", "25"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The first table is printed after 5 s of replay: by then broker and daemon are up.
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    line = ""
    while "greensboro" not in line and time.monotonic() < deadline:
        line = proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "(interrupted)" in out
    assert "Traceback" not in err


def test_unreachable_broker_is_one_line_error() -> None:
    done = demo("--broker", "127.0.0.1:1", "--duration", "2", timeout_s=60)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: cannot connect to MQTT broker 127.0.0.1:1")
    assert "Traceback" not in done.stderr


def test_scoreboard_scores_only_warm_forecasts_against_later_values() -> None:
    board = Scoreboard(["s"])
    for hour, value in enumerate([10.0, 11.0, 12.0]):
        board.replayed("s", hour * 3600.0, value)

    def forecast(status: str, values: list[float]) -> bytes:
        steps = ",".join(
            f'{{"t":"1970-01-01T{3 + k:02d}:00:00Z","v":{v}}}' for k, v in enumerate(values)
        )
        return (
            f'{{"sensor":"s","last_obs_at":"1970-01-01T02:00:00Z","status":"{status}",'
            f'"forecast":[{steps}]}}'
        ).encode()

    board.on_message(0.0, "x", forecast("warming_up", [99.0, 99.0]))
    board.on_message(0.0, "x", forecast("ok", [13.5, 12.0]))
    board.update()
    view = board.views["s"]
    assert view.forecasts == 2 and view.scored == 0  # nothing replayed beyond 02:00 yet
    board.replayed("s", 3 * 3600.0, 13.0)
    board.replayed("s", 4 * 3600.0, 14.0)
    board.update()
    assert view.scored == 2
    lstm, naive = view.mae()
    assert lstm == pytest.approx((0.5 + 2.0) / 2)  # |13.5-13|, |12-14|
    assert naive == pytest.approx((1.0 + 2.0) / 2)  # last value 12: |12-13|, |12-14|
    table = format_table(board, 3600.0)
    assert "+1h 13.5" in table and "+2h 12.0" in table
