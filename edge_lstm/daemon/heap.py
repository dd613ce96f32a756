"""Give the memory a batch's temporaries freed back to the OS (glibc's ``malloc_trim``).

A batch of 5,000 readings allocates tens of MiB of short-lived arrays and objects. glibc keeps
what they free in the process (the main heap is only shrunk from its top, and after the first
large free it serves the next large arrays from the heap instead of fresh mappings), so RSS
would stay at the high-water mark of the busiest batch: about 25 MiB more at 10,000 sensors
than the state needs. ``malloc_trim(0)`` returns every free page of every arena. It is a glibc
function with no Python API; on another C library (musl) the trimmer does nothing.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable

TRIM_EVERY = 2_000
"""Readings (or closed steps) between trims: one trim per large batch, one per few small ones
(a trim walks the heap: about a millisecond at 10,000 sensors)."""


def _malloc_trim() -> Callable[[int], int] | None:
    try:  # the symbols the process has loaded: the C library's among them
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


class HeapTrimmer:
    """Counts work (``add``) and trims at the next ``settle`` once ``every`` units are done,
    and once more ``again_s`` after such a trim.

    The pipeline settles at the end of a batch, once the batch's row copies are dropped, and
    at the start of the next batch or close check. The second trim returns what the caller
    freed after the first: the forecasts it published, and the outgoing packets the network
    thread holds until the socket takes them.
    """

    def __init__(self, every: int = TRIM_EVERY, again_s: float = 1.0) -> None:
        self.every = every
        self.again_s = again_s
        self.trims = 0
        self._done = 0
        self._again_at: float | None = None
        self._trim = _malloc_trim()

    @property
    def available(self) -> bool:
        """Whether this C library can trim (glibc)."""
        return self._trim is not None

    def add(self, work: int) -> None:
        """Count ``work``: readings handled, steps closed or replayed."""
        self._done += work

    def settle(self, now_mono: float | None = None) -> bool:
        """Trim if enough work was done since the last trim, or a follow-up is due; True if
        it trimmed."""
        if self._trim is None:
            return False
        now = time.monotonic() if now_mono is None else now_mono
        if self._done >= self.every:
            self._again_at = now + self.again_s
        elif self._again_at is not None and now >= self._again_at:
            self._again_at = None
        else:
            return False
        self._done = 0
        self._trim(0)
        self.trims += 1
        return True
