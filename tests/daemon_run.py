"""Helpers for end-to-end daemon tests: ``edge-lstm run`` as a subprocess, a collecting subscriber.

Real parts only: a real ``mosquitto`` (tests/mosquitto.py), the real CLI in a child process,
real paho clients on the test side.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

WAIT_S = 30.0  # generous: a loaded 2-core CI box


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Collector:
    """Subscribes to ``topics`` (QoS 1, persistent session) and keeps every message."""

    def __init__(
        self,
        host: str,
        port: int,
        topics: Sequence[str],
        persistent: bool = True,
        setup: Callable[[paho.Client], None] | None = None,
    ) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"collector-{uuid.uuid4().hex[:8]}",
            clean_session=not persistent,
        )
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        if setup is not None:
            setup(self.client)  # TLS, credentials
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._subscribed.wait(WAIT_S):
            raise RuntimeError("collector could not subscribe")

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Publisher:
    """A QoS 1 publisher; paho queues messages while the broker is away and sends them later."""

    def __init__(
        self, host: str, port: int, setup: Callable[[paho.Client], None] | None = None
    ) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}"
        )
        if setup is not None:
            setup(self.client)
        self.client.reconnect_delay_set(1, 2)
        self.client.max_queued_messages_set(0)
        self.sent: set[int] = set()
        self.acked: set[int] = set()
        self._lock = threading.Lock()
        self.client.on_publish = self._on_publish
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_publish(self, c: paho.Client, u: object, mid: int, rc: object, p: object) -> None:
        with self._lock:
            self.acked.add(mid)

    def send(self, topic: str, payload: bytes | str) -> None:
        # While the broker is away publish() answers NO_CONN but keeps the message queued.
        info = self.client.publish(topic, payload, qos=1)
        with self._lock:
            self.sent.add(info.mid)

    def wait_all(self, timeout_s: float = WAIT_S) -> None:
        """Until the broker has acknowledged every message sent so far."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self.sent <= self.acked:
                    return
            time.sleep(0.02)
        raise AssertionError(f"broker acknowledged {len(self.acked)} of {len(self.sent)} messages")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(host: str, port: int, topic: str, timeout_s: float = 10.0) -> bytes | None:
    """The retained message on ``topic`` as a fresh subscriber sees it."""
    got: list[bytes] = []
    done = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"ret-{uuid.uuid4().hex[:8]}")

    def on_message(c: paho.Client, u: object, msg: paho.MQTTMessage) -> None:
        if msg.retain:
            got.append(bytes(msg.payload))
            done.set()

    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
    client.on_message = on_message
    client.connect(host, port)
    client.loop_start()
    done.wait(timeout_s)
    client.disconnect()
    client.loop_stop()
    return got[-1] if got else None


class DaemonProcess:
    """``edge-lstm run`` in a child process; stderr goes to a file for assertion messages."""

    def __init__(
        self, args: Sequence[str], workdir: Path, env: dict[str, str] | None = None
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = workdir / f"daemon-{uuid.uuid4().hex[:6]}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_LSTM_")}
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.update(env or {})
        code = "from edge_lstm.cli.app import app; app()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "run", *args],
            stdout=subprocess.DEVNULL,
            stderr=self.stderr_path.open("wb"),
            env=full_env,
        )

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def terminate(self, timeout_s: float = 15.0) -> int:
        """SIGTERM and wait; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"daemon ignored SIGTERM for {timeout_s}s:\n{self.log()}"
            ) from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
