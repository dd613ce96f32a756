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
import statistics
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
    repeats: int = 3,
) -> dict[str, Any]:
    """All three phases; the JSON-able ``e2e`` section of the bench report.

    The bare and daemon backlogs run ``repeats`` times, one after the other (bare, daemon,
    bare, daemon, ...); rates are medians, and each ratio the median of the ``repeats`` ratios
    of a daemon run to the bare runs just before it: on a shared machine, other work comes and
    goes within seconds, and a single pair measured a few seconds apart can be far off.
    """
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
        daemon = BenchDaemon(
            model_path, address, Path(tmp), max_sensors=max(sensors, 1), mqtt_version=version
        )
        out = Recorder(address, [f"{daemon.prefix}/out/+/forecast"]).start()
        try:
            daemon.stop()
            topic = daemon.input_topic
            runs = []
            for run in range(repeats):
                say(
                    f"e2e {run + 1}/{repeats}: bare paho subscribers (MQTT 3.1.1, 5), then "
                    f"edge-lstm run (MQTT {version}), a backlog of {total} readings each"
                )
                bares = {
                    v: _bare_backlog(address, sensors, burst_rounds, start_ts, step_s, v == "5")
                    for v in MQTT_VERSIONS
                }
                first_round = run * burst_rounds
                publish(address, topic, sensors, burst_rounds, start_ts, step_s, first_round)
                # The daemon may coalesce several closed steps of one sensor into one forecast
                # (the latest), so "done" is: every sensor's forecast for the last closed step.
                last_step = start_ts - step_s / 2 + (first_round + burst_rounds - 2) * step_s
                daemon_run = _daemon_backlog(daemon, out, sensors, burst_rounds, last_step)
                runs.append({"bare": bares, **daemon_run})
                if run < repeats - 1:
                    daemon.stop()
            health = runs[-1]["health"]
            burst_rounds *= repeats  # the rounds published so far: the latency phase follows

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
    sent = total * repeats + int(paced["sent"])
    # Every process but the last counted its own run; the last, its run and the paced phase.
    counted = [r["health"] for r in runs[:-1]] + [final]
    accepted = sum(int(h.get("readings_accepted", 0)) for h in counted)
    lat_ms = latencies * 1e3
    daemon_rate = _median([r["rate_per_s"] for r in runs])
    bare = {v: _median_bare([r["bare"][v] for r in runs]) for v in MQTT_VERSIONS}
    alike = {v: _median([ratio(r["rate_per_s"], r["bare"][v]["rate_per_s"]) for r in runs])
             for v in MQTT_VERSIONS}  # fmt: skip
    return {
        "broker": broker_desc,
        "sensors": sensors,
        "horizon": int(health.get("model", {}).get("horizon", meta.horizon)),
        # Like for like: a bare paho subscriber over the daemon's protocol, QoS 1 (the daemon's
        # default: MQTT 5 for its wide receive window). Both protocols are reported too.
        "daemon_mqtt_version": version,
        "bare_paho": bare[version],
        "bare_paho_mqtt311": bare["3.1.1"],
        "bare_paho_mqtt5": bare["5"],
        "daemon": {
            "readings": total,
            "forecasts_received": runs[-1]["forecasts_received"],
            "completed": all(r["completed"] for r in runs),
            "rate_per_s": daemon_rate,
        },
        "daemon_vs_bare": alike[version],
        "daemon_vs_bare_mqtt311": alike["3.1.1"],
        "daemon_vs_bare_mqtt5": alike["5"],
        # Process start to its retained ``online`` (connected and subscribed), with a backlog
        # waiting in its session: an upper bound of start to READY=1 (told to systemd once the
        # model is loaded and connecting has begun). Median and slowest of the runs.
        "start_to_online_s": _median([r["start_to_online_s"] for r in runs]),
        "start_to_online_max_s": max(r["start_to_online_s"] for r in runs),
        "repeats": repeats,
        "runs": [
            {
                "bare_mqtt311_per_s": r["bare"]["3.1.1"]["rate_per_s"],
                "bare_mqtt5_per_s": r["bare"]["5"]["rate_per_s"],
                "daemon_per_s": r["rate_per_s"],
                "start_to_online_s": r["start_to_online_s"],
            }
            for r in runs
        ],
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
        "queue_dropped": sum(int(h.get("queue_dropped") or 0) for h in counted),
        "daemon_exit_code": exit_code,
    }


def _daemon_backlog(
    daemon: BenchDaemon, out: Recorder, sensors: int, rounds: int, last_step: float
) -> dict[str, Any]:
    """Start the (stopped) daemon onto its backlog; its rate until ``last_step`` is forecast."""
    out.clear()
    spawned_at = time.time()
    online_at = daemon.start()
    done_at = _wait_all_reached(out, sensors, last_step, timeout_s=300)
    forecasts = out.count()
    return {
        "rate_per_s": sensors * rounds / (done_at - online_at) if done_at else None,
        "completed": done_at is not None,
        "forecasts_received": forecasts,
        "start_to_online_s": online_at - spawned_at,
        # Its counters start again with every process: the readings this one accepted so far.
        "health": daemon.health(after_s=1.0),
    }


def _median(values: Sequence[float | None]) -> float | None:
    """Median of the runs' figures; None if any run has none (it did not complete)."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known and len(known) == len(values) else None


def _median_bare(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One protocol's bare runs as one: the median rate, every message received or not."""
    return {
        **runs[0],
        "received": min(r["received"] for r in runs),
        "rate_per_s": _median([r["rate_per_s"] for r in runs]),
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
