"""The state store: slots, LRU eviction, reset, checksummed atomic snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_lstm.errors import StateFileError, UnknownSensorError
from edge_lstm.model.state import MAGIC, StateStore


def filled(capacity: int = 4) -> StateStore:
    store = StateStore(state_size=3, n_features=1, capacity=capacity)
    slots, _ = store.acquire(["a", "b"])
    store.state[slots] = [[1, 2, 3], [4, 5, 6]]
    store.last_y[slots] = [[0.5], [0.25]]
    store.steps[slots] = [7, 9]
    return store


def test_acquire_gives_zero_state_and_stable_slots() -> None:
    store = filled()
    slots, evicted = store.acquire(["b", "c"])
    assert evicted == []
    np.testing.assert_array_equal(store.state[slots[0]], [4, 5, 6])
    np.testing.assert_array_equal(store.state[slots[1]], [0, 0, 0])
    assert store.slots(["a"])[0] != slots[1]


def test_eviction_takes_least_recently_seen_never_one_in_the_batch() -> None:
    store = filled(capacity=3)
    store.acquire(["c"])
    store.acquire(["a"])  # b is now the least recently seen
    _, evicted = store.acquire(["d", "c"])
    assert evicted == ["b"]
    assert set(store.ids()) == {"a", "c", "d"}
    with pytest.raises(ValueError, match="capacity"):
        store.acquire(["w", "x", "y", "z"])


def test_own_id_is_the_stores_copy_of_a_known_id() -> None:
    store = StateStore(state_size=3, n_features=1, capacity=4)
    first = "".join(["sen", "sor"])  # built at run time: a string object of its own
    store.acquire([first])
    again = "".join(["sens", "or"])
    assert again == first and again is not first
    assert store.own_id(again) is first
    unknown = "".join(["oth", "er"])
    assert store.own_id(unknown) is unknown


def test_unknown_and_remove() -> None:
    store = filled()
    with pytest.raises(UnknownSensorError, match="'zz'"):
        store.slots(["a", "zz"])
    assert store.remove("a") is True
    assert store.remove("a") is False
    (slot,), _ = store.acquire(["a"])
    assert store.steps[slot] == 0 and not store.state[slot].any()


def test_snapshot_round_trip(tmp_path: Path) -> None:
    store = filled()
    path = tmp_path / "state.bin"
    store.save(path, "sha-1", extra={"resampler": {"x": 1}})
    other = StateStore(3, 1, 4)
    assert other.load(path, "sha-1") == {"resampler": {"x": 1}}
    for sensor in ("a", "b"):
        (mine,), (theirs,) = store.slots([sensor]), other.slots([sensor])
        np.testing.assert_array_equal(store.state[mine], other.state[theirs])
        assert store.steps[mine] == other.steps[theirs]
    assert not list(tmp_path.glob("*.tmp")), "no temp file is left behind"


def test_snapshot_of_other_model_or_corrupt_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.bin"
    filled().save(path, "sha-1")
    target = StateStore(3, 1, 4)
    target.acquire(["keep"])
    with pytest.raises(StateFileError, match="refused"):
        target.load(path, "sha-2")
    blob = path.read_bytes()
    for broken, why in [
        (blob[: len(blob) // 2], "checksum"),
        (blob[:-1] + bytes([blob[-1] ^ 1]), "checksum"),
        (b"garbage" + blob, "magic"),
        (MAGIC, "checksum"),
    ]:
        path.write_bytes(broken)
        with pytest.raises(StateFileError, match=why):
            target.load(path, "sha-1")
    assert target.ids() == ["keep"]
    with pytest.raises(StateFileError, match="cannot read"):
        target.load(tmp_path / "missing.bin", "sha-1")


def test_snapshot_layout_mismatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.bin"
    filled().save(path, "sha-1")
    with pytest.raises(StateFileError, match="layout"):
        StateStore(5, 1, 4).load(path, "sha-1")


def test_load_into_smaller_store_keeps_most_recent(tmp_path: Path) -> None:
    store = filled()
    store.acquire(["a"])  # a is more recent than b
    path = tmp_path / "state.bin"
    store.save(path, "s")
    small = StateStore(3, 1, 1)
    small.load(path, "s")
    assert small.ids() == ["a"]


def format1_snapshot(path: Path, sha: str) -> None:
    """A snapshot as edge-lstm wrote it before per-sensor columns existed (format 1)."""
    import hashlib
    import io
    import json

    header = {"model_sha256": sha, "ids": ["a"], "saved_at": 0.0, "extra": {"k": 1}}
    buffer = io.BytesIO()
    np.savez(
        buffer,
        header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
        state=np.array([[1.0, 2.0, 3.0]], dtype=np.float32),
        last_y=np.array([[0.5]], dtype=np.float32),
        steps=np.array([7]),
        touched=np.array([1]),
    )
    body = buffer.getvalue()
    path.write_bytes(MAGIC + hashlib.sha256(body).digest() + body)


def test_a_format1_snapshot_loads_and_new_columns_start_fresh(tmp_path: Path) -> None:
    path = tmp_path / "old.bin"
    format1_snapshot(path, "sha-1")
    store = StateStore(3, 1, 4)
    widths = store.add_column("band_width", (2,), np.float32, fill=1.5)
    assert store.load(path, "sha-1") == {"k": 1}
    (slot,) = store.slots(["a"])
    assert store.state[slot].tolist() == [1.0, 2.0, 3.0] and store.steps[slot] == 7
    assert widths[slot].tolist() == [1.5, 1.5]


def test_a_required_column_missing_from_a_snapshot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.bin"
    format1_snapshot(path, "sha-1")
    store = StateStore(3, 1, 4)
    store.add_column("history", (4, 1), np.float64, required=True)
    store.acquire(["keep"])
    with pytest.raises(StateFileError, match="no 'history'"):
        store.load(path, "sha-1")
    assert store.ids() == ["keep"]


def test_columns_round_trip_and_clear_on_eviction(tmp_path: Path) -> None:
    store = StateStore(3, 1, 2)
    ring = store.add_column("ring", (3, 1), np.float64, required=True)
    at = store.add_column("at", (), np.float64, fill=np.nan)
    slots, _ = store.acquire(["a", "b"])
    ring[slots] = [[[1], [2], [3]], [[4], [5], [6]]]
    at[slots] = [10.0, 20.0]
    path = tmp_path / "s.bin"
    store.save(path, "sha")
    other = StateStore(3, 1, 2)
    ring2 = other.add_column("ring", (3, 1), np.float64, required=True)
    at2 = other.add_column("at", (), np.float64, fill=np.nan)
    other.load(path, "sha")
    (b,) = other.slots(["b"])
    assert ring2[b, :, 0].tolist() == [4, 5, 6] and at2[b] == 20.0
    _, evicted = other.acquire(["c"])
    (c,) = other.slots(["c"])
    assert evicted == ["a"] and not ring2[c].any() and np.isnan(at2[c])
    assert other.nbytes_per_sensor() == 3 * 4 + 4 + 8 + 3 * 8 + 8 + 8


def test_a_derived_column_is_not_saved_nor_handed_over_and_is_computed(tmp_path: Path) -> None:
    def totals(saved: object) -> np.ndarray:
        assert isinstance(saved, dict) and "col_total" not in saved  # never written
        ring: np.ndarray = saved["col_ring"]
        return ring.sum(axis=1)

    def store_with_total() -> tuple[StateStore, np.ndarray, np.ndarray]:
        store = StateStore(3, 1, 2)
        ring = store.add_column("ring", (3, 1), np.float64, required=True)
        total = store.add_column("total", (1,), np.float64, upgrade=totals, derived=True)
        return store, ring, total

    store, ring, total = store_with_total()
    slots, _ = store.acquire(["a", "b"])
    ring[slots] = [[[1], [2], [3]], [[4], [5], [6]]]
    total[slots] = -1.0  # stale: a load computes it again
    store.save(tmp_path / "s.bin", "sha")
    other, _, total2 = store_with_total()
    other.load(tmp_path / "s.bin", "sha")
    assert total2[other.slots(["a", "b"]), 0].tolist() == [6.0, 15.0]
    # a sensor handed over (row/put_row) does not carry it either: the receiver computes it
    moved = store.row("b")
    assert "total" not in moved and "total" not in store.layout()
    third, _, total3 = store_with_total()
    third.put_row("b", moved)
    assert total3[third.slots(["b"]), 0].tolist() == [15.0]
    with pytest.raises(ValueError, match="needs upgrade="):
        other.add_column("bad", (), np.float64, derived=True)
