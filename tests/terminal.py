"""Run a command with a pseudo-terminal as stdout, as a person at a terminal would see it."""

from __future__ import annotations

import os
import pty
import subprocess
import time
from collections.abc import Sequence


def run_in_terminal(args: Sequence[str], timeout_s: float = 120.0) -> tuple[int, str]:
    """Exit code and everything the terminal showed (stdout and stderr both go to it)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        list(args),
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "COLUMNS": "160", "TERM": "xterm"},
    )
    os.close(follower)
    out = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return code, out.decode("utf-8", "replace")
