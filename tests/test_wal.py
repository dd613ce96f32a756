"""The write-ahead log: round trip, torn tail skipped, corruption detected, truncate, full disk."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_lstm.daemon.wal import MAGIC, WriteAheadLog, decode_reading, encode_reading, frame, scan
from edge_lstm.errors import StateFileError
from edge_lstm.stream.resample import Reading

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
readings = st.builds(
    Reading,
    sensor_id=st.text(min_size=1, max_size=40),  # any str, lone surrogates included
    values=st.lists(finite, min_size=1, max_size=4).map(tuple),
    ts=finite,
)
fast = settings(max_examples=60, deadline=None)


def _fresh(tmp: str, fsync: bool = False) -> WriteAheadLog:
    return WriteAheadLog(Path(tmp) / "readings.wal", fsync=fsync)


@fast
@given(st.lists(readings, max_size=30))
def test_round_trip_is_exact(batch: list[Reading]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wal = _fresh(tmp)
        for r in batch:
            wal.append(r)
        wal.close()
        reopened = _fresh(tmp)
        assert list(reopened.replay()) == batch
        assert reopened.torn_bytes == 0 and reopened.corrupt_records == 0
        reopened.close()


@given(readings)
def test_codec_round_trip(r: Reading) -> None:
    assert decode_reading(encode_reading(r)) == r


@fast
@given(st.lists(readings, min_size=1, max_size=10), st.data())
def test_torn_last_record_is_skipped_and_appends_continue(
    batch: list[Reading], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wal = _fresh(tmp)
        wal.append_many(batch)
        wal.close()
        path = Path(tmp) / "readings.wal"
        raw = path.read_bytes()
        last = len(frame(encode_reading(batch[-1])))
        cut = data.draw(st.integers(1, last - 1), label="bytes cut from the last record")
        path.write_bytes(raw[:-cut])  # the process died mid-append
        reopened = _fresh(tmp)
        assert reopened.torn_bytes == last - cut
        assert list(reopened.replay()) == batch[:-1]
        extra = Reading("after-crash", (1.0,), 2.0)
        reopened.append(extra)
        reopened.close()
        assert list(_fresh(tmp).replay()) == [*batch[:-1], extra]


@fast
@given(st.lists(readings, min_size=2, max_size=10), st.data())
def test_corrupt_record_is_detected_and_nothing_after_it_trusted(
    batch: list[Reading], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wal = _fresh(tmp)
        wal.append_many(batch)
        wal.close()
        path = Path(tmp) / "readings.wal"
        raw = bytearray(path.read_bytes())
        k = data.draw(st.integers(0, len(batch) - 1), label="record hit")
        start = len(MAGIC) + sum(len(frame(encode_reading(r))) for r in batch[:k])
        size = len(frame(encode_reading(batch[k])))
        at = data.draw(st.integers(start + 4, start + size - 1), label="byte flipped (crc/payload)")
        raw[at] ^= data.draw(st.integers(1, 255), label="xor")
        path.write_bytes(bytes(raw))
        reopened = _fresh(tmp)
        assert reopened.corrupt_records == 1
        assert list(reopened.replay()) == batch[:k]


def test_damaged_length_field_is_not_trusted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wal = WriteAheadLog(tmp_path / "w.wal", fsync=False)
    wal.append(Reading("a", (1.0,), 1.0))
    wal.close()
    raw = bytearray((tmp_path / "w.wal").read_bytes())
    raw[len(MAGIC) + 3] = 0xFF  # length becomes ~4 GB
    (tmp_path / "w.wal").write_bytes(bytes(raw))
    assert scan(bytes(raw[len(MAGIC) :])) == ([], 0, "bad length")
    with caplog.at_level(logging.WARNING):
        reopened = WriteAheadLog(tmp_path / "w.wal", fsync=False)
    assert list(reopened.replay()) == [] and reopened.corrupt_records == 1
    # Named for what it is: a length no record can have, not a checksum failure.
    assert "corrupt record (bad length)" in caplog.text and "CRC" not in caplog.text


def test_flipped_payload_is_reported_as_a_crc_mismatch(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "w.wal", fsync=False)
    wal.append(Reading("a", (1.0,), 1.0))
    wal.close()
    raw = bytearray((tmp_path / "w.wal").read_bytes())
    raw[-2] ^= 0x01
    assert scan(bytes(raw[len(MAGIC) :])) == ([], 0, "CRC mismatch")


def test_log_is_private_to_its_owner(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        WriteAheadLog(tmp_path / "new.wal", fsync=False).close()
        legacy = tmp_path / "legacy.wal"
        legacy.write_bytes(MAGIC)
        legacy.chmod(0o644)  # as an older version created it
        WriteAheadLog(legacy, fsync=False).close()
    finally:
        os.umask(old_umask)
    assert (tmp_path / "new.wal").stat().st_mode & 0o777 == 0o600
    assert legacy.stat().st_mode & 0o777 == 0o600


def test_clock_offsets_round_trip_and_old_records_still_read(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "w.wal", fsync=False)
    first, second = Reading("a", (1.0,), 10.0), Reading("b", (2.0,), 20.0)
    wal.append_many([first, second], [86_400.25, -3.5])
    wal.append(Reading("c", (3.0,), 30.0))  # no offset: a record as older versions wrote it
    wal.close()
    records = list(WriteAheadLog(tmp_path / "w.wal", fsync=False).replay_records())
    assert records == [(first, 86_400.25), (second, -3.5), (Reading("c", (3.0,), 30.0), None)]


def test_truncate_forgets_everything_and_logging_continues(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "w.wal")  # real fsync on this path
    wal.append_many([Reading("a", (1.0,), 1.0), Reading("b", (2.0,), 1.0)])
    assert wal.appended == 2
    wal.truncate()
    assert list(wal.replay()) == []
    assert wal.size_bytes() == len(MAGIC)
    wal.append(Reading("c", (3.0,), 4.0))
    wal.close()
    assert list(WriteAheadLog(tmp_path / "w.wal").replay()) == [Reading("c", (3.0,), 4.0)]


def test_foreign_file_is_set_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "w.wal").write_bytes(b"this is not a log at all")
    with caplog.at_level(logging.WARNING):
        wal = WriteAheadLog(tmp_path / "w.wal", fsync=False)
    assert list(wal.replay()) == []
    assert [p.name for p in tmp_path.glob("w.wal.bad-*")]
    assert "not a log" in caplog.text


def test_torn_magic_is_rewritten(tmp_path: Path) -> None:
    (tmp_path / "w.wal").write_bytes(MAGIC[:3])
    wal = WriteAheadLog(tmp_path / "w.wal", fsync=False)
    wal.append(Reading("a", (1.0,), 1.0))
    assert list(wal.replay()) == [Reading("a", (1.0,), 1.0)]


def test_closed_log_raises(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "w.wal", fsync=False)
    wal.close()
    with pytest.raises(StateFileError, match="closed"):
        wal.append(Reading("a", (1.0,), 1.0))


def test_full_disk_raises_and_leaves_no_torn_record(tmp_path: Path) -> None:
    full = Path("/dev/full")
    if not full.exists():
        pytest.skip("/dev/full not available")
    wal = WriteAheadLog(tmp_path / "w.wal", fsync=False)
    wal.append(Reading("a", (1.0,), 1.0))
    # /dev/full accepts open but every write fails with ENOSPC, like a full SD card.
    assert wal._fd is not None
    os.close(wal._fd)
    wal._fd = os.open(full, os.O_WRONLY)
    with pytest.raises(StateFileError, match="cannot append"):
        wal.append(Reading("b", (2.0,), 2.0))
    wal.close()
    assert list(WriteAheadLog(tmp_path / "w.wal").replay()) == [Reading("a", (1.0,), 1.0)]


def test_unwritable_directory_is_a_state_file_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateFileError, match="cannot open write-ahead log"):
        WriteAheadLog(blocker / "w.wal")


def test_lenient_log_reports_then_recovers(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("not a directory")
    wal = WriteAheadLog(blocker / "w.wal", strict=False, retry_s=0.0)
    assert "cannot open write-ahead log" in wal.error
    assert list(wal.replay()) == []
    with pytest.raises(StateFileError, match="cannot open write-ahead log"):
        wal.append(Reading("a", (1.0,), 1.0))
    blocker.unlink()  # the operator fixes the disk
    wal.append(Reading("b", (2.0,), 2.0))
    assert wal.error == ""
    assert list(wal.replay()) == [Reading("b", (2.0,), 2.0)]


def test_lenient_log_waits_before_retrying(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("not a directory")
    wal = WriteAheadLog(blocker / "w.wal", strict=False, retry_s=3600.0)
    blocker.unlink()
    with pytest.raises(StateFileError):  # fixed, but the next retry is an hour away
        wal.append(Reading("a", (1.0,), 1.0))
