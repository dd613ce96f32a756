"""Write-ahead log of accepted readings, for ``durability = "wal"``.

The daemon appends each accepted reading here *before* it acknowledges the MQTT message, and
truncates the log right after each successful snapshot. At start it restores the snapshot and
replays the log through the normal resampler path, so a ``kill -9`` loses nothing that the broker
was told it could forget.

File layout: an 8-byte magic, then records framed as ``<u32 length><u32 crc32(payload)><payload>``
(little endian). A payload is compact JSON ``{"s": sensor_id, "v": [values], "t": ts}``; JSON
writes floats with ``repr`` so values round-trip bit for bit.

Recovery (at open): records are read until the first one that is incomplete (a torn write: the
process died mid-append) or fails its CRC (corruption). Everything from that point on is cut off
and counted in ``torn_bytes`` / ``corrupt_records``, with a warning; appends then continue after
the last good record. A record after a bad one is never trusted, because its framing is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import StateFileError
from .resample import Reading

log = logging.getLogger(__name__)

MAGIC = b"ELWAL\x00\x01\n"
_HEADER = struct.Struct("<II")
# A reading is a few dozen bytes; anything far larger is a damaged length field, not a record.
MAX_RECORD_BYTES = 1 << 20


def encode_reading(reading: Reading) -> bytes:
    """Serialise a reading as one WAL payload (ASCII JSON; lone surrogates survive as escapes)."""
    doc = {"s": reading.sensor_id, "v": list(reading.values), "t": reading.ts}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def decode_reading(payload: bytes) -> Reading:
    """Parse one WAL payload back into a ``Reading``; ``ValueError`` when it is not one."""
    doc = json.loads(payload)
    if not isinstance(doc, dict) or set(doc) != {"s", "v", "t"} or not isinstance(doc["v"], list):
        raise ValueError("not a reading record")
    try:
        values = tuple(float(v) for v in doc["v"])
        return Reading(sensor_id=str(doc["s"]), values=values, ts=float(doc["t"]))
    except TypeError as exc:
        raise ValueError(f"not a reading record: {exc}") from exc


def frame(payload: bytes) -> bytes:
    """One record as it lies on disk: length, CRC32, payload."""
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def scan(data: bytes) -> tuple[list[bytes], int, bool]:
    """Split a log body (after the magic) into payloads.

    Returns ``(payloads, good_bytes, corrupt)``: ``good_bytes`` is where the last intact record
    ends; ``corrupt`` is True when the scan stopped at a CRC mismatch or an impossible length
    rather than at a clean end or a torn (incomplete) last record.
    """
    payloads: list[bytes] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < _HEADER.size:
            return payloads, pos, False  # torn header
        length, crc = _HEADER.unpack_from(data, pos)
        if length > MAX_RECORD_BYTES:
            return payloads, pos, True
        end = pos + _HEADER.size + length
        if end > len(data):
            return payloads, pos, False  # torn payload
        payload = data[pos + _HEADER.size : end]
        if zlib.crc32(payload) != crc:
            return payloads, pos, True
        payloads.append(payload)
        pos = end
    return payloads, pos, False


class WriteAheadLog:
    """Append-only, CRC-framed log of readings; implements the daemon's ``Journal`` protocol."""

    def __init__(
        self, path: Path, fsync: bool = True, strict: bool = True, retry_s: float = 10.0
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
        _, good, corrupt = scan(body)
        bad = len(body) - good
        if bad:
            if corrupt:
                self.corrupt_records += 1
            else:
                self.torn_bytes += bad
            log.warning(
                "write-ahead log %s: %s at byte %d; dropped %d trailing bytes",
                self.path,
                "corrupt record (CRC mismatch)" if corrupt else "torn last record",
                len(MAGIC) + good,
                bad,
            )
            with open(self.path, "r+b") as f:
                f.truncate(len(MAGIC) + good)
                os.fsync(f.fileno())

    def _write_fresh(self) -> None:
        with open(self.path, "wb") as f:
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

    def append_many(self, readings: Iterable[Reading]) -> None:
        """Record several readings with one write and at most one fsync (group commit).

        All or nothing: on an error (disk full, read-only) the partial write is cut off again
        and ``StateFileError`` is raised, so the log never holds a torn record in its middle.
        """
        frames = [frame(encode_reading(r)) for r in readings]
        if not frames:
            return
        fd = self._descriptor()
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(b"".join(frames))
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
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            if not isinstance(exc, FileNotFoundError):
                log.error("write-ahead log %s unreadable, nothing replayed: %s", self.path, exc)
            return
        payloads, _, _ = scan(data[len(MAGIC) :] if data.startswith(MAGIC) else b"")
        for payload in payloads:
            try:
                yield decode_reading(payload)
            except ValueError as exc:
                # CRC-valid but not a reading (another version wrote it): skip, keep going.
                self.corrupt_records += 1
                log.warning("write-ahead log %s: skipped an unreadable record: %s", self.path, exc)

    def truncate(self) -> None:
        """Forget every record (called right after a successful snapshot)."""
        fd = self._descriptor()
        try:
            os.ftruncate(fd, len(MAGIC))
            if self.fsync:
                os.fsync(fd)
        except OSError as exc:
            raise StateFileError(f"cannot truncate write-ahead log {self.path}: {exc}") from exc

    def size_bytes(self) -> int:
        """Current size of the log file on disk."""
        return self.path.stat().st_size

    def close(self) -> None:
        """Close the file; further appends raise ``StateFileError``."""
        self._closed = True
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
