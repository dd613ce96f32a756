"""Measure the cost of ``durability = "wal"``: readings/s the write-ahead log sustains.

Usage: ``python scripts/bench_wal.py [--dir DIR] [--seconds S] [--daemon] [--model PATH]``.
Run it on the target's state directory (an SD card behaves very differently from a laptop SSD).

Journal alone: one line per mode: per-reading append with fsync, group commit of a batch with one
fsync (what the daemon does: one ``append_many`` per worker batch), and no fsync (page cache
only; survives a process crash, not a power cut).

``--daemon``: ``edge-lstm run`` end to end through a real Mosquitto (from the PATH), the way
``edge-lstm bench`` measures it: a backlog of QoS 1 readings waits in the daemon's session, the
daemon starts, and the rate runs from its ``online`` to the last forecast. Once per durability
mode, in the same run, so the ratio is the cost of the journal.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edge_lstm.daemon.wal import WriteAheadLog
from edge_lstm.stream.resample import Reading


def _rate(run: Callable[[], int], seconds: float) -> float:
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += run()
    return done / (time.perf_counter() - start)


def measure(directory: Path, seconds: float, batch: int = 500) -> dict[str, float]:
    """Readings per second for each WAL mode, written under ``directory``."""
    readings = [Reading(f"sensor-{i:04d}", (20.0 + i / 7,), 1.7e9 + i) for i in range(batch)]
    results: dict[str, float] = {}
    modes: list[tuple[str, bool, bool]] = [
        ("append+fsync (per reading)", True, False),
        (f"append_many+fsync (batch {batch})", True, True),
        ("append, no fsync (per reading)", False, False),
    ]
    for name, fsync, grouped in modes:
        wal = WriteAheadLog(directory / f"bench-{fsync}-{grouped}.wal", fsync=fsync)
        cursor = [0]

        def one(wal: WriteAheadLog = wal, cursor: list[int] = cursor) -> int:
            wal.append(readings[cursor[0] % batch])
            cursor[0] += 1
            if cursor[0] % 10_000 == 0:
                wal.truncate()  # as a snapshot would; keeps the file small
            return 1

        def many(wal: WriteAheadLog = wal) -> int:
            wal.append_many(readings)
            wal.truncate()
            return batch

        results[name] = _rate(many if grouped else one, seconds)
        wal.close()
    return results


def measure_daemon(
    model: Path, directory: Path, sensors: int = 1000, rounds: int = 20, repeat: int = 1
) -> dict[str, list[float]]:
    """Daemon readings/s from a backlog, per durability mode (state dir under ``directory``).

    Modes are interleaved ``repeat`` times so that a noisy machine hits them all alike.
    """
    from edge_lstm.bench.e2e import _wait_all_reached
    from edge_lstm.bench.harness import BenchDaemon, future_start, publish
    from edge_lstm.model.metadata import ModelMeta, sidecar_path
    from edge_lstm.mqttkit.broker import broker_at
    from edge_lstm.mqttkit.clients import Recorder

    step_s = ModelMeta.load(sidecar_path(model)).step_s
    start_ts = future_start(step_s)
    modes: dict[str, dict[str, object]] = {
        "snapshot": {"durability": "snapshot"},
        "wal, fsync": {"durability": "wal", "wal_fsync": True},
        "wal, no fsync": {"durability": "wal", "wal_fsync": False},
    }
    results: dict[str, list[float]] = {name: [] for name in modes}
    with broker_at(None, directory) as (broker, _desc):
        for run, (name, extra) in enumerate(list(modes.items()) * repeat):
            state = directory / f"{run}-{name.replace(' ', '').replace(',', '-')}"
            daemon = BenchDaemon(
                model, broker, directory, max_sensors=sensors, state_dir=state, **extra
            )
            out = Recorder(broker, [f"{daemon.prefix}/out/+/forecast"]).start()
            try:
                daemon.stop()
                publish(broker, daemon.input_topic, sensors, rounds, start_ts, step_s)
                online_at = daemon.start()
                last_step = start_ts - step_s / 2 + (rounds - 2) * step_s
                done_at = _wait_all_reached(out, sensors, last_step, timeout_s=300)
                if done_at:
                    results[name].append(sensors * rounds / (done_at - online_at))
            finally:
                out.close()
                daemon.close()
    return results


def main() -> None:
    """Print the measured rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: tmp)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per mode")
    parser.add_argument("--daemon", action="store_true", help="also measure edge-lstm run")
    parser.add_argument("--model", type=Path, default=Path("models/default.tflite"))
    parser.add_argument("--repeat", type=int, default=3, help="daemon runs per mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for name, rate in measure(Path(tmp), args.seconds).items():
            print(f"journal  {name:40s} {rate:12,.0f} readings/s")
        if args.daemon:
            rates = measure_daemon(args.model, Path(tmp), repeat=args.repeat)
            for name, runs in rates.items():
                shown = f"{statistics.median(runs):12,.0f}" if runs else "      failed"
                each = ", ".join(f"{r:,.0f}" for r in runs)
                print(f"daemon   {name:40s} {shown} readings/s (median; runs: {each})")


if __name__ == "__main__":
    main()
