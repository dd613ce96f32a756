"""Parse the text forms of export options (``--step 30min``, ``--scaler 1,2:3,4``). Pure."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from ..model.metadata import Scaler

_UNITS_S = {"": 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*$")


def parse_duration(text: str) -> float:
    """``"30min"``, ``"1h"``, ``"90s"``, ``"3600"`` -> seconds; ``ValueError`` if not a duration."""
    match = _DURATION.match(text.lower())
    if not match or match.group(2) not in _UNITS_S:
        raise ValueError(f"{text!r} is not a duration (examples: 3600, 90s, 30min, 1h, 1d)")
    seconds = float(match.group(1)) * _UNITS_S[match.group(2)]
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"duration {text!r} must be > 0")
    return seconds


def parse_scaler(text: str) -> Scaler:
    """``"m1,m2:s1,s2"`` or a JSON file ``{"mean": [...], "scale": [...]}`` -> ``Scaler``."""
    path = Path(text)
    if text.endswith(".json") or path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return Scaler(
                tuple(float(v) for v in doc["mean"]), tuple(float(v) for v in doc["scale"])
            )
        except FileNotFoundError:
            raise ValueError(f"scaler file {text} not found") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f'scaler file {text}: expected {{"mean": [...], "scale": [...]}} ({exc})'
            ) from exc
    if text.count(":") != 1:
        raise ValueError(f"scaler {text!r} is not MEAN1,MEAN2,...:SCALE1,SCALE2,... or a JSON file")
    mean_text, scale_text = text.split(":")
    try:
        mean = tuple(float(v) for v in mean_text.split(","))
        scale = tuple(float(v) for v in scale_text.split(","))
    except ValueError:
        raise ValueError(f"scaler {text!r} holds a value that is not a number") from None
    return Scaler(mean, scale)


def parse_names(text: str) -> tuple[str, ...]:
    """``"a, b"`` -> ``("a", "b")``; empty names are an error."""
    names = tuple(part.strip() for part in text.split(","))
    if any(not name for name in names):
        raise ValueError(f"feature names {text!r} contain an empty name")
    return names
