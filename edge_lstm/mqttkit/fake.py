"""``FakeLink``: the daemon's broker link in process, for tests of the service and pipeline.

``Daemon(config, link_factory=FakeLinks())`` runs the real daemon (worker, pipeline, journal,
snapshots) with this link instead of ``MqttLink``. A test ``deliver``s messages as the broker
would (only on subscribed topics, QoS 1, each with a message id), then reads what the daemon
``published`` and which message ids it ``acked``. Where a real broker matters (reconnects,
sessions, TLS), tests use ``broker.Mosquitto`` instead.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from paho.mqtt.client import topic_matches_sub

from ..daemon.intake import Intake
from ..daemon.link import Link, LinkFactory
from ..stream.readings import Inbound
from .clients import WAIT_S, Message, wait_until


class FakeLink:
    """A connected link with no network: deliveries go to the intake queue, publishes to a list."""

    def __init__(
        self,
        config: object,  # the daemon's Config; a fake has no use for it
        subscriptions: list[str],
        status_topic: str,
        intake: Intake[Inbound],
        on_connected: Callable[[], None] | None = None,
        extra_handlers: Mapping[str, Callable[[bytes], None]] | None = None,
    ) -> None:
        self.config = config
        self.subscriptions = list(subscriptions)
        self.status_topic = status_topic
        self.intake = intake
        self.on_connected = on_connected
        self.extra_handlers = dict(extra_handlers or {})
        self.connected = threading.Event()
        self.dropped = 0
        self.publish_dropped = 0
        self.last_error = ""
        self.published: list[Message] = []
        self.acked: list[int] = []
        self.paused = False
        self.stopped = False
        self._mids = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def reconnects(self) -> int:
        return 0

    # -- the Link side (called by the daemon) ----------------------------------------------------

    def start(self) -> None:
        self.publish(self.status_topic, "online", qos=1, retain=True)
        self.connected.set()
        if self.on_connected is not None:
            self.on_connected()

    def network_problem(self, now_mono: float) -> tuple[bool, str]:
        return False, ""

    def pause_intake(self) -> None:
        self.paused = True

    def stop(self, timeout_s: float = 3.0) -> None:
        self.paused = True
        self.publish(self.status_topic, "offline", qos=1, retain=True)
        self.connected.clear()
        self.stopped = True

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> bool:
        body = payload.encode() if isinstance(payload, str) else bytes(payload)
        with self._lock:
            self.published.append(Message(time.time(), topic, body, retain, qos))
        return True

    def hold_wakeups(self) -> None:
        """Nothing to batch without a network thread."""

    def release_wakeups(self) -> None:
        """Nothing to batch without a network thread."""

    def ack(self, mid: int, qos: int) -> None:
        with self._lock:
            self.acked.append(mid)

    # -- the broker side (called by a test) ------------------------------------------------------

    def deliver(self, topic: str, payload: bytes | str, qos: int = 1) -> int:
        """Hand the daemon one message as the broker would; its message id.

        ``ValueError`` when the daemon has no subscription that matches ``topic`` (a broker
        would not deliver it), or once intake is paused (the broker would keep it).
        """
        body = payload.encode() if isinstance(payload, str) else bytes(payload)
        if topic in self.extra_handlers:
            self.extra_handlers[topic](body)
            return 0
        if not any(topic_matches_sub(sub, topic) for sub in self.subscriptions):
            raise ValueError(f"{topic!r} matches none of the subscriptions {self.subscriptions}")
        if self.paused:
            raise ValueError("intake is paused: the daemon is stopping")
        mid = next(self._mids)
        self.intake.put(Inbound(topic, body, mid, qos, time.time(), time.monotonic()), timeout=5)
        return mid

    def on(self, topic: str) -> list[Message]:
        """What the daemon published on exactly ``topic``, oldest first."""
        with self._lock:
            return [p for p in self.published if p.topic == topic]

    def acked_all(self, mids: list[int], timeout_s: float = WAIT_S) -> bool:
        """True once every one of ``mids`` has been acknowledged."""

        def done() -> bool:
            with self._lock:
                return set(mids) <= set(self.acked)

        return wait_until(done, timeout_s, 0.01)

    def wait_for(
        self, predicate: Callable[[FakeLink], bool], what: str, timeout_s: float = WAIT_S
    ) -> None:
        """Until ``predicate(self)``; ``AssertionError`` naming ``what`` after ``timeout_s``."""
        if not wait_until(lambda: predicate(self), timeout_s, 0.01):
            raise AssertionError(f"timed out waiting for {what}")


class FakeLinks:
    """A ``LinkFactory`` that makes ``FakeLink``s and keeps the latest as ``link``."""

    def __init__(self) -> None:
        self.made: list[FakeLink] = []

    @property
    def link(self) -> FakeLink:
        assert self.made, "the daemon has not made its link yet (call start())"
        return self.made[-1]

    def __call__(self, *args: Any, **kwargs: Any) -> Link:
        """``LinkFactory``'s signature (checked below, on ``FakeLink`` itself)."""
        link = FakeLink(*args, **kwargs)
        self.made.append(link)
        return link


_FAKE_LINK_IS_A_LINK_FACTORY: LinkFactory = FakeLink
