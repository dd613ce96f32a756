"""The daemon's MQTT network thread: paho's external-loop API driven by our own selector.

paho documents two ways to run its network side: ``loop_start()`` (its own thread) or an
external loop that waits on ``socket()`` and calls ``loop_read``/``loop_write``/``loop_misc``
(how Home Assistant and aiomqtt drive it). The external loop is used because:

- the worker's batch wakes the network side once: paho announces queued output through
  ``on_socket_register_write``, and between ``hold()`` and ``release()`` the worker sends it
  itself when it releases;
- one thread reads at a time: paho reads a packet with three ``recv()`` calls, each a GIL
  hand-over, which against a busy worker cost a switch interval each. While the worker holds
  messages, it reads the next ones itself when it releases (every batch, and at least every few
  seconds); this thread reads while the worker waits, writes, pings, and reconnects with our
  own backoff;
- it is our thread, so whether it is alive or stuck is known without paho's internals.

No paho import here: the client is used through the small public surface below.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

TURN_S = 1.0
"""Longest wait for the socket: ``loop_misc`` (keepalive pings) runs at least this often."""
READ_BURST_PACKETS = 256
"""Packets read per wake-up at most, so that writes (acknowledgements) are not starved."""
IO_WAIT_S = 0.1
"""How long ``release()`` waits for the network thread's read burst (never for a connect)."""


class ExternalLoopClient(Protocol):
    """The documented external-loop surface of ``paho.mqtt.client.Client`` (2.x)."""

    def socket(self) -> Any: ...
    def loop_read(self, max_packets: int = 1) -> int: ...
    def loop_write(self) -> int: ...
    def loop_misc(self) -> int: ...
    def want_write(self) -> bool: ...
    def reconnect(self) -> int: ...


