"""Payload bytes -> ``Reading``, or ``PayloadError(reason, message)``. Pure.

Accepted payloads (see docs/daemon.md):

* a plain number: ``21.5`` (single-feature models; arrival time is the timestamp);
* JSON ``{"value": 21.5, "ts": ...}``; ``value`` may be a list of all features in model order;
* JSON with named fields for multi-feature models: ``{"temperature": 21.5, "humidity": 40}``;
* ``ts``: ISO 8601 (``2024-05-01T12:00:00Z``; no zone means UTC) or epoch seconds.

Everything else is rejected with a short ``reason`` used as a counter key.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import PayloadError
from .resample import Reading
from .timestamps import parse_timestamp

# Epoch seconds outside this window are almost certainly milliseconds or garbage.
MIN_TS = 946_684_800.0  # 2000-01-01
MAX_TS = 4_102_444_800.0  # 2100-01-01
_NUMBER = re.compile(rb"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")
_RESERVED = frozenset({"ts", "value"})

REASONS = (
    "too_large",
    "empty",
    "binary",
    "not_a_number",
    "bad_json",
    "not_finite",
    "wrong_length",
    "missing_field",
    "bad_ts",
    "bad_topic",
    "bad_sensor_id",
    "future",
    "internal_error",
)
"""Every rejection reason this module (and the topic router) can give."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """One received message, as the worker sees it."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    arrival_ts: float
    """Wall clock (epoch s) at receipt: the reading's time when the payload has none."""
    arrival_mono: float
    """Monotonic clock at receipt, for latency."""


def parse_payload(
    payload: bytes,
    sensor_id: str,
    features: Sequence[str],
    arrival_ts: float,
    max_bytes: int = 1024,
    max_ahead_s: float = math.inf,
) -> Reading:
    """Turn one MQTT payload into a validated ``Reading`` for ``sensor_id``.

    ``max_ahead_s``: a ``ts`` more than this ahead of ``arrival_ts`` is refused as ``future``
    (a clock glitch or a hostile publisher would otherwise make every later reading ``late``).
    """
    if len(payload) > max_bytes:
        raise PayloadError(
            "too_large", f"{sensor_id}: payload of {len(payload)} bytes > {max_bytes}"
        )
    if not payload or payload.isspace():
        raise PayloadError("empty", f"{sensor_id}: empty payload")
    if payload[:1] != b"{" and _NUMBER.fullmatch(payload):
        value = float(payload)
        values = _check_values(sensor_id, [value], len(features))
        return _reading(sensor_id, values, arrival_ts)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("binary", f"{sensor_id}: payload is not UTF-8 text") from None
    if not text.lstrip().startswith("{"):
        raise PayloadError("not_a_number", f"{sensor_id}: payload {_short(text)} is not a number")
    try:
        doc = _DECODER.decode(text)
    except _ConstantError as exc:
        raise PayloadError("not_finite", f"{sensor_id}: {exc}") from None
    except (ValueError, RecursionError) as exc:
        # ValueError beyond JSONDecodeError: Python refuses integers of more than 4300 digits.
        raise PayloadError("bad_json", f"{sensor_id}: invalid JSON ({_why(exc)})") from None
    if not isinstance(doc, dict):  # pragma: no cover - starts with "{" and parsed
        raise PayloadError("bad_json", f"{sensor_id}: expected a JSON object")
    ts = _parse_ts(sensor_id, doc["ts"], arrival_ts) if "ts" in doc else arrival_ts
    if ts - arrival_ts > max_ahead_s:
        raise PayloadError(
            "future",
            f"{sensor_id}: ts {ts:.0f} is {ts - arrival_ts:.0f}s ahead of its arrival "
            f"(max_clock_skew_s = {max_ahead_s:g})",
        )
    return _reading(sensor_id, _values_from(sensor_id, doc, features), ts)


