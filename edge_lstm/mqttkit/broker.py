"""A real Mosquitto on a free loopback port: generated config, start, stop, kill, restart.

Options cover what the tests and the bench need: persistence (QoS 1 messages survive a broker
restart), a password file (``mosquitto_passwd``) and TLS (``pki.Pki``). Queues are unlimited:
mosquitto's default (1,000 queued QoS 1 messages per client) would drop a burst that a slow or
absent subscriber has not read yet, and neither a test nor the bench is about that cap.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from ..errors import BrokerError
from ..stream.address import parse_broker
from .pki import MissingTool, Pki

# Generous: a cold start on a loaded 2-core CI box can take a second or two.
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


class Address(Protocol):
    """Where a broker listens (a ``Mosquitto`` is one, ``stream.address.BrokerAddress`` another)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


def mosquitto_binary() -> str | None:
    """The mosquitto executable (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("mosquitto")
    if found is None and Path("/usr/sbin/mosquitto").exists():
        return "/usr/sbin/mosquitto"
    return found


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_accepts(host: str, port: int, timeout_s: float = 0.2) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


class Mosquitto:
    """One ``mosquitto`` process on a loopback port; the port is kept across restarts."""

    host = "127.0.0.1"

    def __init__(
        self,
        workdir: Path,
        *,
        persistence: bool = False,
        users: dict[str, str] | None = None,
        tls: Pki | None = None,
        require_client_cert: bool = False,
        port: int | None = None,
        extra_config: str = "",
    ) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise MissingTool("mosquitto is not installed (apt install mosquitto)")
        self.binary = binary
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port if port is not None else free_port()
        self.persistence = persistence
        self.users = dict(users or {})
        self.tls = tls
        self.require_client_cert = require_client_cert
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._write_config(extra_config)

    def _write_config(self, extra: str) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            # Mosquitto drops root privileges to user "mosquitto" unless told to stay who we are;
            # that user could not write our temp dir.
            f"user {getpass.getuser()}",
            f"log_dest file {self.log_path}",
            *(f"log_type {t}" for t in ("error", "warning", "notice", "information")),
            "connection_messages true",
            "log_timestamp true",
            "max_queued_messages 0",
            "max_inflight_messages 0",
        ]
        if self.persistence:
            pdir = self.workdir / "persist"
            pdir.mkdir(exist_ok=True)
            # Save after every change: a SIGKILLed broker then loses as little as possible.
            lines += [
                "persistence true",
                f"persistence_location {pdir}/",
                "autosave_on_changes true",
                "autosave_interval 1",
            ]
        lines += self._password_lines() if self.users else ["allow_anonymous true"]
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca_cert}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
                f"require_certificate {'true' if self.require_client_cert else 'false'}",
            ]
        self.config_path.write_text("\n".join(lines) + "\n" + extra)

    def _password_lines(self) -> list[str]:
        passwd = shutil.which("mosquitto_passwd")
        if passwd is None:
            raise MissingTool("mosquitto_passwd is not installed (apt install mosquitto)")
        pw = self.workdir / "passwd"
        pw.write_text("")
        for user, password in self.users.items():
            subprocess.run(
                [passwd, "-b", str(pw), user, password], check=True, capture_output=True, timeout=30
            )
        return [f"password_file {pw}", "allow_anonymous false"]

    @property
    def url(self) -> str:
        """``host:port``, the form ``edge-lstm run --broker`` takes."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def version(self) -> str:
        """The first line of ``mosquitto -h``, e.g. ``mosquitto version 2.0.11``."""
        out = subprocess.run([self.binary, "-h"], capture_output=True, text=True, timeout=10)
        return out.stdout.split("\n")[0].strip()

    def log(self) -> str:
        """The broker's log so far (for assertion messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> Mosquitto:
        """Start the broker and wait until its port accepts TCP connections."""
        if self.running:
            return self
        stderr_path = self.workdir / "stderr.log"
        with stderr_path.open("ab") as stderr:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = stderr_path.read_text(errors="replace")
                raise BrokerError(f"mosquitto exited at start: {err}\n{self.log()}")
            if port_accepts(self.host, self.port):
                return self
            time.sleep(0.02)
        self.kill()
        raise BrokerError(f"mosquitto did not accept on port {self.port}:\n{self.log()}")

    def _end(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        # Linux may keep a just-closed listening port busy for a moment; mosquitto sets
        # SO_REUSEADDR, so all we need is that nobody accepts there any more.
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and port_accepts(self.host, self.port, 0.05):
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop cleanly (SIGTERM: mosquitto writes its persistence file) and wait for exit."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Kill hard (SIGKILL: no goodbye, no final persistence save) and wait for exit."""
        self._end(signal.SIGKILL)

    def restart(self, *, hard: bool = False) -> Mosquitto:
        """Stop (or kill, when ``hard``) and start again on the same port."""
        self._end(signal.SIGKILL if hard else signal.SIGTERM)
        return self.start()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


@contextmanager
def broker_at(address: str | None, workdir: Path) -> Iterator[tuple[Address, str]]:
    """``(address, description)`` of the broker given, or of a Mosquitto started for the block."""
    if address:
        yield parse_broker(address), f"given: {address}"
        return
    with Mosquitto(workdir / "mosquitto") as broker:
        yield broker, f"started: {broker.version()}"
