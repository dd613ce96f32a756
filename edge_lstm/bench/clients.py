"""Plain paho clients for the bench and the demo: a recording subscriber and a paced publisher.

Bare paho on purpose: the bench compares the daemon with what paho alone receives, so these
clients do nothing per message but record it. (The daemon's own MQTT code is
``edge_lstm.daemon.mqtt``.)
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from ..errors import BrokerError

V2 = CallbackAPIVersion.VERSION2


def _connect(client: paho.Client, host: str, port: int, timeout_s: float) -> float:
    """Connect and start the network loop; returns the wall-clock time of the CONNACK."""
    connected = threading.Event()
    at: list[float] = []
    failure: list[str] = []

    def on_connect(_c: paho.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        if reason.is_failure:
            failure.append(str(reason))
        at.append(time.time())
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise BrokerError(f"cannot connect to MQTT broker {host}:{port} ({exc})") from exc
    client.loop_start()
    if not connected.wait(timeout_s) or failure:
        client.loop_stop()
        why = failure[0] if failure else f"no answer within {timeout_s:.0f} s"
        raise BrokerError(f"MQTT broker {host}:{port} refused the connection ({why})")
    return at[0]


class Recorder:
    """Subscribes and records ``(receive wall time, topic, payload)`` for every message."""

    def __init__(
        self,
        host: str,
        port: int,
        topics: Sequence[str],
        qos: int = 1,
        on_message: Callable[[float, str, bytes], None] | None = None,
        client_id: str | None = None,
    ) -> None:
        self.host, self.port, self.topics, self.qos = host, port, list(topics), qos
        self.messages: list[tuple[float, str, bytes]] = []
        self._callback = on_message
        self._lock = threading.Lock()
        # A fixed client id means a persistent session: the broker keeps QoS 1 messages for it
        # while it is away (the bench uses that to hand every consumer the same backlog).
        self.client_id = client_id or f"edge-lstm-rec-{uuid.uuid4().hex[:8]}"
        self._client = paho.Client(V2, client_id=self.client_id, clean_session=client_id is None)
        self._client.on_message = self._on_message
        self.connected_at = 0.0
        self._subscribed = threading.Event()
        self._client.on_subscribe = lambda *_a: self._subscribed.set()

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        now = time.time()
        payload = bytes(msg.payload)
        if self._callback is not None:
            self._callback(now, msg.topic, payload)
            return
        with self._lock:
            self.messages.append((now, msg.topic, payload))

    def start(self, timeout_s: float = 10.0) -> Recorder:
        """Connect and subscribe; returns once the broker confirmed the subscription."""
        self.connected_at = _connect(self._client, self.host, self.port, timeout_s)
        self._client.subscribe([(t, self.qos) for t in self.topics])
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise BrokerError(
                f"MQTT broker {self.host}:{self.port} did not confirm the subscription"
            )
        return self

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def snapshot(self) -> list[tuple[float, str, bytes]]:
        with self._lock:
            return list(self.messages)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def wait_for(self, count: int, timeout_s: float, idle_s: float = 5.0) -> bool:
        """Wait until ``count`` messages arrived, or nothing new came for ``idle_s``."""
        deadline = time.monotonic() + timeout_s
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            now_count = self.count()
            if now_count >= count:
                return True
            if now_count != last:
                last, last_change = now_count, time.monotonic()
            elif time.monotonic() - last_change > idle_s:
                return False
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class Publisher:
    """A connected publishing client (QoS 1 by default) with a generous in-flight window."""

    def __init__(self, host: str, port: int, timeout_s: float = 10.0) -> None:
        self._client = paho.Client(V2, client_id=f"edge-lstm-pub-{uuid.uuid4().hex[:8]}")
        # paho's default window of 20 unacknowledged QoS 1 messages caps a burst at the
        # round-trip rate; the broker, not the publisher, should be what is measured.
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._pending: list[paho.MQTTMessageInfo] = []
        _connect(self._client, host, port, timeout_s)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        self._pending.append(self._client.publish(topic, payload, qos=qos, retain=retain))
        if len(self._pending) > 10_000:  # keep only what may still be unacknowledged
            self._pending = [i for i in self._pending if not i.is_published()]

    def unacknowledged(self) -> int:
        self._pending = [i for i in self._pending if not i.is_published()]
        return len(self._pending)

    def stop(self, flush_timeout_s: float = 30.0) -> int:
        """Wait (bounded) until the broker acknowledged everything, disconnect; returns unacked."""
        deadline = time.monotonic() + flush_timeout_s
        while self.unacknowledged() and time.monotonic() < deadline:
            time.sleep(0.01)
        left = self.unacknowledged()
        self._client.disconnect()
        self._client.loop_stop()
        return left
