"""Per-sensor state in preallocated arrays, indexed by slot: one table, one eviction rule.

Pure numpy: a batch is a gather (``state[slots]``) and a scatter (``state[slots] = new``), never a
Python loop over sensors. Capacity is fixed; when it is full the least recently seen sensor is
evicted. Besides the recurrent state, users of the store add their own per-sensor columns
(``add_column``: the history ring, band calibration); every column is cleared on eviction and
saved in snapshots. Snapshots are written atomically and carry a checksum and the model's sha256.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import mmap
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import StateFileError, UnknownSensorError

log = logging.getLogger(__name__)

MAGIC = b"EDGE-LSTM-STATE\x01"
#: 2: any registered column is saved (format 1 held state, last_y, steps only; it still loads).
SNAPSHOT_VERSION = 2
_DIGEST_BYTES = 32
_BUILTIN = ("state", "last_y", "steps")
IntArray = npt.NDArray[np.intp]
Upgrade = Callable[[Mapping[str, np.ndarray[Any, Any]]], "np.ndarray[Any, Any] | None"]
"""A column from the arrays an older release saved (by saved name, ``col_<name>``), called when
the column is missing or its layout differs; None: it cannot be rebuilt."""


class _Column:
    """One per-slot array with the value a fresh slot gets."""

    def __init__(
        self,
        array: np.ndarray[Any, Any],
        fill: float,
        required: bool,
        kept: bool = False,
        upgrade: Upgrade | None = None,
        derived: bool = False,
    ) -> None:
        self.array = array
        self.fill = fill
        self.required = required
        self.kept = kept
        self.upgrade = upgrade
        self.derived = derived


class StateStore:
    """Fixed-capacity table of sensor states: ``state[slot]``, ``last_y[slot]``, ``steps[slot]``.

    ``last_y`` is the model's output after the sensor's latest step: its one-step prediction, in
    model units. It is the first forecast step and the input used to fill gaps.
    """

    def __init__(self, state_size: int, n_features: int, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.state = lazy_zeros((capacity, state_size), np.float32)
        self.last_y = lazy_zeros((capacity, n_features), np.float32)
        self.steps = lazy_zeros((capacity,), np.int64)
        self._columns: dict[str, _Column] = {
            "state": _Column(self.state, 0.0, True),
            "last_y": _Column(self.last_y, 0.0, True),
            "steps": _Column(self.steps, 0.0, True),
        }
        self._touched = lazy_zeros((capacity,), np.int64)
        self._clock = 0
        self._slots: dict[str, int] = {}
        self._ids: list[str | None] = [None] * capacity
        self._free = list(range(capacity - 1, -1, -1))

    def __len__(self) -> int:
        return len(self._slots)

    def add_column(
        self,
        name: str,
        shape: tuple[int, ...] = (),
        dtype: type[np.generic] = np.float32,
        fill: float = 0.0,
        required: bool = False,
        kept: bool = False,
        upgrade: Upgrade | None = None,
        derived: bool = False,
    ) -> np.ndarray[Any, Any]:
        """Add a per-slot array ``(capacity, *shape)`` (``fill`` in fresh slots) and return it.

        A snapshot without this column loads with ``fill`` unless ``required`` (then it is
        refused: the column cannot be rebuilt, e.g. a history ring). A ``kept`` column is not
        model state: ``reset`` leaves it (and the sensor's slot) alone, eviction clears it.
        ``upgrade`` rebuilds it from what an older release saved. A ``derived`` column is
        never saved nor exchanged: every load and ``put_row`` computes it with ``upgrade`` from
        the other columns.
        """
        if derived and upgrade is None:
            raise ValueError(f"derived column {name!r} needs upgrade= to compute it")
        if name in self._columns:
            raise ValueError(f"column {name!r} exists")
        shape = (self.capacity, *shape)
        array = lazy_zeros(shape, dtype) if fill == 0 else np.full(shape, fill, dtype=dtype)
        self._columns[name] = _Column(array, fill, required, kept, upgrade, derived)
        return array

    def drop_column(self, name: str) -> None:
        """Remove a column added with ``add_column`` (its users are gone)."""
        if name in _BUILTIN:
            raise ValueError(f"column {name!r} is built in")
        self._columns.pop(name, None)

    def nbytes_per_sensor(self) -> int:
        """Bytes of every per-slot array for one sensor."""
        return int(sum(c.array[0].nbytes for c in self._columns.values())) + self._touched.itemsize

    def __contains__(self, sensor_id: object) -> bool:
        return sensor_id in self._slots

    def ids(self) -> list[str]:
        return list(self._slots)

    def slot(self, sensor_id: str) -> int | None:
        """A sensor's slot (None if unknown)."""
        return self._slots.get(sensor_id)

    def own_id(self, sensor_id: str) -> str:
        """The store's own copy of a known sensor's id (``sensor_id`` itself if unknown).

        Each message carries its own copy of the id; keeping the first one alone (not one per
        reading, in every structure keyed by it) keeps a long-lived object from being
        allocated among every batch's temporaries, where it would pin the allocator's arenas.
        """
        slot = self._slots.get(sensor_id)
        if slot is None:
            return sensor_id
        own = self._ids[slot]
        assert own is not None
        return own

    def ids_of(self, slots: Iterable[int]) -> list[str]:
        """The sensors in ``slots`` (each a live slot)."""
        ids = self._ids
        return [str(ids[slot]) for slot in slots]

    def live_slots(self) -> IntArray:
        """The slots in use, in the order of ``ids()``."""
        return np.fromiter(self._slots.values(), np.intp, len(self._slots))

    def steps_of(self, sensor_id: str) -> int:
        """Observed steps of a sensor (0 if unknown)."""
        slot = self._slots.get(sensor_id)
        return 0 if slot is None else int(self.steps[slot])

    def slots(self, sensor_ids: Sequence[str]) -> IntArray:
        """Slots of known sensors; ``UnknownSensorError`` names the first unknown one."""
        found = list(map(self._slots.get, sensor_ids))
        if None in found:
            unknown = sensor_ids[found.index(None)]
            raise UnknownSensorError(f"unknown sensor {unknown!r}")
        return np.asarray(found, dtype=np.intp)

    def acquire(self, sensor_ids: Sequence[str]) -> tuple[IntArray, list[str]]:
        """Slots for ``sensor_ids`` (new ones get zero state); returns (slots, evicted ids).

        Sensors in the batch are touched first, so eviction never takes one of them.
        """
        if len(set(sensor_ids)) > self.capacity:
            raise ValueError(f"batch of {len(sensor_ids)} sensors exceeds capacity {self.capacity}")
        self._clock += 1
        found = list(map(self._slots.get, sensor_ids))  # map: no Python frame per sensor
        if None not in found:  # the common case: every sensor is known
            slots = np.asarray(found, dtype=np.intp)
            self._touched[slots] = self._clock
            return slots, []
        known = [slot for slot in found if slot is not None]
        self._touched[known] = self._clock
        evicted: list[str] = []
        out = np.empty(len(sensor_ids), dtype=np.intp)
        for i, sensor_id in enumerate(sensor_ids):
            slot = self._slots.get(sensor_id)
            if slot is None:
                if not self._free:
                    evicted.append(self._evict_lru())
                slot = self._free.pop()
                self._slots[sensor_id] = slot
                self._ids[slot] = sensor_id
                # Free slots hold each column's fill already (new, or cleared by remove): not
                # writing it again leaves the pages a young sensor never uses untouched.
                self._touched[slot] = self._clock
            out[i] = slot
        return out, evicted

    def remove(self, sensor_id: str) -> bool:
        """Forget a sensor (its next reading starts from zero state); False if unknown."""
        slot = self._slots.pop(sensor_id, None)
        if slot is None:
            return False
        self._ids[slot] = None
        self._clear(slot)
        self._free.append(slot)
        return True

    def reset(self, sensor_id: str) -> None:
        """Start a sensor's model state afresh; with ``kept`` columns its slot and those stay."""
        slot = self._slots.get(sensor_id)
        if slot is None:
            return
        kept = [c for c in self._columns.values() if c.kept]
        if not kept:
            self.remove(sensor_id)
            return
        for column in self._columns.values():
            if not column.kept:
                column.array[slot] = column.fill

    def clear(self) -> None:
        for sensor_id in list(self._slots):
            self.remove(sensor_id)

    def _clear(self, slot: int) -> None:
        for column in self._columns.values():
            column.array[slot] = column.fill

    def _evict_lru(self) -> str:
        live = self.live_slots()
        slot = int(live[np.argmin(self._touched[live])])
        sensor_id = self._ids[slot]
        assert sensor_id is not None
        self.remove(sensor_id)
        return sensor_id

    # -- one sensor's row (moving a sensor between processes) ---------------------------------

    def layout(self) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
        """Each saved column's per-sensor ``(shape, dtype)``: what ``row``/``put_row`` exchange
        (a ``derived`` column is not exchanged: ``put_row`` computes it)."""
        return {n: (c.array.shape[1:], c.array.dtype) for n, c in self._saved_columns()}

    def row(self, sensor_id: str) -> dict[str, np.ndarray[Any, Any]]:
        """Copies of every saved column of a sensor (a fresh slot's values if it is unknown)."""
        slot = self._slots.get(sensor_id)
        if slot is not None:
            return {name: np.array(c.array[slot]) for name, c in self._saved_columns()}
        return {
            name: np.full(c.array.shape[1:], c.fill, dtype=c.array.dtype)
            for name, c in self._saved_columns()
        }

    def _saved_columns(self) -> list[tuple[str, _Column]]:
        return [(name, c) for name, c in self._columns.items() if not c.derived]

    def take(self, slots: IntArray) -> dict[str, np.ndarray[Any, Any]]:
        """Copies of every column at ``slots`` (one gather per column)."""
        return {name: c.array[slots] for name, c in self._columns.items()}

    def put(self, slots: IntArray, rows: Mapping[str, np.ndarray[Any, Any]]) -> None:
        """Write back what ``take`` returned (the same slots, still held by the same sensors)."""
        for name, column in self._columns.items():
            column.array[slots] = rows[name]

    def put_row(self, sensor_id: str, fields: Mapping[str, np.ndarray[Any, Any]]) -> None:
        """Give a sensor a slot holding ``fields`` (each saved column's per-sensor array,
        ``layout``); its derived columns are computed from them, as a snapshot load does."""
        (slot,), _ = self.acquire([sensor_id])
        saved = {}  # as a snapshot of this one sensor holds them, for the derived columns
        for name, column in self._saved_columns():
            column.array[slot] = fields[name]
            saved[_saved_name(name)] = np.asarray(fields[name])[None]
        for column in self._columns.values():
            if column.derived and column.upgrade is not None:
                computed = column.upgrade(saved)
                column.array[slot] = column.fill if computed is None else computed[0]

    # -- snapshots -------------------------------------------------------------------------

    def save(self, path: Path, model_sha256: str, extra: Mapping[str, Any] | None = None) -> None:
        """Write a checksummed snapshot atomically (temp file, fsync, rename, fsync dir)."""
        ids = self.ids()
        slots = self.slots(ids)
        header = {
            "model_sha256": model_sha256,
            "ids": ids,
            "saved_at": time.time(),
            "version": SNAPSHOT_VERSION,
        }
        header["extra"] = dict(extra or {})
        arrays: dict[str, Any] = {
            "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            "touched": self._touched[slots],
        }
        for name, column in self._saved_columns():
            arrays[_saved_name(name)] = column.array[slots]
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        body = buffer.getvalue()
        atomic_write(path, MAGIC + hashlib.sha256(body).digest() + body)

    def load(self, path: Path, model_sha256: str) -> dict[str, Any]:
        """Replace the table with a snapshot; returns its ``extra``. Nothing changes on error."""
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise StateFileError(f"{path}: cannot read state snapshot ({exc.strerror})") from exc
        header, arrays = _parse(blob, path)
        if header.get("model_sha256") != model_sha256:
            raise StateFileError(
                f"{path}: snapshot belongs to model {str(header.get('model_sha256'))[:12]}…, "
                f"not {model_sha256[:12]}…; refused"
            )
        ids = [str(i) for i in header["ids"]]
        found = {}
        for name, column in self._columns.items():
            saved = arrays.get(_saved_name(name))
            fits = saved is not None and saved.shape[1:] == column.array.shape[1:]
            if (column.derived or not fits) and column.upgrade is not None:
                saved = column.upgrade(arrays) if len(ids) else None
            if saved is None:
                if column.required:
                    raise StateFileError(
                        f"{path}: snapshot has no {name!r}; it is from a model without it"
                    )
                continue
            if saved.shape != (len(ids), *column.array.shape[1:]):
                raise StateFileError(
                    f"{path}: snapshot {name!r} layout {saved.shape[1:]} does not match the "
                    f"model's {column.array.shape[1:]}"
                )
            found[name] = saved
        keep = np.argsort(arrays["touched"], kind="stable")[-self.capacity :]
        self.clear()
        slots, _ = self.acquire([ids[i] for i in keep])
        for name, saved in found.items():
            self._columns[name].array[slots] = saved[keep]
        extra = header.get("extra") or {}
        return dict(extra)


def _saved_name(column: str) -> str:
    """A column's name in a snapshot (and for ``upgrade``): the builtins keep their format-1
    names, so an older edge-lstm can still read the recurrent state of a newer snapshot."""
    return column if column in _BUILTIN else f"col_{column}"


def _parse(blob: bytes, path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]]]:
    if not blob.startswith(MAGIC):
        raise StateFileError(f"{path}: not an edge-lstm state snapshot (bad magic)")
    start = len(MAGIC)
    digest, body = blob[start : start + _DIGEST_BYTES], blob[start + _DIGEST_BYTES :]
    if hashlib.sha256(body).digest() != digest:
        raise StateFileError(f"{path}: state snapshot is truncated or corrupt (checksum mismatch)")
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        for key in ("header", "touched", *_BUILTIN):
            if key not in arrays:
                raise KeyError(key)
        header = json.loads(arrays.pop("header").tobytes().decode())
    except (ValueError, KeyError, OSError) as exc:
        raise StateFileError(f"{path}: state snapshot is unreadable ({exc})") from exc
    if not isinstance(header, dict) or not isinstance(header.get("ids"), list):
        raise StateFileError(f"{path}: state snapshot header is malformed")
    return header, arrays


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def set_aside(path: Path, reason: str) -> Path | None:
    """Rename an unusable snapshot to ``NAME.bad-<time>`` so that it is kept but not retried."""
    target = path.with_name(f"{path.name}.bad-{int(time.time())}")
    try:
        path.rename(target)
    except OSError as exc:
        log.warning("could not set aside %s (%s): %s", path, reason, exc.strerror)
        return None
    log.warning("set aside unusable state snapshot %s -> %s: %s", path, target.name, reason)
    return target


def lazy_zeros(shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray[Any, Any]:
    """Zeros in an anonymous mapping of their own: the OS gives a page memory at its first
    write, so capacity no sensor uses costs none.

    ``np.zeros`` promises that only when the C library maps the array afresh; one served from
    its heap (below glibc's mmap threshold, 1 MiB in the daemon: ``daemon/heap.py``) is
    cleared by writing every page: 0.9 MiB of a 10,000-sensor table before any sensor came.
    """
    kind = np.dtype(dtype)
    n_bytes = int(np.prod(shape)) * kind.itemsize
    if n_bytes == 0:
        return np.zeros(shape, dtype=kind)
    # Private: a shared anonymous mapping (mmap's default) would give a page memory at its
    # first read too.
    pages = mmap.mmap(-1, n_bytes, flags=mmap.MAP_PRIVATE)
    return np.frombuffer(pages, dtype=kind).reshape(shape)


def unique(ids: Iterable[str]) -> list[str]:
    """Ids in first-seen order without repeats."""
    return list(dict.fromkeys(ids))
