"""``edge-lstm demo``: the daemon, a broker and real recorded data, watched from a live table.

The demo runs the same ``Daemon`` as ``edge-lstm run`` in this process, against an embedded
broker (or ``--broker``), replays each column of the shipped CSV as one sensor (JSON readings
with the data's own timestamps, ``speed`` rows per second), and listens to the forecasts like
any other MQTT client would. Scoring is done here, from the forecasts received: each forecast
issued by a warm sensor is compared, step by step, with the values replayed later, next to the
naive forecast (the last value, repeated) issued at the same moment.
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..daemon.status import step_label
from ..stream.timestamps import parse_timestamp

DEMO_PREFIX = "edge-lstm-demo"


def default_demo_data() -> Path:
    """The shipped CSV: in the source tree, or installed under ``share/edge-lstm/data``."""
    name = Path("data") / "tmy_hourly_temperature.csv"
    for candidate in (
        Path(__file__).resolve().parents[2] / name,
        Path(sys.prefix) / "share" / "edge-lstm" / name,
    ):
        if candidate.is_file():
            return candidate
    return Path(__file__).resolve().parents[2] / name


@dataclass
class SensorView:
    """What the demo knows about one sensor: replayed values, forecasts, running errors."""

    actual: dict[float, float] = field(default_factory=dict)
    last_t: float | None = None
    forecast: list[tuple[float, float]] = field(default_factory=list)
    status: str = "-"
    forecasts: int = 0
    pending: list[tuple[float, float, float]] = field(default_factory=list)  # t, lstm, naive
    one_step: dict[float, float] = field(default_factory=dict)
    abs_lstm: float = 0.0
    abs_naive: float = 0.0
    scored: int = 0

    def mae(self) -> tuple[float | None, float | None]:
        if not self.scored:
            return None, None
        return self.abs_lstm / self.scored, self.abs_naive / self.scored

    def score(self) -> None:
        """Score pending forecast steps whose actual value has been replayed."""
        keep = []
        for t, lstm, naive in self.pending:
            actual = self.actual.get(t)
            if actual is None:
                if self.last_t is None or t > self.last_t:
                    keep.append((t, lstm, naive))
                continue  # a step with no reading is never scored
            self.abs_lstm += abs(lstm - actual)
            self.abs_naive += abs(naive - actual)
            self.scored += 1
        self.pending = keep


class Scoreboard:
    """Thread-safe enough: forecasts are appended by paho's thread and folded in by the main one."""

    def __init__(self, sensors: list[str]) -> None:
        self.views = {s: SensorView() for s in sensors}
        self._inbox: list[bytes] = []

    def on_message(self, _received: float, _topic: str, payload: bytes) -> None:
        self._inbox.append(payload)  # list.append is atomic under the GIL

    def replayed(self, sensor: str, t: float, value: float) -> None:
        view = self.views[sensor]
        view.actual[t] = value
        view.last_t = t

    def update(self) -> None:
        inbox, self._inbox = self._inbox, []
        for payload in inbox:
            try:
                doc = json.loads(payload)
                view = self.views[doc["sensor"]]
                steps = [(parse_timestamp(s["t"]), float(s["v"])) for s in doc["forecast"]]
                issued = parse_timestamp(doc["last_obs_at"])
            except (ValueError, KeyError, TypeError):
                continue
            view.forecast, view.status = steps, str(doc.get("status", "-"))
            view.forecasts += 1
            last = view.actual.get(issued)
            if doc.get("status") == "ok" and last is not None and steps:
                view.pending += [(t, v, last) for t, v in steps]
                view.one_step[steps[0][0]] = steps[0][1]
        for view in self.views.values():
            view.score()


COLUMNS = (
    "sensor",
    "time (UTC)",
    "last",
    "next forecasts",
    "status",
    "MAE LSTM",
    "naive",
    "scored",
)


def table_rows(board: Scoreboard, step_s: float, shown_steps: int = 4) -> list[tuple[str, ...]]:
    """One row of ``COLUMNS`` per sensor: what the live table shows, rendered by the caller."""
    rows: list[tuple[str, ...]] = []
    for sensor, view in board.views.items():
        when = (
            datetime.fromtimestamp(view.last_t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
            if view.last_t is not None
            else "-"
        )
        last = f"{view.actual[view.last_t]:.1f}" if view.last_t is not None else "-"
        picks = sorted({1, 2, 3, len(view.forecast)} & set(range(1, len(view.forecast) + 1)))
        nxt = " ".join(
            f"{step_label(k, step_s)} {view.forecast[k - 1][1]:.1f}" for k in picks[:shown_steps]
        )
        lstm, naive = view.mae()
        rows.append(
            (sensor, when, last, nxt or "waiting", view.status, _fmt(lstm), _fmt(naive),
             str(view.scored))
        )  # fmt: skip
    return rows


def format_table(board: Scoreboard, step_s: float, shown_steps: int = 4) -> str:
    """The table as plain text: one line per sensor (logs, pipes, the closing summary)."""
    widths = (12, 18, 7, 42, 12, 9, 7, 8)
    right = {2, 5, 6, 7}

    def line(cells: tuple[str, ...]) -> str:
        return "".join(
            f"{c:>{w}}" if i in right else ("  " if i == 3 else "") + f"{c:<{w - 2 * (i == 3)}}"
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    head = line(COLUMNS)
    return "\n".join(
        [head, "-" * len(head)] + [line(r) for r in table_rows(board, step_s, shown_steps)]
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def demo_client_id() -> str:
    """A fresh client id per demo, so two demos on one broker do not take over each other."""
    return f"{DEMO_PREFIX}-{uuid.uuid4().hex[:8]}"


@dataclass
class DemoResult:
    """What the demo saw: the scoreboard, rows replayed and whether it was interrupted."""

    board: Scoreboard
    rows: int
    step_s: float
    broker: str
    interrupted: bool = False


def summary(result: DemoResult) -> str:
    """The closing lines: the final table and LSTM vs naive over all sensors."""
    board = result.board
    lines = [format_table(board, result.step_s), ""]
    total_lstm = sum(v.abs_lstm for v in board.views.values())
    total_naive = sum(v.abs_naive for v in board.views.values())
    scored = sum(v.scored for v in board.views.values())
    forecasts = sum(v.forecasts for v in board.views.values())
    lines.append(
        f"replayed {result.rows} rows x {len(board.views)} sensors through {result.broker}; "
        f"{forecasts} forecasts received" + (" (interrupted)" if result.interrupted else "")
    )
    if scored:
        lines.append(
            f"MAE over {scored} forecast steps: LSTM {total_lstm / scored:.2f}, "
            f"naive {total_naive / scored:.2f}"
        )
    else:
        lines.append("no forecast could be scored yet (sensors still warming up): run longer")
    return "\n".join(lines)
