"""The bench's publisher, run as its own process: ``python -m edge_lstm.bench.publish ...``.

It publishes ``readings`` rounds; round ``i`` sends one JSON reading to every sensor, with
``ts = start_ts + i * step_s`` so that each reading opens a new model step and closes the
previous one. ``--rate`` paces the messages (0: as fast as paho can). The wall-clock send time of
every message goes to ``--times`` (a ``.npy`` array ``[round, sensor]``) so the bench can match
each forecast with the reading that triggered it. A JSON summary is printed on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..mqttkit.clients import Publisher
from ..stream.address import BrokerAddress


def sensor_ids(count: int) -> list[str]:
    """The bench's sensor names, shared by publisher and bench: ``b00000`` ...."""
    return [f"b{i:05d}" for i in range(count)]


def value_of(sensor: int, round_index: int) -> float:
    """A smooth daily-cycle temperature, different per sensor (plausible input for the model)."""
    return round(15.0 + 8.0 * math.sin(2 * math.pi * (round_index + sensor % 24) / 24.0), 2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_lstm.bench.publish")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", default="bench/{sensor}", help="template with {sensor}")
    parser.add_argument("--sensors", type=int, required=True)
    parser.add_argument("--readings", type=int, required=True, help="rounds (readings per sensor)")
    parser.add_argument("--first-round", type=int, default=0)
    parser.add_argument("--start-ts", type=float, required=True)
    parser.add_argument("--step-s", type=float, required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second, 0 = max")
    parser.add_argument("--qos", type=int, default=1)
    parser.add_argument("--times", type=Path, default=None)
    args = parser.parse_args(argv)

    ids = sensor_ids(args.sensors)
    topics = [args.topic.format(sensor=s) for s in ids]
    times = np.zeros((args.readings, args.sensors), dtype=np.float64)
    publisher = Publisher(BrokerAddress(args.host, args.port))
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    start = time.time()
    start_mono = time.monotonic()
    sent = 0
    for r in range(args.readings):
        round_index = args.first_round + r
        ts = args.start_ts + round_index * args.step_s
        for i, topic in enumerate(topics):
            if interval:
                # Pace against the schedule, not the previous send: no drift, no burst catch-up
                # beyond what fell behind.
                delay = start_mono + sent * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            times[r, i] = time.time()
            payload = f'{{"value": {value_of(i, round_index)}, "ts": {ts:.3f}}}'
            publisher.publish(topic, payload, qos=args.qos)
            sent += 1
    sent_at_end = time.time()
    unacked = publisher.close(flush_timeout_s=30.0)
    done = time.time()
    if args.times is not None:
        np.save(args.times, times)
    print(
        json.dumps(
            {
                "sent": sent,
                "unacknowledged": unacked,
                "start": start,
                "send_s": sent_at_end - start,
                "acked_s": done - start,
                "rate": sent / max(sent_at_end - start, 1e-9),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
