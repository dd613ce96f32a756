"""The JSON documents the daemon publishes (forecasts); pure, schema in docs/daemon.md.

``lo``/``hi`` (the 80% band) are given by the caller (``Forecaster.interval_batch``: calibrated per
sensor); without them they fall back to the metadata's held-out band, the same for every sensor.
They are published for the horizon steps the model was validated on.

Single-feature models: ``"v"``, ``"lo"``, ``"hi"`` are numbers. Multi-feature models: they are
objects keyed by feature name (``{"temperature": 21.4, "humidity": 40.2}``), so a Home Assistant
template reads ``value_json.forecast[0].v.temperature``.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import numpy.typing as npt

from ..model.arrays import FloatArray
from ..model.metadata import ModelMeta

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
        self._templates: OrderedDict[tuple[float, int, int], str] = OrderedDict()
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
        band: tuple[FloatArray, FloatArray] | None = None,
    ) -> bytes:
        """One sensor's forecast document; ``forecast`` and ``band`` parts are ``(H, F)``."""
        times = self._step_times(bucket_start)
        values = np.round(forecast.astype(np.float64), DECIMALS)
        rows = _rows(values)
        lo = hi = None
        if self.band is not None:
            n = min(len(self.band[0]), len(values))
            if band is None:
                lo = _rows(np.round(values[:n] + self.band[0][:n], DECIMALS))
                hi = _rows(np.round(values[:n] + self.band[1][:n], DECIMALS))
            else:
                lo = _rows(np.round(band[0][:n].astype(np.float64), DECIMALS))
                hi = _rows(np.round(band[1][:n].astype(np.float64), DECIMALS))
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

    def format_batch(
        self,
        sensor_ids: Sequence[str],
        bucket_starts: Sequence[float],
        forecasts: FloatArray,
        statuses: Sequence[str],
        steps_seen: Sequence[int],
        issued_at: float,
        bands: tuple[FloatArray, FloatArray] | None = None,
    ) -> list[bytes]:
        """``format`` for many sensors (``forecasts`` and ``bands`` parts are ``(N, H, F)``)."""
        if not self._single:
            return [
                self.format(
                    s, b, f, st, n, issued_at, None if bands is None else (bands[0][i], bands[1][i])
                )
                for i, (s, b, f, st, n) in enumerate(
                    zip(sensor_ids, bucket_starts, forecasts, statuses, steps_seen, strict=True)
                )
            ]
        # One feature, the common case: round and add the band for the whole batch at once and
        # write the JSON text directly; per-sensor numpy calls and json.dumps of nested dicts
        # would cost several times more, once per reading on a Pi.
        values = np.round(forecasts[:, :, 0].astype(np.float64), DECIMALS)
        numbers = values
        horizon = values.shape[1]
        n = 0
        if self.band is not None:
            # Each sensor's numbers in document order (v, lo, hi per step; v alone past the
            # band), as one list per sensor from a single tolist() for the whole batch.
            n = min(len(self.band[0]), horizon)
            if bands is None:
                lo = np.round(values[:, :n] + self.band[0][:n, 0], DECIMALS)
                hi = np.round(values[:, :n] + self.band[1][:n, 0], DECIMALS)
            else:
                lo = np.round(bands[0][:, :n, 0].astype(np.float64), DECIMALS)
                hi = np.round(bands[1][:, :n, 0].astype(np.float64), DECIMALS)
            banded = np.stack([values[:, :n], lo, hi], axis=2).reshape(len(values), 3 * n)
            numbers = np.concatenate([banded, values[:, n:]], axis=1)
        rows = numbers.tolist()
        finite: list[bool] = np.isfinite(numbers).all(axis=1).tolist()  # type: ignore[assignment]
        if issued_at not in self._issued:
            self._issued = {issued_at: iso(issued_at)}
        head = f'"issued_at":"{self._issued[issued_at]}",{self._fixed},'
        out = []
        for i, sensor_id in enumerate(sensor_ids):
            if finite[i]:
                # No per-sensor cache of this: every per-sensor field is the sensor table's.
                name = '{"sensor":' + json.dumps(sensor_id) + ","
                # One C-level %-format per document: the template holds the step times and a
                # %r (float repr, as json.dumps writes it) for each number.
                body = self._template(bucket_starts[i], horizon, n) % (
                    statuses[i],
                    steps_seen[i],
                    *rows[i],
                )
                out.append((name + head + body).encode("utf-8"))
            else:  # a diverging model: null for the non-finite numbers, via json
                out.append(
                    self.format(
                        sensor_id,
                        bucket_starts[i],
                        forecasts[i],
                        statuses[i],
                        steps_seen[i],
                        issued_at,
                        None if bands is None else (bands[0][i], bands[1][i]),
                    )
                )
        return out

    def _template(self, bucket_start: float, horizon: int, banded: int) -> str:
        """``%`` template of a document's tail for one bucket: status, steps_seen, numbers."""
        key = (bucket_start, horizon, banded)
        template = self._templates.get(key)
        if template is None:
            times = self._step_times(bucket_start)
            steps = [
                f'{{"t":"{times[k + 1]}","v":%r' + (',"lo":%r,"hi":%r}' if k < banded else "}")
                for k in range(horizon)
            ]
            template = (
                f'"last_obs_at":"{times[0]}","status":"%s","steps_seen":%d,'
                f'"forecast":[{",".join(steps)}]}}'
            )
            self._templates[key] = template
            if len(self._templates) > 64:
                self._templates.popitem(last=False)
        return template

    def _cell(self, row: list[float | None]) -> object:
        if self._single:
            return row[0]
        return dict(zip(self.features, row, strict=True))


def _rows(values: npt.NDArray[np.floating[Any]]) -> list[list[float | None]]:
    rows: list[list[float | None]] = values.tolist()
    if not np.isfinite(values).all():  # a diverging model: null, never invalid JSON (NaN)
        rows = [[v if math.isfinite(v) else None for v in row] for row in rows]  # type: ignore[arg-type]
    return rows