def _reading(sensor_id: str, values: tuple[float, ...], ts: float) -> Reading:
    try:
        return Reading(sensor_id, values, ts)
    except PayloadError:
        raise
    except ValueError as exc:  # Reading validates itself; keep its words
        raise PayloadError("not_finite", f"{sensor_id}: {exc}") from None


def _values_from(
    sensor_id: str, doc: dict[str, object], features: Sequence[str]
) -> tuple[float, ...]:
    n = len(features)
    if "value" in doc:
        raw = doc["value"]
        items = raw if isinstance(raw, list) else [raw]
        return _check_values(sensor_id, items, n)
    missing = [f for f in features if f not in doc or f in _RESERVED]
    if missing:
        expected = "'value'" if n == 1 else "'value' or the fields " + ", ".join(features)
        raise PayloadError(
            "missing_field", f"{sensor_id}: JSON has no {expected} (missing {missing[0]!r})"
        )
    return _check_values(sensor_id, [doc[f] for f in features], n)


def _check_values(sensor_id: str, items: Sequence[object], n: int) -> tuple[float, ...]:
    if len(items) != n:
        raise PayloadError(
            "wrong_length", f"{sensor_id}: got {len(items)} value(s), the model takes {n}"
        )
    out: list[float] = []
    for item in items:
        # bool is an int in Python; a JSON true is not a measurement.
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise PayloadError(
                "not_a_number", f"{sensor_id}: value {_describe(item)} is not a number"
            )
        value = _as_float(item)
        if value is None or not math.isfinite(value):
            raise PayloadError(
                "not_finite", f"{sensor_id}: value {_describe(item)} is not a finite float64"
            )
        out.append(value)
    return tuple(out)


def _parse_ts(sensor_id: str, raw: object, arrival_ts: float) -> float:
    if raw is None:
        return arrival_ts
    if isinstance(raw, bool):
        raise PayloadError("bad_ts", f"{sensor_id}: ts must be ISO 8601 or epoch seconds")
    if isinstance(raw, (int, float)):
        as_float = _as_float(raw)
        if as_float is None:
            raise PayloadError("bad_ts", f"{sensor_id}: ts {_describe(raw)} is out of range")
        ts = as_float
    elif isinstance(raw, str):
        try:
            ts = parse_timestamp(raw)
        except ValueError:
            raise PayloadError(
                "bad_ts", f"{sensor_id}: ts {_short(raw)} is not ISO 8601 or epoch seconds"
            ) from None
    else:
        raise PayloadError("bad_ts", f"{sensor_id}: ts must be ISO 8601 or epoch seconds")
    if not math.isfinite(ts) or not MIN_TS <= ts < MAX_TS:
        millis = isinstance(raw, (int, float)) and math.isfinite(ts) and ts >= MAX_TS
        hint = " (milliseconds? send seconds)" if millis else ""
        raise PayloadError("bad_ts", f"{sensor_id}: ts {_describe(raw)} is out of range{hint}")
    return ts


def _as_float(number: float) -> float | None:
    """``float(number)``, None for an integer beyond float64 (float() raises OverflowError)."""
    try:
        return float(number)
    except OverflowError:
        return None


def _describe(item: object) -> str:
    """A short, safe rendering of a JSON value for a message.

    Never ``repr`` a huge integer: Python refuses to print one of more than 4300 digits.
    """
    if isinstance(item, int) and not isinstance(item, bool) and item.bit_length() > 64:
        return f"(an integer of about {int(item.bit_length() * 0.30103) + 1} digits)"
    try:
        return _short(json.dumps(item))
    except (ValueError, TypeError, RecursionError):
        return f"(a {type(item).__name__})"


class _ConstantError(ValueError):
    pass


def _reject_constant(name: str) -> float:
    # json accepts NaN / Infinity by default; they are not valid JSON and not measurements.
    raise _ConstantError(f"{name} is not allowed")


# One decoder for all messages: json.loads with an option builds a new decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _why(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