class NetworkLoop(threading.Thread):
    """Connects, reads, writes and keeps the connection alive until ``stop()``.

    ``delivered()`` counts what the client handed to the application (its message callback);
    a read that delivered nothing new ends a read burst (paho's ``loop_read`` reports no
    difference between "read a packet" and "nothing to read").
    """

    def __init__(
        self,
        client: ExternalLoopClient,
        delivered: Callable[[], int],
        on_connect_error: Callable[[BaseException], None],
        backoff_s: tuple[float, float],
        worker_reads: bool = False,
    ) -> None:
        super().__init__(name="edge-lstm-mqtt", daemon=True)
        self.client = client
        self.delivered = delivered
        self.worker_reads = worker_reads
        """The worker calls ``release(read_max > 0)`` after every batch (and at least every
        few seconds): this thread then leaves reading to it while it has messages."""
        self.on_connect_error = on_connect_error
        self.backoff_min_s, self.backoff_max_s = backoff_s
        self.delay_s = self.backoff_min_s
        self.turned_at = time.monotonic()
        """Monotonic time of the loop's latest turn (the watchdog's "network alive" signal)."""
        self.error: BaseException | None = None
        """What ended the thread, if something did."""
        self._stopping = threading.Event()
        self._stop_by = 0.0
        self._io = threading.Lock()
        """Serialises paho's loop calls between this thread and a releasing worker."""
        self._released = 0
        """``delivered()`` at the worker's latest reading ``release()``."""
        self._held_by: int | None = None
        self._wake_pending = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._sock: Any = None
        self._events = 0

    # -- any thread ----------------------------------------------------------------------------

    def on_register_write(self, *_args: object) -> None:
        """paho's ``on_socket_register_write``: output is queued (called from any thread)."""
        if self._held_by is not None and self._held_by == threading.get_ident():
            self._wake_pending = True
        else:
            self.wake()

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # full: a wake-up is already pending; or closed
            self._wake_w.send(b"\0")

    def hold(self) -> None:
        """Until ``release()``, this thread's queued packets wake the loop once."""
        self._held_by = threading.get_ident()

    def release(self, read_max: int = 0) -> None:
        """End a ``hold()``: send what it queued and read up to ``read_max`` packets, here.

        The caller's thread does the socket work itself once the network thread's read burst
        is over: no thread switch for its output, and the messages that arrived while it was
        busy are read in one go, without a GIL hand-over per recv() to a busy thread. If the
        network thread is busy longer (connecting), it is woken to do it.
        """
        self._held_by = None
        queued, self._wake_pending = self._wake_pending, False
        if not (queued or read_max):
            return
        if not self._io.acquire(timeout=IO_WAIT_S):
            if queued:
                self.wake()
            return
        try:
            client = self.client
            if client.socket() is None:
                return  # offline: paho keeps QoS 1 output for after the reconnect
            if client.want_write() and client.loop_write() != 0:
                return
            if read_max:
                self._released = self.delivered()
                self._read_burst(client, read_max)
        finally:
            self._io.release()
        if read_max and not self._worker_has_messages():
            self.wake()  # nothing for the caller: the network thread reads again

    def reading_alone(self) -> None:
        """From now on this thread reads whatever arrives (the worker has stopped reading)."""
        self.worker_reads = False
        self.wake()

    def set_backoff(self, min_s: float, max_s: float) -> None:
        """Reconnect delays from now on (the next one is ``min_s``)."""
        self.backoff_min_s, self.backoff_max_s = min_s, max(min_s, max_s)
        self.delay_s = min_s

    def reset_backoff(self) -> None:
        """A connection was accepted: the next reconnect waits the shortest delay again."""
        self.delay_s = self.backoff_min_s

    def stop(self, timeout_s: float) -> bool:
        """Let queued output (a DISCONNECT) go out, end the thread; False if it did not end."""
        self._stop_by = time.monotonic() + timeout_s
        self._stopping.set()
        self.wake()
        if self.is_alive():
            self.join(timeout_s)
        if self.is_alive():
            return False
        for sock in (self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()
        return True

    # -- the network thread --------------------------------------------------------------------

    def beat(self) -> None:
        """The loop turned (the watchdog's signal that the network side makes progress)."""
        self.turned_at = time.monotonic()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # kept for network_problem, then re-raised
            self.error = exc
            log.error("the MQTT network thread died: %r", exc, exc_info=True)
            raise

    def _run(self) -> None:
        client = self.client
        first = True
        while True:
            self.beat()
            sock = client.socket()
            self._track(sock)
            stopping = self._stopping.is_set()
            if stopping and (sock is None or time.monotonic() >= self._stop_by):
                return
            if sock is None:
                if not first:
                    if not self._sleep(self.delay_s):
                        return
                    self.delay_s = min(self.backoff_max_s, self.delay_s * 2)
                first = False
                self._connect()
                continue
            self._turn(client, sock)

    def _turn(self, client: ExternalLoopClient, sock: Any) -> None:
        # One reader at a time: while the worker has messages this thread delivered (or read
        # itself) and not yet released, it reads the next ones at its release; this thread
        # reading meanwhile would trade the GIL with it at every recv().
        reading = not self._worker_has_messages()
        try:
            want = (selectors.EVENT_READ if reading else 0) | (
                selectors.EVENT_WRITE if client.want_write() else 0
            )
            if want != self._events:
                if not want:
                    self._selector.unregister(sock)
                elif not self._events:
                    self._selector.register(sock, want)
                else:
                    self._selector.modify(sock, want)
                self._events = want
            # TLS: bytes already decrypted into the SSL object's buffer do not wake select().
            pending = sock.pending() if hasattr(sock, "pending") else 0
            events = self._selector.select(0.0 if pending else TURN_S)
        except (KeyError, ValueError, OSError):
            # Closed by a worker's read meanwhile: the next turn sees the new state (never a
            # hot spin, whatever the cause).
            self._stopping.wait(0.01)
            return
        ready = 0
        for key, mask in events:
            if key.fileobj is self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    self._wake_r.recv(4096)
            else:
                ready |= mask
        with self._io:
            if client.socket() is not sock:
                return  # a worker's read lost the connection meanwhile
            reading = reading and not self._worker_has_messages()  # it may have read meanwhile
            readable = reading and (ready & selectors.EVENT_READ or pending)
            if readable and not self._read_burst(client, READ_BURST_PACKETS):
                return  # connection lost: paho has called on_disconnect and closed the socket
            if client.want_write() and client.loop_write() != 0:
                return
            client.loop_misc()

    def _worker_has_messages(self) -> bool:
        return self.worker_reads and self.delivered() > self._released

    def _read_burst(self, client: ExternalLoopClient, limit: int) -> bool:
        """Read packets until one call delivers nothing; False when the connection was lost."""
        before = self.delivered()
        for _ in range(limit):
            if client.loop_read() != 0:
                return False
            after = self.delivered()
            if after == before:
                break
            before = after
        return True

    def _track(self, sock: Any) -> None:
        """Keep the selector watching the client's current socket."""
        if sock is self._sock:
            return
        if self._sock is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(self._sock)
        self._sock, self._events = sock, 0
        if sock is not None:
            with contextlib.suppress(ValueError, OSError):  # closed again already
                self._selector.register(sock, selectors.EVENT_READ)
                self._events = selectors.EVENT_READ

    def _connect(self) -> None:
        try:
            with self._io:
                self.client.reconnect()
        except OSError as exc:  # refused, DNS, TLS (ssl.SSLError is an OSError)
            self.on_connect_error(exc)

    def _sleep(self, seconds: float) -> bool:
        """Wait for a reconnect (turning every ``TURN_S``); False if asked to stop meanwhile."""
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            if self._stopping.wait(min(left, TURN_S)):
                return False
            self.beat()
        return True
