"""End-to-end figures through a real Mosquitto: a publisher process and ``edge-lstm run``.

Three phases in one run, each with its own topic prefix:

1. **bare**: a plain paho subscriber (persistent session, QoS 1) goes away, a publisher process
   sends a backlog of ``sensors x rounds`` QoS 1 readings, the subscriber comes back; its receive
   rate (connect to last message) is what paho alone can take in on this machine. Over both
   protocols: the one the daemon speaks (``mqtt_version``) is the like-for-like baseline
   (``bare_paho``, ``daemon_vs_bare``); paho decodes a properties object for every MQTT 5
   PUBLISH, so the MQTT 3.1.1 subscriber is faster at the same job.
2. **daemon**: the same for ``edge-lstm run``: stopped, the same backlog published into its
   session, started again; its rate runs from its ``online`` message to the moment every sensor's
   forecast for the last closed step has arrived. A backlog, not a live publisher, is used in
   both so that neither figure is capped by how fast one Python process can publish.
3. **latency**: readings paced at ``rate`` per second; the latency of a forecast is the time
   from publishing the reading that closed its step to receiving the forecast (same clock).

Every reading opens a new model step and closes the previous one. Timestamps are synthetic and
a year ahead (one model step apart), so the wall clock closes no step during the bench.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..daemon.config import Config
from ..model.metadata import ModelMeta, sidecar_path
from ..mqttkit.broker import Address, broker_at
from ..mqttkit.clients import Message, Recorder
from ..stream.timestamps import parse_timestamp
from .harness import BenchDaemon, future_start, publish
from .publish import sensor_ids
from .report import ratio

Progress = Callable[[str], None]

MQTT_VERSIONS = ("3.1.1", "5")


def run_e2e(
    model_path: Path,
    broker: str | None = None,
    sensors: int = 1000,
    burst_rounds: int = 20,
    latency_rate: float = 1000.0,
    latency_s: float = 10.0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """All three phases; the JSON-able ``e2e`` section of the bench report."""
    say = progress or (lambda _m: None)
    meta = ModelMeta.load(sidecar_path(model_path))
    step_s = meta.step_s
    start_ts = future_start(step_s)
    total = sensors * burst_rounds
    version = Config().mqtt_version  # the daemon's protocol, stated to it and compared alike
    with (
        tempfile.TemporaryDirectory(prefix="edge-lstm-bench-") as tmp,
        broker_at(broker, Path(tmp)) as (address, broker_desc),
    ):
        say(f"e2e: bare paho subscribers (MQTT 3.1.1, 5), backlog of {total} readings each")
        bares = {
            v: _bare_backlog(address, sensors, burst_rounds, start_ts, step_s, mqtt5=v == "5")
            for v in MQTT_VERSIONS
        }

        say(f"e2e: edge-lstm run (MQTT {version}), backlog of {total} readings")
        daemon = BenchDaemon(
            model_path, address, Path(tmp), max_sensors=max(sensors, 1), mqtt_version=version
        )
        out = Recorder(address, [f"{daemon.prefix}/out/+/forecast"]).start()
        try:
            daemon.stop()
            topic = daemon.input_topic
            publish(address, topic, sensors, burst_rounds, start_ts, step_s)
            spawned_at = time.time()
            online_at = daemon.start()
            # The daemon may coalesce several closed steps of one sensor into one forecast (the
            # latest), so "done" is: every sensor's forecast for the last closed step arrived.
            last_step = start_ts - step_s / 2 + (burst_rounds - 2) * step_s
            done_at = _wait_all_reached(out, sensors, last_step, timeout_s=300)
            forecasts = out.count()
            daemon_rate = total / (done_at - online_at) if done_at else None
            health = daemon.health(after_s=1.0)

            rounds = max(2, math.ceil(latency_s * latency_rate / sensors))
            say(f"e2e: latency at {latency_rate:g} readings/s, {rounds * sensors} readings")
            out.clear()
            times_path = Path(tmp) / "times.npy"
            paced = publish(
                address, topic, sensors, rounds, start_ts, step_s,
                first_round=burst_rounds, rate=latency_rate, times=times_path,
            )  # fmt: skip
            final_step = start_ts - step_s / 2 + (burst_rounds + rounds - 2) * step_s
            _wait_all_reached(out, sensors, final_step, timeout_s=120)
            latencies = _latencies(
                out.snapshot(), np.load(times_path), start_ts, step_s, burst_rounds
            )
            final = daemon.health(after_s=1.0)
        finally:
            out.close()
            exit_code = daemon.close()
    sent = total + int(paced["sent"])
    accepted = int(final.get("readings_accepted", 0))
    lat_ms = latencies * 1e3
    return {
        "broker": broker_desc,
        "sensors": sensors,
        "horizon": int(health.get("model", {}).get("horizon", meta.horizon)),
        # Like for like: a bare paho subscriber over the daemon's protocol, QoS 1 (the daemon's
        # default: MQTT 5 for its wide receive window). Both protocols are reported too.
        "daemon_mqtt_version": version,
        "bare_paho": bares[version],
        "bare_paho_mqtt311": bares["3.1.1"],
        "bare_paho_mqtt5": bares["5"],
        "daemon": {
            "readings": total,
            "forecasts_received": forecasts,
            "completed": done_at is not None,
            "rate_per_s": daemon_rate,
        },
        "daemon_vs_bare": ratio(daemon_rate, bares[version]["rate_per_s"]),
        "daemon_vs_bare_mqtt311": ratio(daemon_rate, bares["3.1.1"]["rate_per_s"]),
        "daemon_vs_bare_mqtt5": ratio(daemon_rate, bares["5"]["rate_per_s"]),
        # Process start to its retained ``online`` (connected and subscribed), with a backlog
        # waiting in its session: an upper bound of start to READY=1 (told to systemd once the
        # model is loaded and connecting has begun).
        "start_to_online_s": online_at - spawned_at,
        "latency": {
            "target_rate_per_s": latency_rate,
            "achieved_rate_per_s": paced["rate"],
            "readings": paced["sent"],
            "forecasts_matched": int(lat_ms.size),
            "p50_ms": float(np.percentile(lat_ms, 50)) if lat_ms.size else None,
            "p99_ms": float(np.percentile(lat_ms, 99)) if lat_ms.size else None,
            "max_ms": float(lat_ms.max()) if lat_ms.size else None,
        },
        "readings_sent": sent,
        "readings_accepted": accepted,
        "readings_lost": sent - accepted,
        "queue_dropped": final.get("queue_dropped"),
        "daemon_exit_code": exit_code,
    }


def _bare_backlog(
    broker: Address, sensors: int, rounds: int, start_ts: float, step_s: float, mqtt5: bool
) -> dict[str, Any]:
    total = sensors * rounds
    topic = f"bench-{uuid.uuid4().hex[:8]}/bare"
    client_id = f"{topic.split('/')[0]}-bare"
    Recorder(broker, [f"{topic}/#"], client_id=client_id, mqtt5=mqtt5).start().close()
    publish(broker, topic + "/{sensor}", sensors, rounds, start_ts, step_s)  # into the session
    bare = Recorder(broker, [f"{topic}/#"], client_id=client_id, mqtt5=mqtt5).start()
    bare.wait_for(total, timeout_s=120)
    bare.close()
    messages = bare.snapshot()
    last = messages[-1].at if messages else bare.connected_at
    return {
        "mqtt_version": "5" if mqtt5 else "3.1.1",
        "qos": 1,
        "readings": total,
        "received": len(messages),
        "rate_per_s": len(messages) / max(last - bare.connected_at, 1e-9) if messages else None,
    }


def _observed(payload: bytes) -> tuple[str, float] | None:
    """``(sensor, last observed step start)`` of a forecast document, or None."""
    try:
        doc = json.loads(payload)
        return str(doc["sensor"]), parse_timestamp(doc["last_obs_at"])
    except (ValueError, KeyError, TypeError):
        return None


def _wait_all_reached(
    out: Recorder, sensors: int, last_step: float, timeout_s: float, idle_s: float = 10.0
) -> float | None:
    """Receive time at which every sensor had a forecast for ``last_step``; None on timeout."""
    reached: dict[str, float] = {}
    seen = 0
    deadline = time.monotonic() + timeout_s
    last_change = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last_change < idle_s:
        messages = out.snapshot()
        for message in messages[seen:]:
            parsed = _observed(message.payload)
            if parsed is not None and parsed[1] >= last_step - 1e-6:
                reached.setdefault(parsed[0], message.at)
        if len(messages) > seen:
            seen, last_change = len(messages), time.monotonic()
        if len(reached) >= sensors:
            return max(reached.values())
        time.sleep(0.05)
    return None


def _latencies(
    messages: Sequence[Message],
    times: np.ndarray[Any, Any],
    start_ts: float,
    step_s: float,
    first_round: int,
) -> np.ndarray[Any, Any]:
    """Receive time minus the send time of the reading that closed the forecast's step."""
    index = {sid: i for i, sid in enumerate(sensor_ids(times.shape[1]))}
    origin = start_ts - step_s / 2
    out = []
    for message in messages:
        parsed = _observed(message.payload)
        column = index.get(parsed[0]) if parsed else None
        if parsed is None or column is None:
            continue
        closing = round((parsed[1] - origin) / step_s) + 1 - first_round
        if 0 <= closing < times.shape[0]:
            out.append(message.at - times[closing, column])
    return np.asarray(out, dtype=np.float64)
