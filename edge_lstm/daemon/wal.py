"""Write-ahead log of accepted readings, for ``durability = "wal"``.

The daemon appends each accepted reading here *before* it acknowledges the MQTT message, and
truncates the log right after each successful snapshot. At start it restores the snapshot and
replays the log through the normal resampler path, so a ``kill -9`` loses nothing that the broker
was told it could forget.

File layout: an 8-byte magic, then records framed as ``<u32 length><u32 crc32(payload)><payload>``
(little endian). A payload is compact JSON ``{"s": sensor_id, "v": [values], "t": ts}``; JSON
writes floats with ``repr`` so values round-trip bit for bit. A record may also carry ``"o"``,
the sensor's clock offset (arrival minus reading time, s) as the daemon had it after the batch
that held the reading: replay restores the offsets from it, so a restarted daemon closes steps
on the wall clock exactly as the uninterrupted one would have.

Recovery (at open): records are read until the first one that is incomplete (a torn write: the
process died mid-append) or fails its CRC (corruption). Everything from that point on is cut off
and counted in ``torn_bytes`` / ``corrupt_records``, with a warning; appends then continue after
the last good record. A record after a bad one is never trusted, because its framing is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from ..errors import StateFileError
from ..stream.resample import Reading

log = logging.getLogger(__name__)

MAGIC = b"ELWAL\x00\x01\n"
_HEADER = struct.Struct("<II")
# A reading is a few dozen bytes; anything far larger is a damaged length field, not a record.
MAX_RECORD_BYTES = 1 << 20


def encode_reading(reading: Reading, clock_offset_s: float | None = None) -> bytes:
    """Serialise a reading as one WAL payload (ASCII JSON; lone surrogates survive as escapes)."""
    doc: dict[str, object] = {"s": reading.sensor_id, "v": list(reading.values), "t": reading.ts}
    if clock_offset_s is not None:
        doc["o"] = clock_offset_s
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def decode_record(payload: bytes) -> tuple[Reading, float | None]:
    """One WAL payload back into ``(reading, clock offset or None)``; ``ValueError`` if not."""
    doc = json.loads(payload)
    keys = set(doc) if isinstance(doc, dict) else set()
    if keys not in ({"s", "v", "t"}, {"s", "v", "t", "o"}) or not isinstance(doc["v"], list):
        raise ValueError("not a reading record")
    try:
        values = tuple(float(v) for v in doc["v"])
        reading = Reading(sensor_id=str(doc["s"]), values=values, ts=float(doc["t"]))
        offset = float(doc["o"]) if "o" in doc else None
    except (TypeError, OverflowError) as exc:
        raise ValueError(f"not a reading record: {exc}") from exc
    if offset is not None and not math.isfinite(offset):
        raise ValueError("not a reading record: clock offset not finite")
    return reading, offset


def decode_reading(payload: bytes) -> Reading:
    """Parse one WAL payload back into a ``Reading``; ``ValueError`` when it is not one."""
    return decode_record(payload)[0]


def frame(payload: bytes) -> bytes:
    """One record as it lies on disk: length, CRC32, payload."""
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def scan(data: bytes) -> tuple[list[bytes], int, str]:
    """Split a log body (after the magic) into payloads.

    Returns ``(payloads, good_bytes, problem)``: ``good_bytes`` is where the last intact record
    ends; ``problem`` is ``"bad length"`` or ``"CRC mismatch"`` when the scan stopped at a
    damaged record, ``""`` at a clean end or a torn (incomplete) last record.
    """
    payloads: list[bytes] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < _HEADER.size:
            return payloads, pos, ""  # torn header
        length, crc = _HEADER.unpack_from(data, pos)
        if length > MAX_RECORD_BYTES:
            return payloads, pos, "bad length"
        end = pos + _HEADER.size + length
        if end > len(data):
            return payloads, pos, ""  # torn payload
        payload = data[pos + _HEADER.size : end]
        if zlib.crc32(payload) != crc:
            return payloads, pos, "CRC mismatch"
        payloads.append(payload)
        pos = end
    return payloads, pos, ""


class JournalFull(StateFileError):
    """The log may not grow now (its size limit, or the room kept for the next snapshot)."""


class Journal(Protocol):
    """Durability hook: accepted readings are journaled before they are acknowledged."""

    def append(self, reading: Reading) -> None:
        """Record one reading durably."""

    def append_many(
        self, readings: Iterable[Reading], clock_offsets_s: Iterable[float] | None = None
    ) -> None:
        """Record several readings (each with its sensor's clock offset) with one write."""

    def replay(self) -> Iterable[Reading]:
        """Readings recorded since the last truncate, oldest first."""

    def replay_records(self) -> Iterable[tuple[Reading, float | None]]:
        """``(reading, clock offset or None)`` recorded since the last truncate, oldest first."""

    def truncate(self) -> None:
        """Forget everything (called right after a successful snapshot)."""

    def size_bytes(self) -> int:
        """How many bytes the journal holds now."""

    def keep_free(self, reserve_bytes: int) -> None:
        """Refuse appends that would leave less than this free (room for the next snapshot)."""

    def close(self) -> None:
        """Release the file."""


class NullJournal:
    """``durability = "snapshot"``: nothing is journaled."""

    def append(self, reading: Reading) -> None:
        """Do nothing."""

    def append_many(
        self, readings: Iterable[Reading], clock_offsets_s: Iterable[float] | None = None
    ) -> None:
        """Do nothing."""

    def replay(self) -> Iterable[Reading]:
        """Nothing to replay."""
        return ()

    def replay_records(self) -> Iterable[tuple[Reading, float | None]]:
        """Nothing to replay."""
        return ()

    def truncate(self) -> None:
        """Do nothing."""

    def size_bytes(self) -> int:
        """Always empty."""
        return 0

    def keep_free(self, reserve_bytes: int) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


class WriteAheadLog:
    """Append-only, CRC-framed log of readings; implements the daemon's ``Journal`` protocol."""

    def __init__(
        self,
        path: Path,
        fsync: bool = True,
        strict: bool = True,
        retry_s: float = 10.0,
        max_bytes: int | None = None,
    ) -> None:
        """Open (recovering) the log at ``path``.

        ``strict``: an unusable file or directory raises ``StateFileError``. Otherwise (the
        daemon) the error is logged and kept in ``error``; appends raise ``StateFileError``
        (counted by the caller, the daemon keeps forecasting) and retry opening at most every
        ``retry_s`` seconds, so a full or read-only disk that gets fixed is picked up again.
        """
        self.path = path
        self.fsync = fsync
        self.retry_s = retry_s
        self.max_bytes = max_bytes
        """The log never grows past this: an append that would is refused (``JournalFull``)."""
        self.reserve_bytes = 0
        """Free space an append must leave on the file system (room for the next snapshot)."""
        self.torn_bytes = 0
        self.corrupt_records = 0
        self.appended = 0
        self.error = ""
        self._fd: int | None = None
        self._closed = False
        self._next_try = 0.0
        try:
            self._open()
        except StateFileError as exc:
            if strict:
                raise
            log.error("%s; readings are not journaled until it can be opened", exc)

    def _open(self) -> None:
        try:
            self._recover()
            # A raw descriptor, not a buffered file: after a failed write (disk full) nothing
            # half-written may linger in a buffer and reach the disk later.
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            with contextlib.suppress(OSError):
                os.fchmod(self._fd, 0o600)  # a log an older version created 0644
        except OSError as exc:
            self._next_try = time.monotonic() + self.retry_s
            self.error = f"cannot open write-ahead log {self.path}: {exc.strerror or exc}"
            raise StateFileError(self.error) from exc
        self.error = ""

    def _recover(self) -> None:
        """Make the file a valid log: create it, set a foreign file aside, cut a bad tail."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            self._write_fresh()  # new, or died while writing the magic
            return
        if not data.startswith(MAGIC):
            aside = self.path.with_name(f"{self.path.name}.bad-{int(time.time())}")
            os.replace(self.path, aside)
            log.warning("write-ahead log %s is not a log; moved aside to %s", self.path, aside)
            self._write_fresh()
            return
        body = data[len(MAGIC) :]
        _, good, problem = scan(body)
        bad = len(body) - good
        if bad:
            if problem:
                self.corrupt_records += 1
            else:
                self.torn_bytes += bad
            log.warning(
                "write-ahead log %s: %s at byte %d; dropped %d trailing bytes",
                self.path,
                f"corrupt record ({problem})" if problem else "torn last record",
                len(MAGIC) + good,
                bad,
            )
            with open(self.path, "r+b") as f:
                f.truncate(len(MAGIC) + good)
                os.fsync(f.fileno())

    def _write_fresh(self) -> None:
        # 0600 like the snapshot: readings are the user's data, not the world's.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as f:
            f.write(MAGIC)
            f.flush()
            os.fsync(f.fileno())

    def _descriptor(self) -> int:
        if self._closed:
            raise StateFileError(f"write-ahead log {self.path} is closed")
        if self._fd is None:
            if time.monotonic() < self._next_try:
                raise StateFileError(self.error)
            self._open()
            log.info("write-ahead log %s is writable again", self.path)
        assert self._fd is not None
        return self._fd

    def append(self, reading: Reading) -> None:
        """Durably record one reading (written and, with ``fsync``, on disk) or raise."""
        self.append_many((reading,))

    def append_many(
        self, readings: Iterable[Reading], clock_offsets_s: Iterable[float] | None = None
    ) -> None:
        """Record several readings with one write and at most one fsync (group commit).

        All or nothing: on an error (disk full, read-only) the partial write is cut off again
        and ``StateFileError`` is raised, so the log never holds a torn record in its middle.
        """
        if clock_offsets_s is None:
            frames = [frame(encode_reading(r)) for r in readings]
        else:
            pairs = zip(readings, clock_offsets_s, strict=True)
            frames = [frame(encode_reading(r, o)) for r, o in pairs]
        if not frames:
            return
        fd = self._descriptor()
        start = os.lseek(fd, 0, os.SEEK_END)
        data = b"".join(frames)
        self._check_room(fd, start, len(data))
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            self.error = f"cannot append to write-ahead log {self.path}: {exc}"
            raise StateFileError(self.error) from exc
        self.appended += len(frames)
        self.error = ""

    def replay(self) -> Iterator[Reading]:
        """Yield every intact reading in the log, oldest first (nothing if it is unreadable)."""
        for reading, _ in self.replay_records():
            yield reading

    def replay_records(self) -> Iterator[tuple[Reading, float | None]]:
        """``(reading, clock offset or None)`` of every intact record, oldest first."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            if not isinstance(exc, FileNotFoundError):
                log.error("write-ahead log %s unreadable, nothing replayed: %s", self.path, exc)
            return
        payloads, _, _ = scan(data[len(MAGIC) :] if data.startswith(MAGIC) else b"")
        for payload in payloads:
            try:
                yield decode_record(payload)
            except ValueError as exc:
                # CRC-valid but not a reading (another version wrote it): skip, keep going.
                self.corrupt_records += 1
                log.warning("write-ahead log %s: skipped an unreadable record: %s", self.path, exc)

    def _check_room(self, fd: int, size: int, more: int) -> None:
        """Refuse an append that passes ``max_bytes`` or eats into ``reserve_bytes``.

        Without this the log grows until the disk is full, and then the snapshot that would
        truncate it has no room for its temporary file: the log could never shrink again.
        """
        if self.max_bytes is not None and size + more > self.max_bytes:
            self.error = (
                f"write-ahead log {self.path} is full ({size:,} of max {self.max_bytes:,} "
                "bytes); waiting for a snapshot"
            )
            raise JournalFull(self.error)
        if self.reserve_bytes <= 0:
            return
        try:
            stats = os.fstatvfs(fd)
        except OSError:
            return  # cannot tell: let the write itself find out
        free = stats.f_bavail * stats.f_frsize
        if free - more < self.reserve_bytes:
            self.error = (
                f"No space left for the write-ahead log {self.path}: {free:,} bytes free, "
                f"{self.reserve_bytes:,} kept for the next snapshot"
            )
            raise JournalFull(self.error)

    def truncate(self) -> None:
        """Forget every record (called right after a successful snapshot)."""
        fd = self._descriptor()
        try:
            os.ftruncate(fd, len(MAGIC))
            if self.fsync:
                os.fsync(fd)
        except OSError as exc:
            raise StateFileError(f"cannot truncate write-ahead log {self.path}: {exc}") from exc
        self.error = ""  # a full log is empty again: the snapshot holds what it would have

    def keep_free(self, reserve_bytes: int) -> None:
        """Refuse appends that would leave less than ``reserve_bytes`` free on the disk."""
        self.reserve_bytes = max(0, reserve_bytes)

    def size_bytes(self) -> int:
        """Current size of the log file on disk (0 when it cannot be read)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def close(self) -> None:
        """Close the file; further appends raise ``StateFileError``."""
        self._closed = True
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
