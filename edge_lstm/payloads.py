"""The JSON documents the daemon publishes (forecasts); pure, schema in docs/daemon.md.

Single-feature models: ``"v"``, ``"lo"``, ``"hi"`` are numbers. Multi-feature models: they are
objects keyed by feature name (``{"temperature": 21.4, "humidity": 40.2}``), so a Home Assistant
template reads ``value_json.forecast[0].v.temperature``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import datetime, timezone

import numpy as np
import numpy.typing as npt

from .metadata import ModelMeta

FloatArray = npt.NDArray[np.float32]
DECIMALS = 5
"""Published values are rounded to this many decimals (float32 carries ~7 digits anyway)."""


def iso(ts: float) -> str:
    """Epoch seconds -> ``2024-05-01T12:00:00Z`` (milliseconds only when not whole)."""
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


class ForecastFormatter:
    """Builds forecast payloads for one model; caches the step times shared by many sensors."""

    def __init__(self, meta: ModelMeta, horizon: int) -> None:
        self.meta = meta
        self.horizon = horizon
        self.features = list(meta.features)
        band = meta.validation.band(meta.n_features) if meta.validation else None
        # The band only covers the steps the model was validated on.
        self.band = (band[0][:horizon], band[1][:horizon]) if band is not None else None
        self.model = {"name": meta.name, "sha256": meta.tflite_sha256}
        self._times: OrderedDict[float, list[str]] = OrderedDict()

    def _step_times(self, bucket_start: float) -> list[str]:
        times = self._times.get(bucket_start)
        if times is None:
            step = self.meta.step_s
            times = [iso(bucket_start + k * step) for k in range(self.horizon + 1)]
            self._times[bucket_start] = times
            if len(self._times) > 64:
                self._times.popitem(last=False)
        return times

    def format(
        self,
        sensor_id: str,
        bucket_start: float,
        forecast: FloatArray,
        status: str,
        steps_seen: int,
        issued_at: float,
    ) -> bytes:
        """One sensor's forecast document; ``forecast`` is ``(H, F)`` in original units."""
        times = self._step_times(bucket_start)
        values = np.round(forecast.astype(np.float64), DECIMALS)
        lo = hi = None
        if self.band is not None:
            n = min(len(self.band[0]), len(values))
            lo = np.round(values[:n] + self.band[0][:n], DECIMALS).tolist()
            hi = np.round(values[:n] + self.band[1][:n], DECIMALS).tolist()
        single = len(self.features) == 1
        steps = []
        for k, row in enumerate(values.tolist()):
            item: dict[str, object] = {"t": times[k + 1], "v": self._cell(row, single)}
            if lo is not None and hi is not None and k < len(lo):
                item["lo"] = self._cell(lo[k], single)
                item["hi"] = self._cell(hi[k], single)
            steps.append(item)
        doc = {
            "sensor": sensor_id,
            "issued_at": iso(issued_at),
            "last_obs_at": times[0],
            "step_s": self.meta.step_s,
            "status": status,
            "steps_seen": steps_seen,
            "model": self.model,
            "features": self.features,
            "forecast": steps,
        }
        return json.dumps(doc, separators=(",", ":")).encode("utf-8")

    def _cell(self, row: list[float], single: bool) -> object:
        if single:
            return row[0]
        return dict(zip(self.features, row, strict=True))
