"""A simulated year of ``edge-lstm run``: months of readings at full speed, the daemon's memory,
state files and counters after each month.

One daemon process with a state directory and the write-ahead log (``durability = "wal"``,
snapshots every few seconds), fed a month of readings at a time (dated a step apart, so each
opens a new step). After each month the bench waits until the daemon has accepted every reading
sent, then records its resident memory, the size of its state files and its health counters.
What it shows: whether memory or files grow with time rather than with sensors, whether
anything is lost or refused along the way, and whether the online band calibration holds its
80% month after month (the coverage of each month's bands, every horizon step together). The
readings come faster than real time, so the daemon works through a backlog: it forecasts only
the newest step of each batch (docs/daemon.md), and the calibration learns from those bands.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import BrokerError
from ..model.metadata import ModelMeta, sidecar_path
from ..mqttkit.broker import broker_at
from .harness import BenchDaemon, future_start, publish

MONTH_S = 730 * 3600.0
"""A month of model time: a twelfth of a 365-day year."""
SNAPSHOT_S = 5.0
DRAIN_TIMEOUT_S = 300.0


def run_soak(
    model_path: Path,
    broker: str | None = None,
    sensors: int = 100,
    months: int = 12,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The JSON-able ``soak`` section: one row per simulated month."""
    say = progress or (lambda _m: None)
    meta = ModelMeta.load(sidecar_path(model_path))
    steps = max(1, round(MONTH_S / meta.step_s))
    # Dated from now on (not a year ahead, as the other sections): a year of steps stays
    # within the daemon's allowed clock skew.
    start_ts = future_start(meta.step_s) - 366 * 86_400
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="edge-lstm-soak-") as tmp,
        broker_at(broker, Path(tmp)) as (address, broker_desc),
    ):
        state_dir = Path(tmp) / "state"
        daemon = BenchDaemon(
            model_path, address, Path(tmp), max_sensors=sensors, state_dir=state_dir,
            durability="wal", wal_fsync=False, snapshot_interval_s=SNAPSHOT_S,
        )  # fmt: skip
        try:
            time.sleep(1.0)
            idle = daemon.rss_bytes()
            sent = 0
            health: dict[str, Any] = {}
            band_before = (0.0, 0)
            for month in range(1, months + 1):
                say(f"soak: month {month} of {months}, {sensors} sensors")
                summary = publish(
                    address, daemon.input_topic, sensors, steps, start_ts, meta.step_s,
                    first_round=(month - 1) * steps,
                )  # fmt: skip
                sent += int(summary["sent"])
                health = _wait_accepted(daemon, sent)
                band = _band_totals(health)
                rows.append(
                    {
                        "month": month,
                        "readings_sent": sent,
                        "readings_accepted": int(health.get("readings_accepted", 0)),
                        "forecasts_published": int(health.get("forecasts_published", 0)),
                        "rss_bytes": daemon.rss_bytes(),
                        "peak_rss_bytes": daemon.peak_rss_bytes(),
                        "state_files_bytes": _bytes_under(state_dir),
                        "band_coverage": _share(band, band_before),
                        "elapsed_s": time.monotonic() - started,
                    }
                )
                band_before = band
        finally:
            exit_code = daemon.close()
    return {
        "broker": broker_desc,
        "sensors": sensors,
        "months": months,
        "steps_per_month": steps,
        "settings": f"durability wal (no fsync), a snapshot every {SNAPSHOT_S:g} s",
        "idle_rss_bytes": idle,
        "rows": rows,
        "readings_lost": sent - rows[-1]["readings_accepted"] if rows else 0,
        "readings_rejected": int(health.get("readings_rejected_total", 0)),
        "snapshot_errors": int(health.get("snapshot_errors", 0)),
        "journal_errors": int(health.get("journal_errors", 0)),
        "queue_dropped": int(health.get("queue_dropped", 0)),
        "exit_code": exit_code,
    }


def _wait_accepted(daemon: BenchDaemon, sent: int) -> dict[str, Any]:
    """Health once every reading sent so far is accepted (or refused); ``BrokerError`` if that
    takes longer than ``DRAIN_TIMEOUT_S`` (readings lost on the way)."""

    def taken(health: dict[str, Any]) -> int:
        return int(health.get("readings_accepted", 0)) + int(
            health.get("readings_rejected_total", 0)
        )

    health, drained = daemon.health_until(lambda h: taken(h) >= sent, DRAIN_TIMEOUT_S)
    if not drained:
        raise BrokerError(f"soak: the daemon took {taken(health)} of {sent} readings in time")
    return health


def _band_totals(health: dict[str, Any]) -> tuple[float, int]:
    """Bands held and bands scored since start, every horizon step together (0 without a band)."""
    band = health.get("band") or {}
    pairs = zip(band.get("coverage_by_step") or [], band.get("scored_by_step") or [], strict=False)
    held = sum(rate * n for rate, n in pairs if rate is not None)
    return held, sum(band.get("scored_by_step") or [])


def _share(now: tuple[float, int], before: tuple[float, int]) -> float | None:
    """Coverage of the bands scored between two health documents (None: none scored)."""
    scored = now[1] - before[1]
    return (now[0] - before[0]) / scored if scored > 0 else None


def _bytes_under(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def format_soak(soak: dict[str, Any]) -> list[str]:
    """The printed lines of the section."""
    lines = [
        f"soak ({soak['broker']}): {soak['sensors']} sensors, {soak['months']} months of "
        f"{soak['steps_per_month']} steps at full speed, {soak['settings']}; "
        f"idle {soak['idle_rss_bytes'] / 2**20:.1f} MiB"
    ]
    for r in soak["rows"]:
        rss, peak = r["rss_bytes"] / 2**20, r["peak_rss_bytes"] / 2**20
        lines.append(
            f"  month {r['month']:>2}: RSS {rss:.1f} MiB (peak {peak:.1f}), state files "
            f"{r['state_files_bytes'] / 1e6:.2f} MB, {r['readings_accepted']:,} readings, "
            f"{r['forecasts_published']:,} forecasts, band coverage {_pct(r['band_coverage'])}"
        )
    lines.append(
        f"  lost {soak['readings_lost']}, rejected {soak['readings_rejected']}, snapshot errors "
        f"{soak['snapshot_errors']}, journal errors {soak['journal_errors']}, queue drops "
        f"{soak['queue_dropped']}, exit code {soak['exit_code']}"
    )
    return lines
