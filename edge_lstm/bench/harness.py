"""What the bench runs against: a Mosquitto from the PATH, ``edge-lstm run`` as a child process,
and the publisher process (``edge_lstm.bench.publish``)."""

from __future__ import annotations

import json
import math
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import BrokerError
from ..stream.address import parse_broker
from .clients import Recorder


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.2).close()
    except OSError:
        return False
    return True


@contextmanager
def broker_for_bench(address: str | None, workdir: Path) -> Iterator[tuple[str, int, str]]:
    """``(host, port, description)`` of ``address``, or of a Mosquitto started from the PATH."""
    if address:
        parsed = parse_broker(address)
        yield parsed.host, parsed.port, f"given: {address}"
        return
    binary = shutil.which("mosquitto")
    if binary is None:
        raise BrokerError("no --broker given and no mosquitto on the PATH")
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    # Unlimited queues: mosquitto's default (1,000 queued QoS 1 messages per client) would drop
    # a burst that a slow subscriber has not read yet, and we measure the daemon, not that cap.
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_inflight_messages 0\nlog_type error\n",
        encoding="utf-8",
    )
    version = subprocess.run([binary, "-h"], capture_output=True, text=True).stdout.split("\n")[0]
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while not _accepts("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise BrokerError(f"mosquitto did not start: {err.strip()[:200]}")
            time.sleep(0.05)
        yield "127.0.0.1", port, f"started: {version.strip()}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def edge_lstm_command() -> list[str]:
    """How to run the ``edge-lstm`` CLI of this very installation in a child process."""
    return [
        sys.executable,
        "-c",
        "import sys; from edge_lstm.cli.app import app; sys.argv[0] = 'edge-lstm'; app()",
    ]


class DaemonProcess:
    """``edge-lstm run`` as a child process, with its own topic prefix and fixed client id."""

    def __init__(
        self, model: Path, host: str, port: int, workdir: Path, extra: Sequence[str] = ()
    ) -> None:
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}"
        self.input_topic = f"{self.prefix}/in/{{sensor}}"
        self.log_path = workdir / f"{self.prefix}.log"
        self._args = [
            *edge_lstm_command(), "run",
            "--broker", f"{host}:{port}",
            "--model", str(model),
            "--client-id", self.prefix,
            "--topic", self.input_topic,
            "--output-prefix", f"{self.prefix}/out",
            "--health-interval-s", "1",
            "--log-level", "WARNING",
            # The bench dates its readings a year ahead (future_start): let them in.
            "--max-clock-skew-s", str(400 * 86_400),
            *extra,
        ]  # fmt: skip
        self._log = self.log_path.open("ab")
        self.status = Recorder(
            host, port, [f"{self.prefix}/out/status", f"{self.prefix}/out/health"]
        )
        self.status.start()
        self.proc: subprocess.Popen[bytes] | None = None
        self.online_at = 0.0
        try:
            self.start()
        except BaseException:
            self.close()
            raise

    def start(self, timeout_s: float = 60.0) -> float:
        """Start the process; returns the wall time its retained ``online`` arrived."""
        self.status.clear()
        self.proc = subprocess.Popen(self._args, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while True:
            online = [t for t, topic, p in self.status.snapshot() if p == b"online"]
            if online:
                self.online_at = online[0]
                return self.online_at
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BrokerError(f"edge-lstm run did not come online: {self.log_tail()}")
            time.sleep(0.02)

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM and wait; the exit code (the MQTT session stays with the broker)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def close(self) -> int | None:
        """Stop the process and the status subscriber."""
        code = self.stop()
        self.status.stop()
        self._log.close()
        return code

    def log_tail(self) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return " | ".join(text.strip().splitlines()[-3:])

    def health(self, newer_than: float = 0.0, timeout_s: float = 10.0) -> dict[str, Any]:
        """The latest health document received after ``newer_than`` (wall clock)."""
        deadline = time.monotonic() + timeout_s
        while True:
            docs = [
                (t, p) for t, topic, p in self.status.snapshot()
                if topic.endswith("/health") and t > newer_than
            ]  # fmt: skip
            if docs:
                doc: dict[str, Any] = json.loads(docs[-1][1])
                return doc
            if time.monotonic() > deadline:
                raise BrokerError(f"no health message from edge-lstm run: {self.log_tail()}")
            time.sleep(0.1)

    def rss_bytes(self) -> int:
        """Resident memory of the daemon process (Linux /proc)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise OSError("VmRSS not found")


def publish(
    host: str, port: int, topic: str, sensors: int, rounds: int, start_ts: float, step_s: float,
    first_round: int = 0, rate: float = 0.0, times: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run the publisher process to completion; its JSON summary."""
    args = [
        sys.executable, "-m", "edge_lstm.bench.publish",
        "--host", host, "--port", str(port), "--topic", topic,
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
