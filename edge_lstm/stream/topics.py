"""Topic templates (``sensors/{sensor}``) to MQTT subscriptions, and sensor-id validation.

Pure. A sensor id ends up inside output topics (``edge-lstm/{sensor}/forecast``) and Home
Assistant ids, so it must never contain a topic separator or wildcard, control characters or a
leading ``$`` (broker-internal topics).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from ..errors import ConfigError, PayloadError

PLACEHOLDER = "{sensor}"
MAX_SENSOR_ID_BYTES = 128
_BAD_ID_CHARS = re.compile(r"[/+#\x00-\x1f\x7f]")
# Unicode categories a sensor id may not contain: controls (Cc), format characters (Cf: bidi
# overrides such as U+202E, zero-width joiners), surrogates (Cs), and the line and paragraph
# separators (Zl U+2028, Zp U+2029). They pass MQTT but make topics, logs and Home Assistant
# names display as something else than what they are.
_BAD_ID_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_PLAIN_ID = re.compile(r"[!\x22%-*,-.0-~](?:[ -\x22$-*,-.0-~]{0,126}[!\x22$-*,-.0-~])?")
"""Printable ASCII ids that pass every check below: no '/', '+', '#', no leading '$', no white
space at either end, at most 128 bytes (ASCII: a byte a character, no bad category)."""


def _bad_character(text: str) -> str | None:
    for char in text:
        if unicodedata.category(char) in _BAD_ID_CATEGORIES:
            return f"U+{ord(char):04X} ({unicodedata.category(char)})"
    return None


def sensor_id_problem(sensor_id: str) -> str | None:
    """Why ``sensor_id`` cannot be used, or None when it is fine."""
    if _PLAIN_ID.fullmatch(sensor_id):
        return None  # the common case, at a fraction of the checks below (once per message)
    if not sensor_id:
        return "empty sensor id"
    if len(sensor_id.encode("utf-8", "surrogatepass")) > MAX_SENSOR_ID_BYTES:
        return f"sensor id longer than {MAX_SENSOR_ID_BYTES} bytes"
    if _BAD_ID_CHARS.search(sensor_id):
        return f"sensor id {sensor_id!r} contains '/', '+', '#' or a control character"
    if sensor_id.startswith("$"):
        return f"sensor id {sensor_id!r} starts with '$'"
    bad = _bad_character(sensor_id)
    if bad is not None:
        return f"sensor id {sensor_id!r} contains the control or format character {bad}"
    if sensor_id != sensor_id.strip():
        return f"sensor id {sensor_id!r} has leading or trailing white space"
    try:
        sensor_id.encode("utf-8")
    except UnicodeEncodeError:
        return "sensor id is not valid UTF-8"
    return None


def check_sensor_id(sensor_id: str) -> str:
    """Return ``sensor_id`` or raise ``PayloadError("bad_sensor_id", ...)``."""
    problem = sensor_id_problem(sensor_id)
    if problem is not None:
        raise PayloadError("bad_sensor_id", problem)
    return sensor_id


def validate_output_prefix(prefix: str, name: str = "prefix") -> str:
    """A publish prefix: non-empty, no wildcards, no empty segments, not a ``$`` topic."""
    if not prefix or any(c in prefix for c in "+#\x00") or "" in prefix.split("/"):
        raise ConfigError(f"{name} {prefix!r}: must be non-empty, without '+', '#' or '//'")
    if prefix.startswith("$"):
        raise ConfigError(f"{name} {prefix!r}: topics starting with '$' belong to the broker")
    bad = _bad_character(prefix)
    if bad is not None:
        raise ConfigError(f"{name} {prefix!r}: contains the control or format character {bad}")
    if len(prefix.encode("utf-8", "surrogatepass")) > 1024:
        raise ConfigError(f"{name}: longer than 1024 bytes")
    return prefix


def filters_overlap(a: str, b: str) -> bool:
    """Whether two topic filters (``+`` wildcards, no ``#``) can match one topic.

    >>> filters_overlap("mf/+", "mf/status"), filters_overlap("mf/+", "mf/+/forecast")
    (True, False)
    """
    left, right = a.split("/"), b.split("/")
    if len(left) != len(right):
        return False
    return all(x == y or "+" in (x, y) for x, y in zip(left, right, strict=True))


@dataclass(frozen=True)
class TopicTemplate:
    """An input topic template with exactly one whole ``{sensor}`` segment.

    >>> t = TopicTemplate("home/+/{sensor}/temperature")
    >>> t.subscription
    'home/+/+/temperature'
    >>> t.match("home/kitchen/probe1/temperature")
    'probe1'
    >>> t.match("home/kitchen/probe1/humidity") is None
    True
    """

    template: str
    _segments: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _index: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        segments = tuple(self.template.split("/"))
        where = [i for i, s in enumerate(segments) if PLACEHOLDER in s]
        if len(where) != 1 or segments[where[0]] != PLACEHOLDER:
            raise ConfigError(
                f"topic template {self.template!r}: needs exactly one whole segment {PLACEHOLDER}"
            )
        for seg in segments:
            if "#" in seg or ("+" in seg and seg != "+") or "\x00" in seg:
                raise ConfigError(
                    f"topic template {self.template!r}: '#' is not allowed and '+' must be a "
                    "whole segment"
                )
            if "{" in seg.replace(PLACEHOLDER, "") or "}" in seg.replace(PLACEHOLDER, ""):
                raise ConfigError(
                    f"topic template {self.template!r}: only the {PLACEHOLDER} placeholder exists"
                )
        object.__setattr__(self, "_segments", segments)
        object.__setattr__(self, "_index", where[0])

    @property
    def subscription(self) -> str:
        """The MQTT subscription filter (the placeholder becomes ``+``)."""
        return "/".join("+" if i == self._index else s for i, s in enumerate(self._segments))

    def match(self, topic: str) -> str | None:
        """The sensor id segment of ``topic``, or None when the topic does not fit."""
        parts = topic.split("/")
        if len(parts) != len(self._segments):
            return None
        for part, seg in zip(parts, self._segments, strict=True):
            if seg not in ("+", PLACEHOLDER) and part != seg:
                return None
        return parts[self._index]

    def topic_for(self, sensor_id: str) -> str:
        """The concrete topic of one sensor (``+`` segments must not be present)."""
        if "+" in self._segments:
            raise ValueError(f"template {self.template!r} has '+' segments")
        return self.template.replace(PLACEHOLDER, sensor_id)


class TopicRouter:
    """Maps an incoming topic to a sensor id across several templates (first match wins)."""

    def __init__(self, templates: tuple[TopicTemplate, ...]) -> None:
        self.templates = templates

    @property
    def subscriptions(self) -> list[str]:
        """Unique subscription filters, in template order."""
        return list(dict.fromkeys(t.subscription for t in self.templates))

    def sensor_for(self, topic: str) -> str:
        """The validated sensor id, or ``PayloadError`` (``bad_topic`` / ``bad_sensor_id``)."""
        for template in self.templates:
            sensor_id = template.match(topic)
            if sensor_id is not None:
                return check_sensor_id(sensor_id)
        raise PayloadError("bad_topic", f"topic {topic!r} matches no input template")


@dataclass(frozen=True)
class OutputTopics:
    """Published topic names."""

    prefix: str

    @property
    def status(self) -> str:
        """Retained availability: ``online`` / ``offline`` (also the last will)."""
        return f"{self.prefix}/status"

    @property
    def health(self) -> str:
        """Retained health document."""
        return f"{self.prefix}/health"

    def forecast(self, sensor_id: str) -> str:
        """One sensor's forecasts."""
        return f"{self.prefix}/{sensor_id}/forecast"

    def accuracy(self, sensor_id: str) -> str:
        """One sensor's running accuracy (retained)."""
        return f"{self.prefix}/{sensor_id}/accuracy"
