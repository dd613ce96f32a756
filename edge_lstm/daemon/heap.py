"""Give the memory a batch's temporaries freed back to the OS (glibc's ``malloc_trim``).

A batch of 5,000 readings allocates tens of MiB of short-lived arrays and objects. glibc keeps
what they free in the process (the main heap is only shrunk from its top, and after the first
large free it serves the next large arrays from the heap instead of fresh mappings), so RSS
would stay at the high-water mark of the busiest batch: about 25 MiB more at 10,000 sensors
than the state needs. ``malloc_trim(0)`` returns every free page of every arena, but not the
top of a thread's arena (the worker's): that one glibc shrinks only when a free leaves more
than its trim threshold there, and glibc raises the threshold to twice the largest array freed
so far (up to 64 MiB). So the daemon fixes both thresholds (``hold_less``): large arrays get
mappings of their own, unmapped when freed, and every arena's top shrinks. These are glibc
functions with no Python API; on another C library (musl) both do nothing.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable

TRIM_EVERY = 2_000
"""Readings (or closed steps) between trims: one trim per large batch, one per few small ones
(a trim walks the heap: about a millisecond at 10,000 sensors)."""

THRESHOLD_BYTES = 1024 * 1024
"""Both thresholds (``mallopt(3)``), kept from then on. glibc starts at 128 KiB: there a
batch's many arrays of a few hundred KiB each get a mapping and its page faults, about 5% of
the worker's CPU (1,000 sensors); at 1 MiB that cost is gone and an arena's top still keeps at
most 1 MiB."""
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
"""``mallopt`` parameter numbers (``<malloc.h>``)."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)  # the symbols the process has loaded: the C library's among them


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = _libc().malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


def hold_less(threshold_bytes: int = THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap and trim thresholds for this process (True if it could).

    With fixed thresholds an array of 1 MiB or more is unmapped as soon as it is freed, what
    smaller ones free goes back with the next trim, from every arena, and no arena's top keeps
    more than 1 MiB.
    """
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, threshold_bytes) and mallopt(_M_TRIM_THRESHOLD, threshold_bytes)
    )


class HeapTrimmer:
    """Counts work (``add``) and trims at the next ``settle`` once ``every`` units are done,
    then again every ``again_s`` while more work comes, and once after it stops.

    The pipeline settles at the end of a batch, once the batch's row copies are dropped, and
    at the start of the next batch or close check. The follow-ups return what was freed after
    a trim: the forecasts the caller published, the outgoing packets the network thread holds
    until the socket takes them, and the aftermath of small batches that follow a large one.
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
            # Work since the last trim: its aftermath needs one more.
            self._again_at = now + self.again_s if self._done else None
        else:
            return False
        self._done = 0
        self._trim(0)
        self.trims += 1
        return True
