"""``edge-lstm run`` as a child process: started, stopped (SIGTERM), killed (SIGKILL), restarted.

Settings go into a TOML file (``--config``), arguments after it; the environment is the
caller's without any ``EDGE_LSTM_*`` or ``NOTIFY_SOCKET`` (which would change the settings or
talk to the caller's systemd). Output (stdout and stderr) goes to a log file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..daemon.config_parse import to_toml  # the one writer of the config file
from .broker import Address
from .clients import WAIT_S


def edge_lstm_command() -> list[str]:
    """How to run the ``edge-lstm`` CLI of this very installation in a child process."""
    return [
        sys.executable,
        "-c",
        "import sys; from edge_lstm.cli.app import app; sys.argv[0] = 'edge-lstm'; app()",
    ]


def daemon_settings(broker: Address, model: Path, prefix: str, **more: object) -> dict[str, object]:
    """Settings of a daemon under ``prefix``: readings on ``{prefix}/s/{sensor}``, output under
    ``{prefix}/out``, client id ``{prefix}-daemon`` (a persistent session), health every 0.5 s."""
    return {
        "broker": f"{broker.host}:{broker.port}",
        "model": model,
        "topics": [f"{prefix}/s/{{sensor}}"],
        "output_prefix": f"{prefix}/out",
        "client_id": f"{prefix}-daemon",
        "health_interval_s": 0.5,
        **more,
    }


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident set size of a process, from /proc (Linux); ``field="VmHWM"``: its peak."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} for pid {pid}")


class DaemonProcess:
    """``edge-lstm run [--config FILE] ARGS`` as a child process; ``start()`` returns at once
    (wait with ``observer.Observer.wait_online``)."""

    def __init__(
        self,
        workdir: Path,
        settings: Mapping[str, object] | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        name = f"daemon-{uuid.uuid4().hex[:6]}"
        self.workdir = workdir
        self.settings = dict(settings or {})
        self.args = list(args)
        if settings is not None:
            self.config_path: Path | None = workdir / f"{name}.toml"
            self.config_path.write_text(to_toml(self.settings))
            self.args[:0] = ["--config", str(self.config_path)]
        else:
            self.config_path = None
        self.env = dict(env or {})
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, extra_env: Mapping[str, str] | None = None) -> DaemonProcess:
        """Start the process (again, after a stop or kill); returns at once."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_LSTM_")}
        env.pop("NOTIFY_SOCKET", None)
        env.update(self.env)
        env.update(extra_env or {})
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1}\n".encode())
            self.proc = subprocess.Popen(
                [*edge_lstm_command(), "run", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        """The running process id."""
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> int:
        """Resident memory of the daemon in bytes."""
        return rss_bytes(self.pid)

    def peak_rss(self) -> int:
        """The most resident memory the daemon has had so far, in bytes."""
        return rss_bytes(self.pid, "VmHWM")

    def log(self) -> str:
        """Everything the daemon wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 3) -> str:
        """The last lines of the log on one line (for error messages)."""
        return " | ".join(self.log().strip().splitlines()[-lines:])

    def send_signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` (e.g. SIGHUP: reload the model) to the running process."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, like a power cut for the process."""
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=WAIT_S)

    def terminate(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM and wait; the exit code, -9 if it had to be killed after ``timeout_s``,
        None if it never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill9()
                return -9
        return self.proc.returncode

    def wait_exit(self, timeout_s: float = WAIT_S) -> int | None:
        """Exit code once the process ends, None if it is still running after ``timeout_s``."""
        assert self.proc is not None, "not started"
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def cleanup(self) -> None:
        """Make sure the process is gone (finally blocks)."""
        self.kill9()
