"""The daemon's logging: stderr, in journald's form when systemd connected stderr to the journal."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

_SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class _JournaldFormatter(logging.Formatter):
    """``<priority>logger: message``: journald reads the priority prefix and adds the time."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>{text}"


def setup_logging(level: str, env: Mapping[str, str] | None = None) -> None:
    """Logs to stderr; the journald form when systemd connected stderr to the journal."""
    env = os.environ if env is None else env
    handler = logging.StreamHandler(sys.stderr)
    if env.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournaldFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("paho").setLevel(logging.WARNING)
