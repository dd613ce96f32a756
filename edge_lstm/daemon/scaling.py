"""Past one Pi: the daemon's shard, its subscriptions, and its sensor states on the broker.

``shard = "I/N"``: the intake filter (``owns``) skips other shards' readings (the pipeline
counts them as ``other_shard``). ``shared_group``: the reading subscriptions become
``$share/NAME/...`` so the broker splits the stream (it must dispatch by topic hash; see
docs/scaling.md). ``broker_state``: the state subscription and the ``StateExchange``.
The service calls four things: ``subscriptions``, ``take_states``, ``publish_states``, ``health``.

Taking over needs the states before the readings. A fresh session gets them so (the broker
sends the retained states right after the subscription), but a resumed persistent session
(a replacement Pi with the dead one's ``client_id``) first gets the readings queued in it.
So at start, with ``broker_state``, the worker holds every reading back (unacknowledged: a
crash loses nothing) and publishes a marker to ``PREFIX/state/$sync-NONCE``: the broker
delivers it after the retained states of our subscription, so when it comes back every state
has been seen, and the held readings go on, in their order, to sensors now warm.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol

from ..errors import ConfigError
from ..stream.readings import Inbound
from ..stream.shard import ShardRule
from .config import Config
from .link import Wakeups, one_wakeup
from .pipeline import Pipeline
from .state_exchange import StateExchange

log = logging.getLogger(__name__)

STATE_QOS = 1
SYNC_WAIT_S = 10.0
"""Readings are held at most this long for the sync marker (then go on; a few may start cold)."""
MAX_HELD = 50_000


class Publishing(Wakeups, Protocol):
    """The part of the daemon's ``Link`` that scaling uses."""

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> bool:
        """Queue one publish."""
        ...


class Scaling:
    """What ``shard``, ``shared_group`` and ``broker_state`` change in one daemon."""

    def __init__(self, config: Config, started_at: float) -> None:
        self.shard = ShardRule(config.shard_index, config.shard_count)
        self.shared_group = config.shared_group
        if self.shared_group is not None and not self.shard.everything:
            # The broker picks each sensor's daemon; a shard filter on top would drop every
            # sensor the two rules disagree on.
            raise ConfigError(
                f"shared_group = {self.shared_group!r} with shard = {self.shard}: use one of "
                "them (the broker splits the stream, or the daemons do)"
            )
        self.exchange = (
            StateExchange(config.output_prefix, self.shard.owns, started_at)
            if config.broker_state
            else None
        )
        # The sync barrier (module docstring): its marker, the readings held until it returns.
        self._marker = f"$sync-{uuid.uuid4().hex[:12]}"
        self._synced = self.exchange is None
        self._sync_deadline: float | None = None
        self._held: list[Inbound] = []

    @property
    def owns(self) -> Callable[[str], bool] | None:
        """The pipeline's intake filter (None: this daemon owns every sensor)."""
        return None if self.shard.everything else self.shard.owns

    def subscriptions(self, readings: Sequence[str]) -> list[str]:
        """The filters to subscribe to: readings (shared if so configured), then states."""
        subs = [f"$share/{self.shared_group}/{t}" for t in readings] if self.shared_group else []
        subs = subs or list(readings)
        if self.exchange is not None:
            # Not shared: every member must see the states of the sensors it may take over.
            subs.append(self.exchange.subscription)
        return subs

    def take_states(
        self, batch: Sequence[Inbound], pipeline: Pipeline, link: Publishing
    ) -> tuple[list[Inbound], list[tuple[int, int]]]:
        """Handle the batch's state messages (imports); return the readings and the states' acks.

        A state message is acknowledged at once: what it holds is in memory, and the broker
        keeps it retained. Until the sync marker is back, readings are held (not returned).
        """
        exchange = self.exchange
        if exchange is None:
            return list(batch), []
        now = time.time()
        if self._sync_deadline is None:  # the first batch: our subscriptions are on their way
            self._sync_deadline = time.monotonic() + SYNC_WAIT_S
            topic = f"{exchange.prefix}/state/{self._marker}"
            link.publish(topic, b"", qos=STATE_QOS, retain=False)
        readings, acks = [], []
        sha = pipeline.meta.tflite_sha256
        for msg in batch:
            sensor_id = exchange.sensor_of(msg.topic)
            if sensor_id is None:
                readings.append(msg)
                continue
            acks.append((msg.mid, msg.qos))
            if sensor_id == self._marker:
                self._synced = True
            elif not sensor_id.startswith("$sync-"):  # other daemons' markers: no news
                exchange.receive(msg.topic, msg.payload, pipeline, sha, now)
        if self._synced or not self._hold(readings):
            readings, self._held = self._held + readings, []
        else:
            readings = []
        return readings, acks

    def _hold(self, readings: list[Inbound]) -> bool:
        """Keep ``readings`` back for the sync marker; False when it is time to give up."""
        assert self._sync_deadline is not None
        if time.monotonic() < self._sync_deadline and len(self._held) < MAX_HELD:
            self._held += readings
            return True
        log.warning(
            "broker_state: the sync marker did not come back within %.0fs (%d readings held); "
            "going on, sensors whose state arrives after their readings start cold",
            SYNC_WAIT_S,
            len(self._held),
        )
        self._synced = True
        return False

    def publish_states(self, link: Publishing, pipeline: Pipeline, now: float) -> int:
        """broker_state: publish (QoS 1, retained) each changed owned sensor's state; how many.

        Called at every snapshot and so at a clean stop, before the link goes offline.
        """
        if self.exchange is None:
            return 0
        ids = pipeline.forecaster.sensors()
        states = self.exchange.outgoing(pipeline, ids, pipeline.meta.tflite_sha256, now)
        with one_wakeup(link):
            for topic, payload in states:
                link.publish(topic, payload, qos=STATE_QOS, retain=True)
        return len(states)

    def health(self) -> dict[str, object]:
        """The health document's ``scaling`` section."""
        return {
            "shard": str(self.shard),
            "shared_group": self.shared_group,
            "broker_state": self.exchange.as_dict() if self.exchange is not None else None,
        }
