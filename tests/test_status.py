"""``edge-lstm status``: pure rows, then against a real Mosquitto with a real daemon."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from edge_lstm.cli.app import app
from edge_lstm.daemon.status import (
    DaemonStatus,
    accuracy_rows,
    band_column,
    step_label,
    summary_rows,
)
from edge_lstm.model.metadata import ModelMeta
from edge_lstm.mqttkit.broker import Mosquitto
from edge_lstm.mqttkit.clients import Publisher, unique_prefix, wait_until
from edge_lstm.mqttkit.daemon import DaemonProcess
from edge_lstm.mqttkit.observer import Observer
from edge_lstm.stream.documents import iso
from edge_lstm.stream.timestamps import parse_timestamp as parse_time

T0 = 472_222 * 3600.0  # an hour boundary in 2023
HEALTH = {
    "version": "0.1.0",
    "uptime_s": 3725.0,
    "connected": True,
    "broker": "pi:1883",
    "model": {"name": "default", "step_s": 3600.0, "horizon": 2, "backend": "ai_edge_litert"},
    "sensors_active": 4,
    "sensors_warm": 3,
    "readings_accepted": 1200,
    "readings_rejected": {"bad_json": 2, "not_finite": 1},
    "readings_rejected_total": 3,
    "forecasts_published": 1100,
    "queue_depth": 0,
    "queue_size": 10000,
    "queue_dropped": 5,
    "publish_dropped": 0,
    "reconnects": 1,
    "receive_to_publish_ms": {"p50": 2.25, "p99": 9.5},
    "step_latency_ms": {"p50": 0.5, "p99": 1.5},
    "accuracy": {
        "mae_by_step": [0.5, None],
        "scored_by_step": [10, 0],
        "seasonal_naive": {"season": 24, "skill_by_step": [0.6412, None]},
    },
    "band": {"nominal": 0.8, "coverage_by_step": [0.8125, None], "scored_by_step": [16, 0]},
    "state": {"dir": "/var/lib/edge-lstm", "durability": "snapshot", "error": None},
}


def test_rows_answer_what_an_operator_asks_first() -> None:
    st = DaemonStatus.from_payloads(b"online", json.dumps(HEALTH).encode())
    rows = dict(summary_rows(st))
    assert rows["daemon"] == "online"
    assert rows["version"] == "0.1.0, up 1h 02m 05s"
    assert rows["sensors"] == "4 active, 3 warm"
    assert rows["readings"] == "1,200 accepted, 3 rejected (bad_json 2, not_finite 1)"
    assert rows["drops"].startswith("5 readings (queue full), 0 forecasts")
    assert rows["lag"] == "reading to forecast p50 2.2 ms, p99 9.5 ms"
    assert rows["model"] == "default, step 1h, horizon 2, ai_edge_litert"
    assert rows["broker"] == "pi:1883, connected, 1 reconnects"
    assert accuracy_rows(st) == [
        ("+1h", "0.500", "10", "0.64x", "81.2% of 16"),
        ("+2h", "-", "0", "-", "-"),
    ]
    assert band_column(st) == "80% band held"


def test_band_coverage_rows_without_a_band_or_longer_than_the_mae() -> None:
    old = {k: v for k, v in HEALTH.items() if k != "band"}  # a daemon from before bands
    st = DaemonStatus.from_payloads(b"online", json.dumps(old).encode())
    assert accuracy_rows(st) == [("+1h", "0.500", "10", "0.64x", "-"), ("+2h", "-", "0", "-", "-")]
    assert band_column(st) == "band held"
    no_band = DaemonStatus.from_payloads(b"online", json.dumps({**HEALTH, "band": None}).encode())
    assert [row[4] for row in accuracy_rows(no_band)] == ["-", "-"]
    before = {**HEALTH, "accuracy": {"mae_by_step": [0.5], "scored_by_step": [10]}}
    st = DaemonStatus.from_payloads(b"online", json.dumps(before).encode())
    assert accuracy_rows(st)[0][3] == "-"  # a daemon from before the seasonal naive reference
    longer = {**HEALTH, "band": {"coverage_by_step": [1.0, 0.5, 0.75], "scored_by_step": [4, 4, 4]}}
    rows = accuracy_rows(DaemonStatus.from_payloads(b"online", json.dumps(longer).encode()))
    assert rows[2] == ("+3h", "-", "-", "-", "75.0% of 4")


def test_missing_or_broken_health_and_an_offline_daemon() -> None:
    st = DaemonStatus.from_payloads(b"offline", b"{not json")
    assert not st.up and st.health is None
    assert summary_rows(st)[0][1].startswith("offline")
    assert summary_rows(st)[1] == ("health", "none published yet")
    assert accuracy_rows(st) == []
    unknown = DaemonStatus.from_payloads(None, json.dumps({"uptime_s": 5}).encode())
    assert summary_rows(unknown)[0][1].startswith("unknown")
    assert dict(summary_rows(unknown))["sensors"] == "- active, - warm"


@pytest.mark.parametrize(
    ("k", "step_s", "label"), [(1, 3600.0, "+1h"), (3, 1800.0, "+90min"), (2, 45.0, "+90s")]
)
def test_step_labels(k: int, step_s: float, label: str) -> None:
    assert step_label(k, step_s) == label


def band_coverage(docs: list[dict[str, Any]], actuals: dict[float, float]) -> dict[str, Any]:
    """Per horizon step, the share of the published ``lo``/``hi`` that held the actual, over the
    steps the daemon closed (up to the newest ``last_obs_at`` among the forecasts)."""
    closed = max(parse_time(doc["last_obs_at"]) for doc in docs)
    horizon = max(len([s for s in doc["forecast"] if "lo" in s]) for doc in docs)
    scored, held = [0] * horizon, [0] * horizon
    for doc in docs:
        for k, step in enumerate(s for s in doc["forecast"] if "lo" in s):
            at = parse_time(step["t"])
            if at <= closed and at in actuals:
                scored[k] += 1
                held[k] += step["lo"] <= actuals[at] <= step["hi"]
    rates = [round(h / n, 4) if n else None for h, n in zip(held, scored, strict=True)]
    return {
        "nominal": 0.8,
        "coverage_by_step": rates,
        "scored_by_step": scored,
    }


@pytest.mark.broker
def test_no_daemon_is_a_one_line_error(mosquitto: Mosquitto) -> None:
    done = CliRunner().invoke(app, ["status", "--broker", mosquitto.url, "--timeout", "0.5"])
    assert done.exit_code == 1
    assert done.output.startswith(f"error: no edge-lstm daemon has published on {mosquitto.url}")
    assert done.output.count("\n") == 1


@pytest.mark.broker
def test_unreachable_broker_is_a_one_line_error() -> None:
    done = CliRunner().invoke(app, ["status", "--broker", "127.0.0.1:1"])
    assert done.exit_code == 1
    assert done.output.startswith("error: cannot connect to MQTT broker 127.0.0.1:1")


@pytest.mark.broker
def test_status_of_a_running_then_stopped_daemon(
    mosquitto: Mosquitto, default_model: Path, tmp_path: Path
) -> None:
    prefix = unique_prefix("st")
    observer = Observer(mosquitto, prefix)
    d = DaemonProcess(
        tmp_path,
        args=[
            "--broker", mosquitto.url, "--model", str(default_model), "--output-prefix", prefix,
            "--topic", f"{prefix}/in/{{sensor}}", "--health-interval-s", "0.5",
        ],
    ).start()  # fmt: skip
    pub = Publisher(mosquitto)
    try:
        observer.wait_online(d)

        def latest() -> dict[str, Any]:
            with observer.lock:
                return dict(observer.health)

        actuals: dict[float, float] = {}

        def send_hours(hours: range) -> None:
            for hour in hours:
                value = 20.0 + (hour % 24) / 4
                actuals[T0 + hour * 3600.0] = value
                stamp = iso(T0 + hour * 3600.0)
                pub.publish(f"{prefix}/in/kitchen", json.dumps({"value": value, "ts": stamp}))
            assert pub.wait_all_acked()

        # Warm first (24 steps, then an `ok` forecast), then the hours that score it: health
        # scores only `ok` forecasts, and one batch of many steps publishes only its newest.
        warm = ModelMeta.load(default_model.with_suffix(".json")).warmup_steps
        send_hours(range(warm + 2))
        assert wait_until(lambda: latest().get("sensors_warm") == 1), f"no warm sensor\n{d.log()}"
        send_hours(range(warm + 2, warm + 6))
        pub.publish(f"{prefix}/in/kitchen", "not a number")
        assert pub.wait_all_acked()

        def ready() -> bool:
            doc = latest()
            scored = doc.get("accuracy", {}).get("scored_by_step", [0])
            return bool(
                doc.get("sensors_warm") == 1 and doc.get("readings_rejected_total") and scored[0]
            )

        assert wait_until(ready), f"no warm, scored sensor and rejection in health\n{d.log()}"

        def band_agrees() -> bool:
            band = latest().get("band")
            with observer.lock:
                published = list(observer.forecasts.get("kitchen", []))
            return isinstance(band, dict) and band == band_coverage(published, actuals)

        # The live coverage in health is that of the bands the daemon published, scored
        # against the actuals of the steps it has closed.
        assert wait_until(band_agrees), f"health's band coverage != published bands\n{d.log()}"
        band = latest()["band"]
        assert isinstance(band, dict) and band["scored_by_step"][0] > 0, band
        runner = CliRunner()
        table = runner.invoke(app, ["status", "--broker", mosquitto.url, "--prefix", prefix])
        assert table.exit_code == 0, table.output
        assert "online" in table.output
        assert "1 active, 1 warm" in table.output
        assert "1 rejected (" in table.output
        assert "+1h" in table.output and "+12h" in table.output  # accuracy per horizon step
        assert "80% band held" in table.output
        first = band["coverage_by_step"][0]
        assert f"{first:.1%} of {band['scored_by_step'][0]}" in table.output
        as_json = runner.invoke(
            app, ["status", "--broker", mosquitto.url, "--prefix", prefix, "--json"]
        )
        doc = json.loads(as_json.output)
        assert doc["up"] is True and doc["status"] == "online"
        assert doc["health"]["sensors_active"] == 1
        assert doc["health"]["accuracy"]["scored_by_step"][0] > 0, doc["health"]
    finally:
        pub.close()
        observer.close()
        assert d.terminate() == 0
    stopped = CliRunner().invoke(app, ["status", "--broker", mosquitto.url, "--prefix", prefix])
    assert stopped.exit_code == 3  # down: told apart from "could not ask" (1)
    assert "offline" in stopped.output
