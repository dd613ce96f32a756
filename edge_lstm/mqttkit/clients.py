"""Plain paho clients: a recording subscriber, a QoS 1 publisher, a topic's retained message.

Bare paho on purpose: the bench compares the daemon with what paho alone receives, so these
clients do nothing per message but record it. (The daemon's own MQTT code is
``edge_lstm.daemon.mqtt``.) Every wait is bounded.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ..errors import BrokerError
from .broker import Address

WAIT_S = 30.0  # generous: a loaded 2-core CI box

ClientSetup = Callable[[paho.Client], None]
"""Applied to a client before it connects (TLS, credentials)."""


def unique_prefix(name: str = "t") -> str:
    """A topic prefix nobody else uses, e.g. ``t-3f2a9c1b``."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def wait_until(
    predicate: Callable[[], bool], timeout_s: float = WAIT_S, step_s: float = 0.05
) -> bool:
    """Poll ``predicate`` until true or ``timeout_s``; its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()


def new_client(
    client_id: str | None, setup: ClientSetup | None, mqtt5: bool = False
) -> paho.Client:
    """A paho client; a given ``client_id`` means a persistent session (the broker keeps QoS 1
    messages for it while it is away; MQTT 5: see ``connect_args``)."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"edge-lstm-kit-{uuid.uuid4().hex[:8]}",
        clean_session=None if mqtt5 else client_id is None,
        protocol=paho.MQTTv5 if mqtt5 else paho.MQTTv311,
    )
    # Back quickly after a broker restart: tests restart brokers on purpose.
    client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
    if setup is not None:
        setup(client)
    return client


def connect_args(persistent: bool, mqtt5: bool) -> dict[str, Any]:
    """MQTT 5's persistent session, as the daemon asks for it: clean start off, an expiry."""
    if not mqtt5:
        return {}
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600 if persistent else 0
    return {"clean_start": not persistent, "properties": props}


