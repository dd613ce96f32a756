"""The one parser of timestamps: ISO 8601 or epoch seconds in text -> epoch seconds. Pure.

Readings' ``ts``, CSV time columns, ``--start`` and the daemon's own documents all go through
:func:`parse_timestamp`, so a form accepted in one place is accepted everywhere. The grammar is
written here rather than left to ``datetime.fromisoformat``, whose accepted forms change between
Python versions (3.10 refuses ``...Z``; 3.11 also takes week dates and the basic format).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

FORMS = "ISO 8601 (2024-05-01T12:00:00Z, +02:00 offsets; no zone means UTC) or epoch seconds"

_ISO = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<frac>\d{1,9}))?)?"
    r"(?P<zone>[Zz]|[+-]\d{2}(?::?\d{2})?)?)?",
    re.ASCII,
)
_EPOCH = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", re.ASCII)


def parse_timestamp(text: str) -> float:
    """``"2024-05-01T12:00:00Z"`` or ``"1714564800"`` -> ``1714564800.0`` (epoch seconds).

    ISO 8601 extended form: a date, optionally ``T`` (or a space) and ``hh:mm[:ss[.fraction]]``,
    optionally ``Z`` or an offset ``+hh:mm`` / ``+hhmm`` / ``+hh``; without a zone it is UTC.
    A plain decimal number is epoch seconds. Surrounding white space is ignored. Anything
    else, or a time outside years 1..9999 or not finite, raises ``ValueError`` naming the text.

    >>> parse_timestamp("2023-11-14T22:15:00Z"), parse_timestamp("2023-11-14T23:15:00+01:00")
    (1700000100.0, 1700000100.0)
    >>> parse_timestamp("1700000100.5")
    1700000100.5
    """
    if not isinstance(text, str):  # JSON documents hand us whatever they hold
        raise ValueError(f"time {text!r} is not text")
    stripped = text.strip()
    if _EPOCH.fullmatch(stripped):
        value = float(stripped)
        if not math.isfinite(value):
            raise ValueError(f"time {_short(text)} is out of range")
        return value
    found = _ISO.fullmatch(stripped)
    if found is None:
        raise ValueError(f"time {_short(text)} is not {FORMS}")
    try:
        year, month, day = (int(part) for part in found["date"].split("-"))
        moment = datetime(
            year,
            month,
            day,
            int(found["hour"] or 0),
            int(found["minute"] or 0),
            int(found["second"] or 0),
            tzinfo=timezone.utc,
        )
    except ValueError:
        raise ValueError(f"time {_short(text)} is not a valid date and time") from None
    frac = found["frac"]
    return moment.timestamp() + (int(frac) / 10 ** len(frac) if frac else 0.0) - _offset_s(found)


def _offset_s(found: re.Match[str]) -> int:
    """The zone's offset from UTC in seconds (0 for ``Z`` or no zone)."""
    zone = found["zone"]
    if not zone or zone in "Zz":
        return 0
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"time {_short(found.string)}: bad zone offset {zone!r}")
    sign = -1 if zone[0] == "-" else 1
    return sign * (hours * 3600 + minutes * 60)


def _short(text: str, limit: int = 40) -> str:
    """``repr`` of ``text``, cut to ``limit`` characters: error messages stay one short line."""
    return repr(text if len(text) <= limit else text[:limit] + "...")
