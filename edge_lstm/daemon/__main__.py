"""The daemon's lean entry: ``edge-lstm run`` checks its flags, then replaces itself with this.

The command-line layer (typer, and what it imports to parse and print: click, rich, pydantic)
stays resident once loaded: about 12 MiB of the daemon's idle RSS that it never uses again. So
``edge-lstm run`` execs ``python -m edge_lstm.daemon`` in the same process (same PID for systemd,
same stdio), handing over the config file and the flags' values in ``EDGE_LSTM_RUN``, and only
the daemon's own modules are loaded here. The hand-over is internal: the variable is removed
before anything else runs, and a process started without it is refused.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

HANDOVER = "EDGE_LSTM_RUN"


def handover(config_path: Path | None, overrides: dict[str, Any]) -> str:
    """The ``EDGE_LSTM_RUN`` value for a config file and the flags' overrides."""
    path = None if config_path is None else str(config_path)
    return json.dumps({"config": path, "overrides": overrides}, default=str)


def taken_over(text: str) -> tuple[Path | None, dict[str, Any]]:
    """The config file and the overrides from an ``EDGE_LSTM_RUN`` value (lists back to tuples)."""
    doc = json.loads(text)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in doc["overrides"].items()}
    return (None if doc["config"] is None else Path(doc["config"])), overrides


def main() -> int:
    from ..errors import EdgeLstmError
    from .config import Config

    text = os.environ.pop(HANDOVER, None)
    if text is None:
        print("python -m edge_lstm.daemon is started by `edge-lstm run`", file=sys.stderr)
        return 2
    config_path, overrides = taken_over(text)
    try:
        config = Config.load(config_path, os.environ, overrides)
        from .heap import hold_less
        from .logs import setup_logging
        from .service import Daemon

        setup_logging(config.log_level)
        hold_less()  # a process-wide setting: here, where the process is the daemon's own
        return Daemon(config).run_forever()
    except EdgeLstmError as exc:
        print(f"edge-lstm run: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
