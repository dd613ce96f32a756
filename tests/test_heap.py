"""Freed memory goes back to the OS after enough work (edge_lstm.daemon.heap)."""

from __future__ import annotations

import platform

from edge_lstm.daemon.heap import HeapTrimmer


def test_it_trims_once_enough_work_was_done_and_counts_afresh() -> None:
    heap = HeapTrimmer(every=10)
    assert not heap.settle()  # nothing done yet
    heap.add(6)
    assert not heap.settle()
    heap.add(4)
    assert heap.settle() == heap.available
    assert not heap.settle()  # counted afresh
    assert heap.trims == (1 if heap.available else 0)


def test_glibc_can_trim() -> None:
    """glibc here, in CI and on Raspberry Pi OS; another C library (musl) never trims."""
    assert HeapTrimmer().available == (platform.libc_ver()[0] == "glibc")
