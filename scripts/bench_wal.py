"""Measure the cost of ``durability = "wal"``: readings/s the write-ahead log sustains.

Usage: ``python scripts/bench_wal.py [--dir DIR] [--seconds S]``. Run it on the target's state
directory (an SD card behaves very differently from a laptop SSD). Prints one line per mode:
per-reading append with fsync (what the daemon does when it acknowledges messages one by one),
group commit of a batch with one fsync, and no fsync (page cache only; survives a process crash,
not a power cut).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edge_lstm.resample import Reading
from edge_lstm.wal import WriteAheadLog


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


def main() -> None:
    """Print the measured rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: tmp)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for name, rate in measure(Path(tmp), args.seconds).items():
            print(f"{name:40s} {rate:12,.0f} readings/s")


if __name__ == "__main__":
    main()
