"""The JSON documents the daemon publishes (forecasts); pure, schema in docs/daemon.md.

Single-feature models: ``"v"``, ``"lo"``, ``"hi"`` are numbers. Multi-feature models: they are
objects keyed by feature name (``{"temperature": 21.4, "humidity": 40.2}``), so a Home Assistant
template reads ``value_json.forecast[0].v.temperature``.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

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
        self._issued: dict[float, str] = {}
        self._single = len(self.features) == 1
        fixed = {"step_s": meta.step_s, "model": self.model, "features": self.features}
        self._fixed = json.dumps(fixed, separators=(",", ":"))[1:-1]

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
        if self._single and np.isfinite(values).all():
            return self._format_single(
                sensor_id, times, values[:, 0], status, steps_seen, issued_at
            )
        rows = _rows(values)
        lo = hi = None
        if self.band is not None:
            n = min(len(self.band[0]), len(values))
            lo = _rows(np.round(values[:n] + self.band[0][:n], DECIMALS))
            hi = _rows(np.round(values[:n] + self.band[1][:n], DECIMALS))
        cell = self._cell
        steps = []
        for k, row in enumerate(rows):
            item: dict[str, object] = {"t": times[k + 1], "v": cell(row)}
            if lo is not None and hi is not None and k < len(lo):
                item["lo"] = cell(lo[k])
                item["hi"] = cell(hi[k])
            steps.append(item)
        if issued_at not in self._issued:  # one batch shares one issue time
            self._issued = {issued_at: iso(issued_at)}
        doc = {
            "sensor": sensor_id,
            "issued_at": self._issued[issued_at],
            "last_obs_at": times[0],
            "step_s": self.meta.step_s,
            "status": status,
            "steps_seen": steps_seen,
            "model": self.model,
            "features": self.features,
            "forecast": steps,
        }
        return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")

    def _format_single(
        self,
        sensor_id: str,
        times: list[str],
        values: npt.NDArray[np.floating[Any]],
        status: str,
        steps_seen: int,
        issued_at: float,
    ) -> bytes:
        # The common case (one feature, finite values) written directly: this runs once per
        # reading on a Pi, and json.dumps of nested dicts costs several times more. The
        # document is identical to the general path (tests compare both).
        vals = values.tolist()
        steps = [f'{{"t":"{times[k + 1]}","v":{v!r}' for k, v in enumerate(vals)]
        if self.band is not None:
            n = min(len(self.band[0]), len(vals))
            lo = np.round(values[:n] + self.band[0][:n, 0], DECIMALS).tolist()
            hi = np.round(values[:n] + self.band[1][:n, 0], DECIMALS).tolist()
            for k in range(n):
                steps[k] += f',"lo":{lo[k]!r},"hi":{hi[k]!r}'
        if issued_at not in self._issued:
            self._issued = {issued_at: iso(issued_at)}
        doc = (
            f'{{"sensor":{json.dumps(sensor_id)},"issued_at":"{self._issued[issued_at]}",'
            f'"last_obs_at":"{times[0]}",{self._fixed},"status":"{status}",'
            f'"steps_seen":{steps_seen},"forecast":[{"},".join(steps)}}}]}}'
        )
        return doc.encode("utf-8")

    def _cell(self, row: list[float | None]) -> object:
        if self._single:
            return row[0]
        return dict(zip(self.features, row, strict=True))


def _rows(values: npt.NDArray[np.floating[Any]]) -> list[list[float | None]]:
    rows: list[list[float | None]] = values.tolist()
    if not np.isfinite(values).all():  # a diverging model: null, never invalid JSON (NaN)
        rows = [[v if math.isfinite(v) else None for v in row] for row in rows]  # type: ignore[arg-type]
    return rows