def connect(
    client: paho.Client,
    broker: Address,
    timeout_s: float = WAIT_S,
    on_connected: Callable[[paho.Client], None] | None = None,
    **args: Any,
) -> float:
    """Connect and start the network loop; the wall-clock time of the CONNACK.

    ``on_connected`` runs on every (re)connect, before the CONNACK is reported: subscribe there.
    """
    connected = threading.Event()
    at: list[float] = []
    failure: list[str] = []

    def on_connect(c: paho.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        if reason.is_failure:
            failure.append(str(reason))
        elif on_connected is not None:
            on_connected(c)
        at.append(time.time())
        connected.set()

    client.on_connect = on_connect
    where = f"{broker.host}:{broker.port}"
    try:
        client.connect(broker.host, broker.port, keepalive=10, **args)
    except OSError as exc:
        raise BrokerError(f"cannot connect to MQTT broker {where} ({exc})") from exc
    client.loop_start()
    if not connected.wait(timeout_s) or failure:
        client.loop_stop()
        why = failure[0] if failure else f"no answer within {timeout_s:.0f} s"
        raise BrokerError(f"MQTT broker {where} refused the connection ({why})")
    return at[0]


@dataclass(frozen=True)
class Message:
    """One message and the wall-clock time it was received (or published, for a fake link)."""

    at: float
    topic: str
    payload: bytes
    retain: bool
    qos: int

    def json(self) -> Any:
        return json.loads(self.payload)


class Recorder:
    """Subscribes (again on every reconnect) and records every message, or hands it on."""

    def __init__(
        self,
        broker: Address,
        topics: Sequence[str],
        qos: int = 1,
        on_message: Callable[[Message], None] | None = None,
        client_id: str | None = None,
        setup: ClientSetup | None = None,
        mqtt5: bool = False,
    ) -> None:
        self.broker, self.topics, self.qos = broker, list(topics), qos
        self.messages: list[Message] = []
        self._callback = on_message
        self._lock = threading.Lock()
        self._client = new_client(client_id, setup, mqtt5)
        self._connect_args = connect_args(client_id is not None, mqtt5)
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._client.on_subscribe = lambda *_a: self._subscribed.set()
        self.connected_at = 0.0

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        message = Message(
            time.time(), msg.topic, bytes(msg.payload), bool(msg.retain), int(msg.qos)
        )
        if self._callback is not None:
            self._callback(message)
            return
        with self._lock:
            self.messages.append(message)

    def start(self, timeout_s: float = WAIT_S) -> Recorder:
        """Connect and subscribe; returns once the broker confirmed the subscription."""

        def subscribe(client: paho.Client) -> None:
            client.subscribe([(t, self.qos) for t in self.topics])

        self.connected_at = connect(
            self._client, self.broker, timeout_s, subscribe, **self._connect_args
        )
        if not self._subscribed.wait(timeout_s):
            self.close()
            where = f"{self.broker.host}:{self.broker.port}"
            raise BrokerError(f"MQTT broker {where} did not confirm the subscription")
        return self

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def snapshot(self) -> list[Message]:
        with self._lock:
            return list(self.messages)

    def on(self, topic: str) -> list[Message]:
        """The messages received on exactly ``topic``."""
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

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

    def close(self) -> None:
        """Disconnect (with a ``client_id``, the broker keeps the session)."""
        self._client.disconnect()
        self._client.loop_stop()


MAX_UNACKNOWLEDGED = 50_000
"""Most QoS 1 messages a :class:`Publisher` keeps unacknowledged (sent or queued). paho numbers
each one with a 16-bit id when it is published and keeps them in a dict by id, so the 65,536th
replaces the first without a word if that one is still waiting (eclipse-paho/paho.mqtt.python
#377): a bench publishing 73,000 readings at full speed lost 6,389 of them. The daemon's own
client has a bound of the same size (``daemon/mqtt.py``), but drops and counts the forecasts
past it instead of waiting."""


class Publisher:
    """A connected QoS 1 publisher with a generous in-flight window and a queue of up to
    ``MAX_UNACKNOWLEDGED`` messages.

    paho queues what is published while the broker is away and sends it after reconnecting; a
    given ``client_id`` keeps the session (and its in-flight messages) across that. A publish
    past the limit waits for acknowledgements (the broker back, or catching up) rather than
    lose a message.
    """

    def __init__(
        self,
        broker: Address,
        client_id: str | None = None,
        setup: ClientSetup | None = None,
        timeout_s: float = WAIT_S,
    ) -> None:
        self._client = new_client(client_id, setup)
        # paho's default window of 20 unacknowledged QoS 1 messages caps a burst at the
        # round-trip rate; the broker, not the publisher, should be what is measured.
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        # Message ids the broker has not acknowledged; ``MQTTMessageInfo.is_published()`` cannot
        # tell, since it raises for a message published while disconnected (queued all the same).
        self._unacked: set[int] = set()
        self._early: set[int] = set()  # acknowledged before publish() returned its id
        self._lock = threading.Lock()
        self._client.on_publish = self._on_publish
        connect(self._client, broker, timeout_s)

    def _on_publish(self, _c: paho.Client, _u: object, mid: int, _rc: object, _p: object) -> None:
        with self._lock:
            if mid in self._unacked:
                self._unacked.remove(mid)
            else:
                self._early.add(mid)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        """Queue one message (while the broker is away paho keeps it and sends it later); with
        ``MAX_UNACKNOWLEDGED`` waiting already, first wait until one is acknowledged."""
        if qos and self.unacknowledged() >= MAX_UNACKNOWLEDGED:
            while not wait_until(lambda: self.unacknowledged() < MAX_UNACKNOWLEDGED, 1.0, 0.005):
                pass  # the broker away: as paho would, keep it (and the caller) waiting
        mid = self._client.publish(topic, payload, qos=qos, retain=retain).mid
        with self._lock:
            if mid in self._early:
                self._early.remove(mid)
            else:
                self._unacked.add(mid)

    def unacknowledged(self) -> int:
        """Messages the broker has not acknowledged yet."""
        with self._lock:
            return len(self._unacked)

    def wait_all_acked(self, timeout_s: float = 60.0) -> bool:
        """True once the broker acknowledged every message published so far."""
        return wait_until(lambda: self.unacknowledged() == 0, timeout_s, 0.02)

    def close(self, flush_timeout_s: float = 0.0) -> int:
        """Wait up to ``flush_timeout_s`` for the acknowledgements, disconnect; the unacked."""
        self.wait_all_acked(flush_timeout_s)
        left = self.unacknowledged()
        self._client.disconnect()
        self._client.loop_stop()
        return left


def retained(
    broker: Address, topic: str, timeout_s: float = 10.0, setup: ClientSetup | None = None
) -> bytes | None:
    """The retained message on ``topic`` as a fresh subscriber sees it (None: there is none)."""
    got: list[bytes] = []
    done = threading.Event()

    def on_message(message: Message) -> None:
        if message.retain:
            got.append(message.payload)
            done.set()

    recorder = Recorder(broker, [topic], on_message=on_message, setup=setup).start(timeout_s)
    done.wait(timeout_s)
    recorder.close()
    return got[-1] if got else None
