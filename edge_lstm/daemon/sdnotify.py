"""systemd notifications (``READY=1``, ``WATCHDOG=1``, ``STOPPING=1``) over ``$NOTIFY_SOCKET``.

A datagram to a unix socket, as sd_notify(3) does; nothing at all when the variable is unset
(running by hand, in tests, under other supervisors).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class Notifier:
    """Sends sd_notify messages; every method is a no-op without ``NOTIFY_SOCKET``."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        # A leading "@" is the Linux abstract namespace, spelled with a NUL byte.
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self.watchdog_interval_s: float | None = int(usec) / 1e6 / 2 if watchdog else None
        """Half the systemd watchdog timeout (how often to ping), None when not asked for."""

    @property
    def enabled(self) -> bool:
        """Whether a notify socket is configured."""
        return bool(self.address)

    def notify(self, message: str) -> bool:
        """Send one message; False (never an exception) if it could not be sent."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode("utf-8"), self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """The service is up (``Type=notify`` waits for this)."""
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> bool:
        """Still alive (``WatchdogSec``)."""
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        """Shutting down."""
        return self.notify("STOPPING=1")
