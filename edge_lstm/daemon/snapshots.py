"""Daemon state on disk: the snapshot (the sensor table) and the write-ahead journal.

Failures here are reported (logs, health), never fatal: a Pi with a full SD card should keep
forecasting from memory.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from ..errors import StateFileError
from ..model.state import set_aside
from .config import Config
from .pipeline import Pipeline
from .wal import Journal, NullJournal

log = logging.getLogger(__name__)

SNAPSHOT_NAME = "state.snapshot"
WAL_NAME = "readings.wal"


class SnapshotKeeper:
    """Writes and restores ``state_dir/state.snapshot`` for one pipeline."""

    def __init__(self, state_dir: Path | None) -> None:
        self.state_dir = state_dir
        self.path = state_dir / SNAPSHOT_NAME if state_dir is not None else None
        self.last_error = ""
        self.last_saved_at: float | None = None
        self.restored_sensors = 0
        self.last_size_bytes = 0
        """Size of the latest snapshot written or found (the room the next one needs)."""

    def restore(self, pipeline: Pipeline) -> None:
        """Load the snapshot if it exists and belongs to this model; set it aside otherwise."""
        self._remove_stale_temporaries()
        if self.path is None or not self.path.exists():
            return
        with contextlib.suppress(OSError):
            self.last_size_bytes = self.path.stat().st_size
        try:
            pipeline.table.load(self.path, pipeline.forecaster.model.sha256, time.time())
        except StateFileError as exc:
            log.warning("discarding state snapshot: %s", exc)
            set_aside(self.path, str(exc))
            return
        self.restored_sensors = len(pipeline.table)
        log.info("restored %d sensor state(s) from %s", self.restored_sensors, self.path)

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary files of snapshots a killed process never finished.

        Only one process owns the state directory, so at start nothing is writing them; left
        alone, each ``kill -9`` during a snapshot would keep a snapshot's worth of disk.
        """
        if self.path is None or not self.path.parent.is_dir():
            return
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            try:
                stale.unlink()
            except OSError as exc:
                log.warning("cannot remove stale snapshot temporary %s: %s", stale, exc)
            else:
                log.info("removed %s, left by a snapshot that never finished", stale)

    def save(self, pipeline: Pipeline) -> bool:
        """Snapshot now, then truncate the journal; False (logged, counted) on failure."""
        if self.path is None:
            return False
        try:
            pipeline.table.save(
                self.path, pipeline.forecaster.model.sha256, {"saved_at": time.time()}
            )
        except (OSError, StateFileError) as exc:
            pipeline.counters.snapshot_errors += 1
            self.last_error = f"snapshot to {self.path} failed: {exc}"
            pipeline.rate_log.log("snapshot", self.last_error, time.time(), logging.ERROR)
            return False
        pipeline.counters.snapshots += 1
        self.last_error = ""
        with contextlib.suppress(OSError):
            self.last_size_bytes = self.path.stat().st_size
        self.last_saved_at = time.time()
        try:
            pipeline.journal.truncate()
        except (OSError, StateFileError) as exc:
            # Harmless for correctness: replayed readings older than the snapshot are dropped.
            log.error("write-ahead log truncate failed: %s", exc)
        return True


def open_journal(config: Config) -> Journal:
    """The journal for ``config.durability`` (a ``WriteAheadLog`` for ``wal``)."""
    if config.durability != "wal" or config.state_dir is None:
        return NullJournal()
    from .wal import WriteAheadLog

    # Not strict: an unwritable state dir is reported (health: journal_errors), not fatal.
    return WriteAheadLog(
        config.state_dir / WAL_NAME,
        fsync=config.wal_fsync,
        strict=False,
        max_bytes=config.wal_max_bytes,
    )
