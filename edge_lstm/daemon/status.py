"""What ``edge-lstm status`` shows: the daemon's retained status and health, read for an operator.

Pure: takes the two retained payloads, returns rows to print. Tolerant of documents from older or
newer daemons (a missing field shows as ``-``), because the reader and the daemon upgrade apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DaemonStatus:
    """The retained ``PREFIX/status`` text and ``PREFIX/health`` document (None when absent)."""

    availability: str | None
    health: Mapping[str, Any] | None

    @classmethod
    def from_payloads(cls, status: bytes | None, health: bytes | None) -> DaemonStatus:
        """Decode the raw payloads; an unreadable health document counts as absent."""
        doc: Any = None
        if health:
            try:
                doc = json.loads(health)
            except ValueError:
                doc = None
        return cls(
            status.decode("utf-8", "replace").strip() if status is not None else None,
            doc if isinstance(doc, dict) else None,
        )

    @property
    def up(self) -> bool:
        """True when the daemon's last word is ``online`` (its last will says ``offline``)."""
        return self.availability == "online"

    def as_json(self, broker: str, prefix: str) -> dict[str, object]:
        """The ``--json`` document: the raw health, plus where it was read and ``up``."""
        return {
            "broker": broker,
            "prefix": prefix,
            "up": self.up,
            "status": self.availability,
            "health": dict(self.health) if self.health is not None else None,
        }


def step_label(k: int, step_s: float) -> str:
    """``+1h``, ``+30min`` or ``+90s``: the lead time of forecast step ``k``."""
    lead = k * step_s
    if lead % 3600 == 0:
        return f"+{lead / 3600:g}h"
    if lead % 60 == 0:
        return f"+{lead / 60:g}min"
    return f"+{lead:g}s"


def _get(doc: Mapping[str, Any], *path: str) -> Any:
    value: Any = doc
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _n(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _ms(doc: Mapping[str, Any], key: str) -> str:
    p50, p99 = _get(doc, key, "p50"), _get(doc, key, "p99")
    if p50 is None:
        return "-"
    return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"


def _uptime(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    return f"{days}d {hours}h {minutes:02d}m" if days else f"{hours}h {minutes:02d}m {s:02d}s"


def summary_rows(st: DaemonStatus) -> list[tuple[str, str]]:
    """``(what, value)`` rows, the first answering "is it up?"."""
    if st.availability is None:
        up = "unknown (no retained status)"
    elif st.up:
        up = "online"
    else:
        up = f"{st.availability} (stopped, or lost: the broker published its last will)"
    rows = [("daemon", up)]
    h = st.health
    if h is None:
        rows.append(("health", "none published yet"))
        return rows
    connected = "connected" if h.get("connected") else "not connected"
    if h.get("broker_error"):
        connected += f" ({h['broker_error']})"
    rejected = h.get("readings_rejected") or {}
    reasons = ", ".join(f"{why} {_n(n)}" for why, n in sorted(rejected.items()))
    total_rejected = h.get("readings_rejected_total", sum(rejected.values()))
    model = h.get("model") or {}
    state = h.get("state") or {}
    state_error = state.get("error") or state.get("journal_error")
    step_s = model.get("step_s")
    step = step_label(1, float(step_s))[1:] if isinstance(step_s, (int, float)) else "-"
    kept = (
        f"{_n(state.get('durability'))} in {state['dir']}"
        if state.get("dir")
        else "in memory only (no state_dir)"
    )
    rows += [
        ("version", f"{_n(h.get('version'))}, up {_uptime(h.get('uptime_s'))}"),
        ("broker", f"{_n(h.get('broker'))}, {connected}, {_n(h.get('reconnects'))} reconnects"),
        (
            "model",
            f"{_n(model.get('name'))}, step {step}, "
            f"horizon {_n(model.get('horizon'))}, {_n(model.get('backend'))}",
        ),
        ("sensors", f"{_n(h.get('sensors_active'))} active, {_n(h.get('sensors_warm'))} warm"),
        (
            "readings",
            f"{_n(h.get('readings_accepted'))} accepted, {_n(total_rejected)} rejected"
            + (f" ({reasons})" if reasons else ""),
        ),
        ("forecasts", f"{_n(h.get('forecasts_published'))} published"),
        (
            "drops",
            f"{_n(h.get('queue_dropped'))} readings (queue full), "
            f"{_n(h.get('publish_dropped'))} forecasts; queue "
            f"{_n(h.get('queue_depth'))}/{_n(h.get('queue_size'))}",
        ),
        ("lag", f"reading to forecast {_ms(h, 'receive_to_publish_ms')}"),
        ("step", _ms(h, "step_latency_ms")),
        (
            "state",
            kept + (f", error: {state_error}" if state_error else ""),
        ),
    ]
    return rows


def accuracy_rows(st: DaemonStatus) -> list[tuple[str, str, str, str, str]]:
    """``(lead time, MAE, forecasts scored, MAE / seasonal naive's, band coverage)`` per
    horizon step.

    MAE is the daemon's running accuracy (warm forecasts); the ratio is the model's MAE over
    seasonal naive's on the same targets (below 1: the model is better; ``-`` before any or
    from a daemon that does not report it); the band column is the live share of published
    bands that held the actual, with how many were scored (``-`` before any).
    """
    h = st.health or {}
    mae = _get(h, "accuracy", "mae_by_step") or []
    scored = _get(h, "accuracy", "scored_by_step") or []
    skill = _get(h, "accuracy", "seasonal_naive", "skill_by_step") or []
    coverage = _get(h, "band", "coverage_by_step") or []
    band_scored = _get(h, "band", "scored_by_step") or []
    step_s = _get(h, "model", "step_s")
    rows = []
    for k in range(1, max(len(mae), len(coverage)) + 1):
        label = step_label(k, float(step_s)) if isinstance(step_s, (int, float)) else f"+{k}"
        value, ratio = _at(mae, k), _at(skill, k)
        rows.append(
            (
                label,
                "-" if value is None else f"{value:.3f}",
                _n(_at(scored, k)),
                f"{ratio:.2f}x" if isinstance(ratio, (int, float)) else "-",
                _coverage(_at(coverage, k), _at(band_scored, k)),
            )
        )
    return rows


def band_column(st: DaemonStatus) -> str:
    """The band column's title, e.g. ``80% band held``."""
    nominal = _get(st.health or {}, "band", "nominal")
    return f"{nominal:.0%} band held" if isinstance(nominal, (int, float)) else "band held"


def _at(values: Any, k: int) -> Any:
    return values[k - 1] if isinstance(values, list) and k - 1 < len(values) else None


def _coverage(rate: Any, scored: Any) -> str:
    if not isinstance(rate, (int, float)):
        return "-"
    return f"{rate:.1%} of {_n(scored)}"
