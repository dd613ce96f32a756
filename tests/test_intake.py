"""The worker's intake: bounded, first in first out, batches, and no lost wake-up across threads."""

from __future__ import annotations

import queue
import threading

import pytest

from edge_lstm.daemon.intake import Intake


def test_take_returns_up_to_limit_oldest_first() -> None:
    intake: Intake[int] = Intake(10)
    for i in range(7):
        intake.put_nowait(i)
    assert intake.qsize() == 7
    assert intake.take(5, timeout_s=0) == [0, 1, 2, 3, 4]
    assert intake.take(5, timeout_s=0) == [5, 6]
    assert intake.take(5, timeout_s=0) == []
    assert intake.qsize() == 0


def test_full_intake_refuses_without_blocking() -> None:
    intake: Intake[str] = Intake(2)
    intake.put_nowait("a")
    intake.put_nowait("b")
    with pytest.raises(queue.Full):
        intake.put_nowait("c")
    with pytest.raises(queue.Full):
        intake.put("c", timeout=0.01)
    assert intake.take(10, timeout_s=0) == ["a", "b"]
    intake.put("c", timeout=0.01)  # room again
    assert intake.take(10, timeout_s=0) == ["c"]


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        Intake[int](0)


def test_empty_take_waits_for_the_timeout_and_returns_nothing() -> None:
    intake: Intake[int] = Intake(4)
    assert intake.take(4, timeout_s=0.01, linger_s=0.01) == []


def test_a_put_from_another_thread_wakes_a_waiting_take() -> None:
    intake: Intake[int] = Intake(4)
    got: list[list[int]] = []
    taker = threading.Thread(target=lambda: got.append(intake.take(4, timeout_s=30)))
    taker.start()
    intake.put_nowait(1)
    taker.join(30)
    assert not taker.is_alive() and got == [[1]]


def test_linger_gathers_what_arrives_meanwhile_up_to_the_limit() -> None:
    intake: Intake[int] = Intake(100)
    intake.put_nowait(0)
    started = threading.Event()

    def produce() -> None:
        started.wait(30)
        for i in range(1, 10):
            intake.put_nowait(i)

    producer = threading.Thread(target=produce)
    producer.start()
    started.set()
    batch = intake.take(5, timeout_s=0, linger_s=30)  # returns once the limit is reached
    producer.join(30)
    assert batch == [0, 1, 2, 3, 4]
    assert intake.take(100, timeout_s=0) == [5, 6, 7, 8, 9]


def test_no_message_is_lost_or_reordered_between_two_producers_and_the_worker() -> None:
    intake: Intake[tuple[int, int]] = Intake(1_000_000)
    per_producer = 20_000

    def produce(who: int) -> None:
        for i in range(per_producer):
            intake.put_nowait((who, i))

    producers = [threading.Thread(target=produce, args=(who,)) for who in (0, 1)]
    for p in producers:
        p.start()
    seen: list[tuple[int, int]] = []
    while len(seen) < 2 * per_producer:
        batch = intake.take(500, timeout_s=30, linger_s=0.001)
        assert batch, "a take timed out with messages on their way"
        seen += batch
    for p in producers:
        p.join(30)
    for who in (0, 1):
        assert [i for w, i in seen if w == who] == list(range(per_producer))
