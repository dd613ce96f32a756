"""An MQTT broker inside this process, for ``edge-lstm demo`` on a machine without Mosquitto.

The only module that imports ``amqtt`` (the ``demo`` extra). The broker runs on its own asyncio
event loop in a daemon thread and listens on loopback only, by default on a free port the kernel
picked for us (amqtt does not tell which port it bound when given port 0, except through a
private attribute; a port taken between our pick and amqtt's bind is retried with a new one).
Not meant for production: use Mosquitto there.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from types import TracebackType
from typing import Any

from ..errors import BrokerError

_START_TIMEOUT_S = 10.0
_PORT_ATTEMPTS = 5


def _free_port(host: str) -> int:
    """A port nothing listens on right now (the kernel's pick for a socket bound to port 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """A loopback-only amqtt broker in a background thread; use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> EmbeddedBroker:
        """Start the broker and return once it accepts connections; ``BrokerError`` otherwise."""
        if self._thread is not None:
            raise BrokerError("embedded broker already started")
        try:
            import amqtt.broker  # noqa: F401  (fail here with a clear message, not in the thread)
        except ImportError as exc:
            raise BrokerError(
                "the embedded broker needs amqtt: pip install 'edge-lstm[demo]' "
                "(or pass --broker HOST:PORT to use a running Mosquitto)"
            ) from exc
        # amqtt logs every connect and packet at INFO; the demo's terminal is for the table.
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run, args=(loop,), name="edge-lstm-embedded-broker", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            self.stop()
            raise BrokerError(f"embedded broker did not start within {_START_TIMEOUT_S:.0f} s")
        if self._error is not None:
            error = self._error
            self.stop()
            raise BrokerError(f"embedded broker failed to start: {error}") from error
        return self

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_broker())
        except BaseException as exc:  # reported to start() through _error
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _start_broker(self) -> None:
        from amqtt.broker import Broker

        attempts = 1 if self._requested_port else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port or _free_port(self.host)
            config: dict[str, Any] = {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{port}"}},
                # No $SYS publisher and no packet logger: only anonymous access, on loopback.
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
                },
            }
            broker = Broker(config, loop=asyncio.get_running_loop())
            try:
                await broker.start()
            except Exception:  # amqtt wraps the bind error in its own exception type
                if attempt == attempts:
                    raise
                continue
            self._broker, self.port = broker, port
            return

    def stop(self, timeout_s: float = 10.0) -> None:
        """Shut the broker down and join its thread; safe to call twice."""
        loop, thread, broker = self._loop, self._thread, self._broker
        self._broker = None
        if loop is None or thread is None:
            return
        if broker is not None and not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)
            try:
                future.result(timeout_s)
            except Exception as exc:  # a failed shutdown must not hide the caller's own error
                logging.getLogger(__name__).warning("embedded broker shutdown: %s", exc)
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        self._loop = None
        self._thread = None

    @property
    def address(self) -> str:
        """``HOST:PORT`` as the daemon's ``--broker`` option takes it."""
        return f"{self.host}:{self.port}"

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
