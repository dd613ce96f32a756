"""Pure pieces of the daemon: forecast documents, Home Assistant discovery, sd_notify."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from edge_lstm.daemon.homeassistant import discovery_messages, object_id
from edge_lstm.daemon.sdnotify import Notifier
from edge_lstm.model.metadata import ModelMeta, Validation, sidecar_path
from edge_lstm.stream.documents import ForecastFormatter, iso
from edge_lstm.stream.topics import OutputTopics


@pytest.fixture
def meta(golden_model: Path) -> ModelMeta:
    return ModelMeta.load(sidecar_path(golden_model))


def test_iso() -> None:
    assert iso(1_700_000_040.0) == "2023-11-14T22:14:00Z"
    assert iso(1_700_000_040.25) == "2023-11-14T22:14:00.250Z"


def test_forecast_document_multi_feature_with_band(meta: ModelMeta) -> None:
    validation = Validation(
        horizon=2, season=0, mae={"lstm": [0.1, 0.2]},
        residual_q10=[[-1.0, -2.0], [-3.0, -4.0]], residual_q90=[[1.0, 2.0], [3.0, 4.0]],
    )  # fmt: skip
    fmt = ForecastFormatter(dataclasses.replace(meta, validation=validation), horizon=3)
    forecast = np.array([[20.0, 50.0], [21.0, 51.0], [22.0, 52.0]], dtype=np.float32)
    doc = json.loads(fmt.format("k", 1_700_000_040.0, forecast, "ok", 7, 1_700_000_100.0))
    assert doc["last_obs_at"] == "2023-11-14T22:14:00Z" and doc["steps_seen"] == 7
    assert doc["features"] == ["temperature", "humidity"]
    steps = doc["forecast"]
    assert [s["t"] for s in steps] == ["2023-11-14T22:15:00Z", "2023-11-14T22:16:00Z",
                                       "2023-11-14T22:17:00Z"]  # fmt: skip
    assert steps[0] == {"t": steps[0]["t"], "v": {"temperature": 20.0, "humidity": 50.0},
                        "lo": {"temperature": 19.0, "humidity": 48.0},
                        "hi": {"temperature": 21.0, "humidity": 52.0}}  # fmt: skip
    assert steps[1]["lo"] == {"temperature": 18.0, "humidity": 47.0}
    assert "lo" not in steps[2]  # beyond the validated horizon: no band


def test_forecast_document_single_feature(meta: ModelMeta) -> None:
    validation = Validation(horizon=1, season=0, mae={}, residual_q10=[[-0.5]],
                            residual_q90=[[0.25]])  # fmt: skip
    single = dataclasses.replace(
        meta,
        features=("t",),
        scaler=dataclasses.replace(meta.scaler, mean=(0.0,), scale=(1.0,)),
        validation=validation,
    )
    fmt = ForecastFormatter(single, horizon=2)
    forecast = np.array([[1.5], [2.123456789]], np.float32)
    doc = json.loads(fmt.format('a "quoted" id', 1e9, forecast, "warming_up", 1, 1e9 + 5))
    assert doc == {
        "sensor": 'a "quoted" id',
        "issued_at": "2001-09-09T01:46:45Z",
        "last_obs_at": "2001-09-09T01:46:40Z",
        "step_s": 60.0,
        "status": "warming_up",
        "steps_seen": 1,
        "model": {"name": "golden", "sha256": meta.tflite_sha256},
        "features": ["t"],
        "forecast": [
            {"t": "2001-09-09T01:47:40Z", "v": 1.5, "lo": 1.0, "hi": 1.75},
            {"t": "2001-09-09T01:48:40Z", "v": 2.12346},
        ],
    }
    # The batched fast path writes the same documents (and falls back for non-finite rows).
    batch = np.stack([forecast, forecast + 1, np.array([[np.nan], [1.0]], np.float32)])
    ids, buckets = ['a "quoted" id', "b", "c"], [1e9, 1e9 + 60, 1e9]
    statuses, steps = ["warming_up", "ok", "ok"], [1, 2, 3]
    fast = fmt.format_batch(ids, buckets, batch, statuses, steps, 1e9 + 5)
    slow = [
        fmt.format(*args, 1e9 + 5)
        for args in zip(ids, buckets, batch, statuses, steps, strict=True)
    ]
    assert [json.loads(x) for x in fast] == [json.loads(x) for x in slow]
    assert json.loads(fast[2])["forecast"][0]["v"] is None


def test_homeassistant_discovery(meta: ModelMeta) -> None:
    out = OutputTopics("edge-lstm")
    msgs = discovery_messages("homeassistant", out, meta, "living room:1", "pi")
    assert len(msgs) == 2  # one entity per feature
    for topic, payload in msgs:
        parts = topic.split("/")
        assert parts[:3] == ["homeassistant", "sensor", "edge_lstm"] and parts[-1] == "config"
        assert all(c.isalnum() or c in "_-" for c in parts[3])
        config = json.loads(payload)
        assert config["state_topic"] == "edge-lstm/living room:1/forecast"
        assert config["availability_topic"] == "edge-lstm/status"
    assert "humidity" in json.loads(msgs[1][1])["value_template"]
    # Ids that slug alike stay distinct.
    assert object_id("a b") != object_id("a_b")


def test_sdnotify_sends_datagrams(tmp_path: Path) -> None:
    path = str(tmp_path / "n.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(2)
        n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
        assert n.enabled and n.watchdog_interval_s == 2.0
        assert n.ready("up") and n.watchdog() and n.stopping()
        got = [sock.recv(256).decode() for _ in range(3)]
    assert got == ["READY=1\nSTATUS=up", "WATCHDOG=1", "STOPPING=1"]


def test_sdnotify_is_a_no_op_without_socket() -> None:
    n = Notifier({})
    assert not n.enabled and not n.ready() and n.watchdog_interval_s is None
    other_pid = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "1"})
    assert other_pid.watchdog_interval_s is None or os.getpid() == 1


def test_forecast_document_never_holds_invalid_json(meta: ModelMeta) -> None:
    fmt = ForecastFormatter(meta, horizon=2)
    forecast = np.array([[np.nan, 1.0], [np.inf, 2.0]], dtype=np.float32)
    raw = fmt.format("k", 1e9, forecast, "ok", 1, 1e9).decode()
    assert "NaN" not in raw and "Infinity" not in raw
    doc = json.loads(raw)
    assert doc["forecast"][0]["v"] == {"temperature": None, "humidity": 1.0}


def test_daemon_core_modules_import_no_paho_or_tensorflow() -> None:
    import subprocess
    import sys

    modules = "config, health, homeassistant, sdnotify, pipeline"
    code = (
        f"from edge_lstm.daemon import {modules}\n"
        "from edge_lstm.stream import readings, topics, documents\nimport sys\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(eval(out.stdout))
    assert not loaded & {"paho", "tensorflow", "keras", "ai_edge_litert", "tflite_runtime"}
