"""How the bench runs ``edge-lstm run`` and its publisher, on the MQTT kit (``edge_lstm.mqttkit``).

Only the bench's choices live here: the daemon's settings, readings dated a year ahead, the
publisher as its own process (``edge_lstm.bench.publish``) so that it never competes with the
measured process for a core. Broker, clients and the daemon process are the kit's.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import BrokerError
from ..mqttkit.broker import Address
from ..mqttkit.clients import unique_prefix
from ..mqttkit.daemon import DaemonProcess, daemon_settings
from ..mqttkit.observer import Observer

ONLINE_TIMEOUT_S = 60.0


class BenchDaemon:
    """``edge-lstm run`` under its own topic prefix (a persistent session), with an observer of
    its status and health; started (and online) on construction."""

    def __init__(self, model: Path, broker: Address, workdir: Path, **settings: object) -> None:
        self.prefix = unique_prefix("bench")
        self.input_topic = f"{self.prefix}/s/{{sensor}}"
        self.process = DaemonProcess(
            workdir / self.prefix,
            daemon_settings(
                broker, model, self.prefix,
                health_interval_s=1.0,
                log_level="WARNING",
                # The bench dates its readings a year ahead (future_start): let them in.
                max_clock_skew_s=400 * 86_400,
                **settings,
            ),
        )  # fmt: skip
        self.observer = Observer(broker, f"{self.prefix}/out")
        try:
            self.start()
        except BaseException:
            self.close()
            raise

    def start(self) -> float:
        """Start the process; the wall time its ``online`` arrived."""
        self.process.start()
        try:
            return self.observer.wait_online(self.process, ONLINE_TIMEOUT_S)
        except TimeoutError as exc:
            raise BrokerError(
                f"edge-lstm run did not come online: {self.process.log_tail()}"
            ) from exc

    def stop(self) -> int | None:
        """SIGTERM and wait; the exit code (the MQTT session stays with the broker)."""
        return self.process.terminate()

    def close(self) -> int | None:
        """Stop the process and the observer."""
        code = self.stop()
        self.observer.close()
        return code

    def health(self, after_s: float = 0.0, timeout_s: float = 10.0) -> dict[str, Any]:
        """The first health document received ``after_s`` or more from now."""
        try:
            return self.observer.fresh_health(timeout_s, after_s)
        except TimeoutError as exc:
            raise BrokerError(f"no health from edge-lstm run: {self.process.log_tail()}") from exc

    def health_until(
        self, done: Callable[[dict[str, Any]], bool], timeout_s: float
    ) -> tuple[dict[str, Any], bool]:
        """Health documents until ``done`` holds for one or ``timeout_s`` has passed: the last
        one, and whether it held."""
        deadline = time.monotonic() + timeout_s
        while True:
            health = self.health(timeout_s=10)
            if done(health):
                return health, True
            if time.monotonic() > deadline:
                return health, False

    def rss_bytes(self) -> int:
        """Resident memory of the daemon process (Linux /proc)."""
        return self.process.rss()

    def peak_rss_bytes(self) -> int:
        """Its peak resident memory so far (Linux /proc)."""
        return self.process.peak_rss()


def publish(
    broker: Address, topic: str, sensors: int, rounds: int, start_ts: float, step_s: float,
    first_round: int = 0, rate: float = 0.0, times: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run the publisher process to completion; its JSON summary."""
    args = [
        sys.executable, "-m", "edge_lstm.bench.publish",
        "--host", broker.host, "--port", str(broker.port), "--topic", topic,
        "--sensors", str(sensors), "--readings", str(rounds), "--first-round", str(first_round),
        "--start-ts", repr(start_ts), "--step-s", repr(step_s), "--rate", repr(rate),
    ] + (["--times", str(times)] if times else [])  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise BrokerError(f"bench publisher failed: {out.stderr.strip()[-300:]}")
    summary: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return summary


def future_start(step_s: float) -> float:
    """Mid-step timestamp a year ahead: wall-clock closing never fires during the bench."""
    return (
        math.floor(time.time() / step_s) + math.ceil(366 * 86_400 / step_s)
    ) * step_s + step_s / 2
