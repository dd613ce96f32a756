"""``broker_state = true``: the worker's side of keeping sensor states on the broker.

Publishing: at every snapshot and at a clean stop, each owned sensor's state goes retained to
``PREFIX/state/SENSOR`` (``outgoing``). Taking over: every ``PREFIX/state/+`` message reaches
the worker like a reading (``receive``); a state for an owned sensor this daemon has no state
for is imported when it was computed with the running model. Everything else is counted by
reason and logged at most once a minute per reason; nothing here raises on a message.

Used by one thread (the worker), like the pipeline it reads from and writes to.
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import numpy as np

from .broker_state import (
    Refused,
    decode_state,
    encode_state,
    sensor_of_state_topic,
    state_subscription,
    state_topic,
)
from .health import RateLimitedLog

log = logging.getLogger(__name__)

Fields = dict[str, np.ndarray[Any, Any]]


class SensorRows(Protocol):
    """What the exchange needs of the pipeline (``Pipeline.export_sensor``/``import_sensor``)."""

    def export_sensor(self, sensor_id: str) -> Fields | None:
        """Every field needed to resume ``sensor_id`` warm, or None if it has no state."""
        ...

    def import_sensor(self, sensor_id: str, fields: Mapping[str, np.ndarray[Any, Any]]) -> bool:
        """Take ``fields`` as the sensor's state; False (nothing changed) if it has state or
        the fields do not fit this model."""
        ...


class StateExchange:
    """Encodes owned sensors' states for the broker and imports the ones this daemon lacks."""

    def __init__(
        self,
        prefix: str,
        owns: Callable[[str], bool],
        started_at: float,
        rate_log_s: float = 60.0,
    ) -> None:
        self.prefix = prefix
        self.owns = owns
        self.started_at = started_at
        self.subscription = state_subscription(prefix)
        self.published = 0
        self.published_bytes = 0
        self.imported = 0
        self.ignored: Counter[str] = Counter()
        self.conflicts = 0
        # When this daemon last published each sensor's state: its own messages come back
        # (we subscribe to what we publish) and must not look like another daemon's.
        self._published_at: dict[str, float] = {}
        # crc32 of each sensor's fields as last published or imported: unchanged, not re-sent.
        self._digests: dict[str, int] = {}
        self._rate_log = RateLimitedLog(log, rate_log_s)

    def sensor_of(self, topic: str) -> str | None:
        """The sensor a state topic is for, None when ``topic`` is not a state topic."""
        return sensor_of_state_topic(self.prefix, topic)

    # -- publishing ------------------------------------------------------------------------------

    def outgoing(
        self, rows: SensorRows, sensor_ids: Iterable[str], model_sha256: str, now: float
    ) -> list[tuple[str, bytes]]:
        """``(topic, payload)`` of each owned sensor whose state changed since its last publish.

        Unchanged states are not sent again: that saves the bandwidth, and a daemon that holds
        a sensor it does not serve (imported at start) never overwrites the owner's newer one.
        """
        out = []
        ids = list(sensor_ids)
        for sensor_id in ids:
            if not self.owns(sensor_id):
                continue
            fields = rows.export_sensor(sensor_id)
            if fields is None:
                continue
            digest = _digest(fields)
            if self._digests.get(sensor_id) == digest:
                continue
            try:
                payload = encode_state(sensor_id, model_sha256, fields, now)
            except ValueError as exc:  # a field this format cannot hold: a bug, not fatal
                self._rate_log.log("encode", f"state of {sensor_id!r} not published: {exc}", now)
                continue
            out.append((state_topic(self.prefix, sensor_id), payload))
            self._digests[sensor_id] = digest
            self._published_at[sensor_id] = now
            self.published_bytes += len(payload)
        self.published += len(out)
        if len(self._digests) > 2 * max(len(ids), 1):  # bounded by the live sensors
            live = set(ids)
            self._digests = {s: d for s, d in self._digests.items() if s in live}
            self._published_at = {s: t for s, t in self._published_at.items() if s in live}
        return out

    # -- taking over -----------------------------------------------------------------------------

    def receive(
        self, topic: str, payload: bytes, rows: SensorRows, model_sha256: str, now: float
    ) -> bool:
        """Handle one message on ``PREFIX/state/+``; True when a state was imported."""
        sensor_id = self.sensor_of(topic)
        if sensor_id is None:
            return self._ignore("not_state_topic", f"{topic!r} is not a state topic", now)
        if not self.owns(sensor_id):
            # Every member sees every state message: the other shards' are no news.
            self.ignored["other_shard"] += 1
            return False
        result = decode_state(payload, model_sha256, sensor_id)
        if isinstance(result, Refused):
            return self._ignore(
                result.reason, f"state of {sensor_id!r} ignored: {result.message}", now
            )
        if rows.import_sensor(sensor_id, result.fields):
            self.imported += 1
            self._digests[sensor_id] = _digest(result.fields)
            log.debug("took the broker's state of %r (saved %.0f)", sensor_id, result.saved_at)
            return True
        if rows.export_sensor(sensor_id) is None:  # refused although we hold nothing: the layout
            return self._ignore(
                "unfit",
                f"state of {sensor_id!r} ignored: its fields do not fit this daemon "
                "(another edge-lstm version?) or the sensor table is full",
                now,
            )
        self._held(sensor_id, result.saved_at, now)
        return False

    def _held(self, sensor_id: str, saved_at: float, now: float) -> None:
        """A state for a sensor we hold already: ours coming back, an old one, or a conflict.

        A state saved after our own latest publish of a sensor that we forecast (we published
        it because its readings changed it) means another daemon forecasts this sensor too:
        its readings reach two members (round-robin shared subscriptions, overlapping shards,
        a re-shard in progress). The two states then diverge; say so.
        """
        ours = self._published_at.get(sensor_id)
        if ours is None or saved_at <= max(ours, self.started_at):
            # Ours coming back, or older than what we hold; or a sensor we hold but have not
            # changed (imported, no readings since): nobody forecasts it here.
            self.ignored["held"] += 1
            return
        self.conflicts += 1
        self._rate_log.log(
            "conflict",
            f"sensor {sensor_id!r}: another daemon published its state while this one "
            "forecasts it; its readings reach two daemons (shared subscription dispatching "
            "round-robin instead of by topic hash? two daemons with one shard?)",
            now,
        )

    def _ignore(self, reason: str, message: str, now: float) -> bool:
        self.ignored[reason] += 1
        self._rate_log.log(reason, message, now)
        return False

    def as_dict(self) -> dict[str, object]:
        """The ``broker_state`` section of the health document."""
        return {
            "published": self.published,
            "published_bytes": self.published_bytes,
            "imported": self.imported,
            "ignored": dict(sorted(self.ignored.items())),
            "conflicts": self.conflicts,
        }


def _digest(fields: Mapping[str, np.ndarray[Any, Any]]) -> int:
    crc = 0
    for value in fields.values():
        crc = zlib.crc32(np.ascontiguousarray(value).tobytes(), crc)
    return crc
