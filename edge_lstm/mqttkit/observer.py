"""The daemon's output topics as a test or the bench reads them: status, health, forecasts.

Reads only the published documents (``{prefix}/status``, ``{prefix}/health``,
``{prefix}/<sensor>/forecast``), never the daemon's code, so it works against any daemon.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Protocol

from .broker import Address
from .clients import WAIT_S, ClientSetup, Message, Recorder, wait_until

RAW_KEPT = 10_000


class Running(Protocol):
    """What the observer asks of the daemon it waits for (``daemon.DaemonProcess`` is one)."""

    @property
    def alive(self) -> bool: ...

    def log(self) -> str: ...


class Observer:
    """Collects what a daemon publishes under ``out_prefix``.

    With a ``client_id``, a persistent session: forecasts published while this client was cut
    off are still delivered.
    """

    def __init__(
        self,
        broker: Address,
        out_prefix: str,
        client_id: str | None = None,
        setup: ClientSetup | None = None,
    ) -> None:
        self.out_prefix = out_prefix
        self.lock = threading.Lock()
        self.forecasts: dict[str, list[dict[str, Any]]] = {}
        self.statuses: list[str] = []
        self.online_at: list[float] = []
        self.health: dict[str, Any] = {}
        self.health_at = 0.0
        self.health_count = 0
        self.raw_count = 0
        self.raw: list[bytes] = []
        self._recorder = Recorder(
            broker, [f"{out_prefix}/#"], on_message=self._on_message, client_id=client_id,
            setup=setup,
        ).start()  # fmt: skip

    def _on_message(self, msg: Message) -> None:
        topic = msg.topic[len(self.out_prefix) + 1 :]
        with self.lock:
            self.raw_count += 1
            if len(self.raw) < RAW_KEPT:
                self.raw.append(msg.topic.encode() + b" " + msg.payload)
            if topic == "status":
                if msg.retain:
                    return  # replayed by the broker on (re)subscribe: says nothing new
                status = msg.payload.decode("utf-8", "replace")
                self.statuses.append(status)
                if status == "online":
                    self.online_at.append(msg.at)
            elif topic == "health":
                self.health = json.loads(msg.payload)
                self.health_at = msg.at
                self.health_count += 1
            elif topic.endswith("/forecast"):
                doc = json.loads(msg.payload)
                self.forecasts.setdefault(doc["sensor"], []).append(doc)

    def status(self) -> str | None:
        """The latest availability message."""
        with self.lock:
            return self.statuses[-1] if self.statuses else None

    def wait_online(self, daemon: Running | None = None, timeout_s: float = WAIT_S) -> float:
        """Wait for an ``online`` after the status messages seen so far; when it arrived.

        Then also for a health document: ``online`` is published before the daemon subscribes,
        and a health message after it comes over the same connection, so once it is here the
        subscriptions are in place and a reading published now is not lost to a race.
        """
        with self.lock:
            seen, health_seen = len(self.online_at), self.health_count

        def online() -> bool:
            with self.lock:
                return len(self.online_at) > seen

        def gone() -> bool:
            return daemon is not None and not daemon.alive

        if not wait_until(lambda: online() or gone(), timeout_s) or not online():
            log = daemon.log()[-3000:] if daemon is not None else ""
            raise TimeoutError(f"daemon did not come online; log:\n{log}")
        if not wait_until(lambda: self.health_count > health_seen, timeout_s):
            raise TimeoutError("daemon came online but published no health")
        with self.lock:
            return self.online_at[seen]

    def fresh_health(self, timeout_s: float = WAIT_S, after_s: float = 0.0) -> dict[str, Any]:
        """The first health document received ``after_s`` or more after this call."""
        since = time.time() + after_s

        def fresh() -> bool:
            with self.lock:
                return self.health_at > since

        if not wait_until(fresh, timeout_s + after_s):
            raise TimeoutError("no health published")
        with self.lock:
            return dict(self.health)

    def last_obs(self, sensor: str) -> str | None:
        """``last_obs_at`` of the newest forecast for ``sensor``."""
        with self.lock:
            docs = self.forecasts.get(sensor)
            return docs[-1]["last_obs_at"] if docs else None

    def has_forecast_for(self, sensor: str, iso_time: str) -> bool:
        """True once a forecast for ``sensor`` after the bucket at ``iso_time`` arrived."""
        with self.lock:
            return any(d["last_obs_at"] == iso_time for d in self.forecasts.get(sensor, ()))

    def close(self) -> None:
        """Disconnect."""
        self._recorder.close()
