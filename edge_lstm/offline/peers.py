"""Statistical peers to compare the LSTM with; the only module that imports statsforecast.

MSTL (Bandara et al., 2021) with a daily and a weekly season and an AutoETS trend is what a user
who compares forecasters would pick for sensor data with people-driven cycles. It is refitted at
every origin on the sensor's own recent history, so it is far slower than the LSTM: evaluate it on
a subset of origins (``evaluate --peer mstl`` does).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..errors import EdgeLstmError

F64 = npt.NDArray[np.float64]
PEERS = ("mstl",)
INSTALL_HINT = "pip install 'edge-lstm[peer]' (or statsforecast)"
DAY_S = 86_400.0


class PeerUnavailable(EdgeLstmError):
    """The peer's library is not installed."""


@dataclass(frozen=True)
class MstlPeer:
    """MSTL on the last ``window`` steps; seasons of a day and a week of steps where they fit."""

    step_s: float
    window_weeks: int = 10
    name: str = "mstl"
    label: str = "MSTL"

    @property
    def seasons(self) -> tuple[int, ...]:
        day = round(DAY_S / self.step_s)
        return tuple(s for s in (day, 7 * day) if s >= 2)

    def forecast(self, history: F64, horizon: int) -> F64:
        """``(horizon, F)`` forecasts from ``history`` ``(n, F)`` (one model per feature)."""
        from statsforecast.models import MSTL, AutoETS

        week = max(self.seasons, default=1)
        values = history[-max(self.window_weeks * week, 1) :]
        # A season needs two full periods in the window; the weekly one also needs some to spare.
        seasons = [s for s in self.seasons if len(values) >= 3 * s] or [
            s for s in self.seasons if len(values) >= 2 * s
        ]
        out = np.empty((horizon, values.shape[1]))
        for f in range(values.shape[1]):
            y = values[:, f].astype(np.float64)
            if not seasons or np.ptp(y) == 0:
                out[:, f] = y[-1]
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = MSTL(season_length=seasons, trend_forecaster=AutoETS(model="ZZN"))
                out[:, f] = model.fit(y).predict(horizon)["mean"]
        return out


def make_peer(name: str, step_s: float) -> MstlPeer:
    """The named peer; ``PeerUnavailable`` (one line, with the install command) if missing."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r} (choose from {', '.join(PEERS)})")
    try:
        import statsforecast  # noqa: F401
    except ImportError:
        raise PeerUnavailable(f"--peer {name} needs statsforecast: {INSTALL_HINT}") from None
    return MstlPeer(step_s)


def peer_available() -> bool:
    """Whether statsforecast can be imported (train.py says so when it cannot)."""
    try:
        import statsforecast  # noqa: F401
    except ImportError:
        return False
    return True
