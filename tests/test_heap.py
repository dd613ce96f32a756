"""Freed memory goes back to the OS after enough work (edge_lstm.daemon.heap)."""

from __future__ import annotations

import platform

from edge_lstm.daemon.heap import HeapTrimmer, hold_less


def test_it_trims_once_enough_work_was_done_and_once_more_a_while_later() -> None:
    heap = HeapTrimmer(every=10, again_s=1.0)
    if not heap.available:
        assert not heap.settle(0.0)
        return
    assert not heap.settle(0.0)  # nothing done yet
    heap.add(6)
    assert not heap.settle(0.0)
    heap.add(4)
    assert heap.settle(0.5) and heap.trims == 1
    assert not heap.settle(1.4)  # counted afresh; the follow-up is not due yet
    assert heap.settle(1.5) and heap.trims == 2  # the follow-up
    assert not heap.settle(9.0)  # nothing more to do


def test_the_follow_ups_go_on_while_small_batches_come_and_end_after_them() -> None:
    heap = HeapTrimmer(every=10, again_s=1.0)
    if not heap.available:
        return
    heap.add(10)
    assert heap.settle(0.0)
    heap.add(3)  # a small batch after the large one: not enough for a trim of its own
    assert not heap.settle(0.5)
    assert heap.settle(1.0) and heap.trims == 2  # the follow-up; it came after work
    assert not heap.settle(1.5)
    assert heap.settle(2.0) and heap.trims == 3  # once more, after what that work freed
    assert not heap.settle(9.0) and heap.trims == 3  # nothing since: done


def test_the_thresholds_are_fixed_on_glibc() -> None:
    assert hold_less() == (platform.libc_ver()[0] == "glibc")


def test_glibc_can_trim() -> None:
    """glibc here, in CI and on Raspberry Pi OS; another C library (musl) never trims."""
    assert HeapTrimmer().available == (platform.libc_ver()[0] == "glibc")
