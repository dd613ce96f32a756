"""What the daemon needs of its broker connection: the surface ``MqttLink`` and a test fake share.

The service talks to the broker only through this protocol, so the pipeline and service can be
tested in process with a fake link, and the one module that imports paho stays behind it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol

from ..stream.readings import Inbound
from .config import Config
from .intake import Intake


class Wakeups(Protocol):
    """The part of a link that batches what the worker sends into one network wake-up."""

    def hold_wakeups(self) -> None:
        """Batch what follows (acks, publishes) into one wake-up of the network side."""
        ...

    def release_wakeups(self) -> None:
        """End a batch started by ``hold_wakeups``: send it. ``MqttLink`` also reads, on the
        caller's thread, what arrived meanwhile (onto the intake queue)."""
        ...


@contextmanager
def one_wakeup(link: Wakeups) -> Iterator[None]:
    """Acks and publishes inside the block wake the network side once, when it ends."""
    link.hold_wakeups()
    try:
        yield
    finally:
        link.release_wakeups()


class Link(Wakeups, Protocol):
    """A started connection: readings arrive on the intake queue, the worker publishes and acks."""

    connected: threading.Event
    dropped: int
    publish_dropped: int
    last_error: str

    @property
    def reconnects(self) -> int:
        """Successful connects after the first."""
        ...

    def start(self) -> None:
        """Start connecting in the background; return at once."""
        ...

    def network_problem(self, now_mono: float) -> tuple[bool, str]:
        """(fatal, why): whether the network side can no longer make progress, and why."""
        ...

    def pause_intake(self) -> None:
        """Stop handing readings to the intake queue (shutdown)."""
        ...

    def stop(self, timeout_s: float = 3.0) -> None:
        """Publish offline, disconnect and join the network side."""
        ...

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> bool:
        """Queue one publish; False when it was dropped (the queue is full or we are offline)."""
        ...

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge one received message, once the worker has made it durable."""
        ...


class LinkFactory(Protocol):
    """How the daemon makes its link (``MqttLink`` in production, a fake in tests)."""

    def __call__(
        self,
        config: Config,
        subscriptions: list[str],
        status_topic: str,
        intake: Intake[Inbound],
        on_connected: Callable[[], None] | None = None,
        extra_handlers: Mapping[str, Callable[[bytes], None]] | None = None,
    ) -> Link: ...
