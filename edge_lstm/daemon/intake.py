"""The bounded hand-over of received messages from the link to the worker.

``queue.Queue`` takes a lock and notifies a condition for every ``put`` and every ``get``
(about 1.5 µs a message on the bench machine, beside some 60 µs of everything else). Here the
producer only appends to a ``deque`` (atomic under the GIL) and sets an event only when the
worker sleeps on it; the worker takes a whole batch at once.

One consumer (the worker); producers are the network thread and the worker itself (reading on
its own thread at a release). ``maxsize`` is a bound on memory, not an exact count: two
producers racing at the limit may pass it by one message each.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Intake(Generic[T]):
    """A bounded FIFO with ``put_nowait`` (``queue.Full`` when full) and batch ``take``."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, not {maxsize}")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._arrived = threading.Event()
        """Set by a ``put`` while the worker waits for it."""
        self._waiting = False
        # No lost wake-up: a producer appends, then reads ``_waiting``; the worker sets
        # ``_waiting``, then looks at the items. Whatever the interleaving, one of them sees
        # the other's write (the GIL orders them).

    def qsize(self) -> int:
        """Messages waiting now."""
        return len(self._items)

    def put_nowait(self, item: T) -> None:
        """Append ``item``; ``queue.Full`` when ``maxsize`` messages wait already."""
        if len(self._items) >= self.maxsize:
            raise queue.Full
        self._items.append(item)
        if self._waiting:
            self._arrived.set()

    def put(self, item: T, timeout: float) -> None:
        """Append ``item``, waiting up to ``timeout`` seconds for room; ``queue.Full`` after."""
        deadline = time.monotonic() + timeout
        while len(self._items) >= self.maxsize:
            if time.monotonic() >= deadline:
                raise queue.Full
            time.sleep(0.001)
        self.put_nowait(item)

    def take(self, limit: int, timeout_s: float, linger_s: float = 0.0) -> list[T]:
        """Up to ``limit`` items, oldest first.

        Waits up to ``timeout_s`` for the first (empty list if none came), then, while fewer
        than ``limit``, up to ``linger_s`` more for others to join it.
        """
        if not self._wait(timeout_s):
            return []
        batch = self._pop(limit, [])
        if len(batch) < limit and linger_s > 0:
            deadline = time.monotonic() + linger_s
            while len(batch) < limit and self._wait(deadline - time.monotonic()):
                self._pop(limit, batch)
        return batch

    def _wait(self, timeout_s: float) -> bool:
        """True once an item waits (False after ``timeout_s`` without one)."""
        if self._items:
            return True
        if timeout_s <= 0:
            return False
        self._arrived.clear()
        self._waiting = True
        try:
            if not self._items:
                self._arrived.wait(timeout_s)
        finally:
            self._waiting = False
        return bool(self._items)

    def _pop(self, limit: int, batch: list[T]) -> list[T]:
        items = self._items
        take = min(limit - len(batch), len(items))
        popleft = items.popleft
        batch.extend(popleft() for _ in range(take))
        return batch
