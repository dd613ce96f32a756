"""Disk and files: a read-only or full state directory, and corrupt or truncated snapshots.

The daemon must keep forecasting from memory, show the failure in its health document, pick up
again when the disk is fixed, and never fail to start because of a bad snapshot (it is set
aside as ``state.snapshot.bad-<time>`` with a warning).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_lstm.model.metadata import ModelMeta
from edge_lstm.mqttkit.broker import Mosquitto
from edge_lstm.mqttkit.clients import unique_prefix, wait_until
from edge_lstm.mqttkit.rig import Rig
from tests.expected import (
    BASE_TS,
    expected_forecasts,
    iso_of_step,
    mismatches,
    reading_payload,
    series,
)

pytestmark = pytest.mark.broker

IDS = ["a", "b", "c"]


def _probe_writable(directory: Path) -> bool:
    probe = directory / ".probe"
    try:
        probe.write_text("x")
    except OSError:
        return False
    probe.unlink()
    return True


@contextlib.contextmanager
def unwritable(directory: Path) -> Iterator[None]:
    """Make ``directory`` refuse new files: chmod for users, ``chattr +i`` for root."""
    root = os.geteuid() == 0
    if root:
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", str(directory)]).returncode != 0:
            pytest.skip("running as root and cannot make a directory immutable")
    else:
        directory.chmod(0o555)
    try:
        if _probe_writable(directory):
            pytest.skip("could not make the state directory unwritable here")
        yield
    finally:
        if root:
            subprocess.run(["chattr", "-i", str(directory)], check=False)
        else:
            directory.chmod(0o755)


@contextlib.contextmanager
def small_filesystem(directory: Path, size_kib: int) -> Iterator[None]:
    """A tmpfs of ``size_kib`` mounted at ``directory`` (root only), unmounted afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    if shutil.which("mount") is None:
        pytest.skip("mount is not on the PATH")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(directory)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount tmpfs as root: {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem is full; returns it (delete it to free the space)."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:  # unbuffered: nothing left to flush at close
        for _ in range(100_000):  # bounded: 100,000 x 4 KiB
            try:
                f.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    return filler


class Stream(Rig):
    """The kit's daemon, observer and publisher for one test, plus the expected forecasts."""

    def __init__(
        self, broker: Mosquitto, model: Path, tmp: Path, n_steps: int = 60, **settings: object
    ) -> None:
        self.meta = ModelMeta.load(model.with_suffix(".json"))
        self.data = series(len(IDS), n_steps, self.meta.n_features)
        self.expected = expected_forecasts(model, IDS, self.data)
        self.state = Path(str(settings.pop("state_dir", tmp / "state")))
        quick = {"health_interval_s": 0.3, "snapshot_interval_s": 0.3}
        super().__init__(
            broker, model, tmp, unique_prefix("disk"), state_dir=self.state, **{**quick, **settings}
        )
        self.next_step = 0

    def steps(self, n: int) -> None:
        """Publish the next ``n`` steps and wait for the forecast after the last closed one."""
        for k in range(self.next_step, self.next_step + n):
            for i, sensor in enumerate(IDS):
                payload = reading_payload(self.data[i, k], BASE_TS + k * self.meta.step_s)
                self.send(sensor, payload)
        self.next_step += n
        last = iso_of_step(self.next_step - 2, self.meta.step_s)
        ok = wait_until(lambda: all(self.observer.has_forecast_for(s, last) for s in IDS))
        assert ok, f"forecasts stopped; log:\n{self.daemon.log()[-3000:]}"
        bad = mismatches(self.observer, self.expected, self.meta.features, self.meta.step_s)
        assert bad == [], bad[:3]

    def health_where(self, predicate: object, timeout_s: float = 15.0) -> dict:
        """The first fresh health document for which ``predicate(doc)`` holds."""
        doc: dict = {}

        def check() -> bool:
            nonlocal doc
            doc = self.observer.fresh_health()
            return bool(predicate(doc))  # type: ignore[operator]

        keys = ("snapshots", "snapshot_errors", "journal_errors", "state")
        assert wait_until(check, timeout_s, 0.0), {k: doc.get(k) for k in keys}
        return doc


@pytest.mark.parametrize("durability", ["snapshot", "wal"])
def test_read_only_state_dir_keeps_forecasting(
    durability: str, mosquitto: Mosquitto, golden_model: Path, tmp_path: Path
) -> None:
    stream = Stream(mosquitto, golden_model, tmp_path, durability=durability)
    stream.state.mkdir()
    try:
        with unwritable(stream.state):
            stream.start()
            stream.steps(10)
            doc = stream.health_where(lambda d: d["snapshot_errors"] > 0)
            assert "snapshot" in doc["state"]["error"], doc["state"]
            if durability == "wal":
                assert doc["journal_errors"] > 0, doc
                assert "cannot open write-ahead log" in doc["state"]["journal_error"]
            assert not (stream.state / "state.snapshot").exists()
        # The disk is fixed: snapshots resume by themselves and the error clears.
        doc = stream.health_where(lambda d: d["state"]["error"] is None and d["snapshots"] > 0)
        assert (stream.state / "state.snapshot").exists()
        stream.steps(5)
        assert stream.daemon.alive
        assert stream.daemon.terminate() == 0
    finally:
        stream.close()


def test_full_state_dir_keeps_forecasting(
    mosquitto: Mosquitto, golden_model: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with small_filesystem(state, size_kib=256):
        stream = Stream(mosquitto, golden_model, tmp_path, state_dir=state, durability="wal")
        try:
            stream.start()
            stream.steps(5)
            stream.health_where(lambda d: d["snapshots"] > 0)
            filler = fill(state)
            # 30 steps x 3 sensors of ~70-byte records: more than the log's last free page.
            stream.steps(30)
            # `error`/`journal_error` are the latest failure, cleared by the next write that
            # fits: wait for a document that shows both while the disk is full.
            doc = stream.health_where(
                lambda d: (
                    d["snapshot_errors"]
                    and d["journal_errors"]
                    and "snapshot" in (d["state"]["error"] or "")
                    and "No space left" in (d["state"]["journal_error"] or "")
                )
            )
            filler.unlink()
            # Recovery by itself: a snapshot succeeds, then readings are journaled without error.
            doc = stream.health_where(lambda d: d["state"]["error"] is None, timeout_s=30.0)
            errors, accepted = doc["journal_errors"], doc["readings_accepted"]
            stream.steps(5)
            doc = stream.health_where(lambda d: d["readings_accepted"] >= accepted + 5 * len(IDS))
            assert doc["journal_errors"] == errors, "journal still failing after space was freed"
            assert doc["state"]["journal_error"] is None
            assert stream.daemon.terminate() == 0
        finally:
            stream.close()


def test_log_cannot_wedge_a_small_disk(
    mosquitto: Mosquitto, golden_model: Path, tmp_path: Path
) -> None:
    """Issue 9, item 4: the log grew until the disk was full; then no snapshot had room for its
    temporary file, so the log could never be truncated and readings went unjournaled."""
    state = tmp_path / "state"
    with small_filesystem(state, size_kib=128):
        # Snapshots once an hour: only the room kept for the next snapshot can save the disk.
        stream = Stream(
            mosquitto, golden_model, tmp_path, state_dir=state, durability="wal",
            snapshot_interval_s=3600.0, n_steps=520,
        )  # fmt: skip
        try:
            stream.start()
            stream.steps(5)
            for _ in range(5):  # 515 steps x 3 sensors x ~90 bytes: ~1.1 x the file system
                stream.steps(102)
            doc = stream.observer.fresh_health()
            log = stream.daemon.log()[-3000:]
            assert doc["snapshots"] >= 1 and doc["snapshot_errors"] == 0, log
            assert doc["state"]["error"] is None and doc["state"]["journal_error"] is None, log
            assert doc["journal_errors"] == 0, log
            # Nothing was lost either: after a kill -9 the restarted daemon goes on exactly.
            stream.daemon.kill9()
            stream.start()
            stream.steps(3)
            assert stream.daemon.terminate() == 0
        finally:
            stream.close()


def test_a_reading_that_cannot_be_journaled_is_not_acknowledged(
    mosquitto: Mosquitto, golden_model: Path, tmp_path: Path
) -> None:
    """The broker keeps what the log could not take: a kill -9 while the disk is full loses
    nothing, and once space is freed journaling and snapshots resume by themselves."""
    state = tmp_path / "state"
    with small_filesystem(state, size_kib=256):
        stream = Stream(mosquitto, golden_model, tmp_path, state_dir=state, durability="wal")
        try:
            stream.start()
            stream.steps(5)
            stream.health_where(lambda d: d["snapshots"] > 0)
            filler = fill(state)
            stream.steps(10)  # forecast from memory, but neither journaled nor acknowledged
            stream.health_where(lambda d: d["journal_errors"] > 0)
            stream.daemon.kill9()
            filler.unlink()
            stream.start()
            # Redelivered by the broker and applied: the forecasts go on as if nothing happened
            # (with the readings lost, the 10-step gap would reset every sensor).
            stream.steps(5)
            doc = stream.health_where(lambda d: d["snapshots"] > 0 and d["state"]["error"] is None)
            log = stream.daemon.log()[-3000:]
            assert doc["journal_errors"] == 0 and doc["state"]["journal_error"] is None, log
            assert stream.daemon.terminate() == 0
        finally:
            stream.close()


def _corrupt(path: Path, how: str) -> None:
    raw = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(raw[: len(raw) // 2]))
    elif how == "flipped":
        raw[len(raw) // 2] ^= 0x55
        path.write_bytes(bytes(raw))
    elif how == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(b"PK\x03\x04 not a snapshot at all" * 10)


@pytest.mark.parametrize("how", ["truncated", "flipped", "empty", "garbage"])
def test_corrupt_snapshot_is_set_aside(
    how: str, mosquitto: Mosquitto, golden_model: Path, tmp_path: Path
) -> None:
    stream = Stream(mosquitto, golden_model, tmp_path, snapshot_interval_s=60.0)
    try:
        stream.start()
        stream.steps(8)
        assert stream.daemon.terminate() == 0  # final snapshot at shutdown
        snapshot = stream.state / "state.snapshot"
        assert snapshot.exists()
        _corrupt(snapshot, how)
        stream.start()
        doc = stream.observer.fresh_health()
        assert doc["sensors_active"] == 0, "a corrupt snapshot was loaded"
        log = stream.daemon.log()
        assert "set aside unusable state snapshot" in log, log[-2000:]
        assert list(stream.state.glob("state.snapshot.bad-*")), list(stream.state.iterdir())
        # Fresh state: readings after the restart still forecast (from a reset sensor).
        k = stream.next_step
        for i, sensor in enumerate(IDS):
            for step in (k, k + 1):
                ts = BASE_TS + step * stream.meta.step_s
                payload = reading_payload(stream.data[i, step], ts)
                stream.publisher.publish(f"{stream.prefix}/s/{sensor}", payload)
        last = iso_of_step(k, stream.meta.step_s)
        assert wait_until(lambda: all(stream.observer.has_forecast_for(s, last) for s in IDS))
        assert stream.daemon.terminate() == 0
    finally:
        stream.close()
