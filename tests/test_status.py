"""``edge-lstm status``: pure rows, then against a real Mosquitto with a real daemon."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_lstm.cli import app
from edge_lstm.metadata import ModelMeta
from edge_lstm.payloads import iso
from edge_lstm.status import DaemonStatus, accuracy_rows, step_label, summary_rows

from .daemon_run import Collector, DaemonProcess, Publisher
from .mosquitto import Mosquitto, unique_prefix

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
    "accuracy": {"mae_by_step": [0.5, None], "scored_by_step": [10, 0]},
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
    assert accuracy_rows(st) == [("+1h", "0.500", "10"), ("+2h", "-", "0")]


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
    online = Collector(mosquitto.host, mosquitto.port, [f"{prefix}/status"])
    d = DaemonProcess(
        [
            "--broker", mosquitto.url, "--model", str(default_model), "--output-prefix", prefix,
            "--topic", f"{prefix}/in/{{sensor}}", "--health-interval-s", "0.5",
        ],
        tmp_path,
    )  # fmt: skip
    health = Collector(mosquitto.host, mosquitto.port, [f"{prefix}/health"])
    pub = Publisher(mosquitto.host, mosquitto.port)
    try:
        online.wait_for(lambda: any(m.payload == b"online" for m in online.messages), "online")

        def latest() -> dict[str, object]:
            docs = health.on(f"{prefix}/health")
            return json.loads(docs[-1].payload) if docs else {}

        def send_hours(hours: range) -> None:
            for hour in hours:
                value = 20.0 + (hour % 24) / 4
                stamp = iso(T0 + hour * 3600.0)
                pub.send(f"{prefix}/in/kitchen", json.dumps({"value": value, "ts": stamp}))
            pub.wait_all()

        # Warm first (24 steps, then an `ok` forecast), then the hours that score it: health
        # scores only `ok` forecasts, and one batch of many steps publishes only its newest.
        warm = ModelMeta.load(default_model.with_suffix(".json")).warmup_steps
        send_hours(range(warm + 2))
        health.wait_for(lambda: latest().get("sensors_warm") == 1, f"a warm sensor\n{d.log()}")
        send_hours(range(warm + 2, warm + 6))
        pub.send(f"{prefix}/in/kitchen", "not a number")
        pub.wait_all()

        def ready() -> bool:
            doc = latest()
            scored = doc.get("accuracy", {}).get("scored_by_step", [0])  # type: ignore[attr-defined]
            return bool(
                doc.get("sensors_warm") == 1 and doc.get("readings_rejected_total") and scored[0]
            )

        health.wait_for(ready, f"a warm, scored sensor and a rejection in health\n{d.log()}")
        runner = CliRunner()
        table = runner.invoke(app, ["status", "--broker", mosquitto.url, "--prefix", prefix])
        assert table.exit_code == 0, table.output
        assert "online" in table.output
        assert "1 active, 1 warm" in table.output
        assert "1 rejected (" in table.output
        assert "+1h" in table.output and "+12h" in table.output  # accuracy per horizon step
        as_json = runner.invoke(
            app, ["status", "--broker", mosquitto.url, "--prefix", prefix, "--json"]
        )
        doc = json.loads(as_json.output)
        assert doc["up"] is True and doc["status"] == "online"
        assert doc["health"]["sensors_active"] == 1
        assert doc["health"]["accuracy"]["scored_by_step"][0] > 0, doc["health"]
    finally:
        pub.close()
        health.close()
        online.close()
        assert d.terminate() == 0
    stopped = CliRunner().invoke(app, ["status", "--broker", mosquitto.url, "--prefix", prefix])
    assert stopped.exit_code == 3  # down: told apart from "could not ask" (1)
    assert "offline" in stopped.output
