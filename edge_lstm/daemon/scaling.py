"""Past one Pi: the daemon's shard, its subscriptions, and its sensor states on the broker.

``shard = "I/N"``: the intake filter (``owns``) skips other shards' readings (the pipeline
counts them as ``other_shard``). ``shared_group``: the reading subscriptions become
``$share/NAME/...`` so the broker splits the stream (it must dispatch by topic hash; see
docs/scaling.md). ``broker_state``: the state subscription and the ``StateExchange``.
The service calls four things: ``subscriptions``, ``take_states``, ``publish_states``, ``health``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import ConfigError
from ..stream.readings import Inbound
from ..stream.shard import ShardRule
from .config import Config
from .link import Link
from .pipeline import Pipeline
from .state_exchange import SensorRows, StateExchange

STATE_QOS = 1


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
        self, batch: Sequence[Inbound], rows: SensorRows, model_sha256: str, now: float
    ) -> tuple[list[Inbound], list[tuple[int, int]]]:
        """Handle the batch's state messages (imports); return the readings and the states' acks.

        States go first: a retained state arrives right after the subscription, before the
        sensor's next reading, so the reading finds the sensor warm. A state message is
        acknowledged at once: what it holds is in memory, and the broker keeps it retained.
        """
        exchange = self.exchange
        if exchange is None:
            return list(batch), []
        readings, acks = [], []
        for msg in batch:
            if exchange.sensor_of(msg.topic) is None:
                readings.append(msg)
            else:
                exchange.receive(msg.topic, msg.payload, rows, model_sha256, now)
                acks.append((msg.mid, msg.qos))
        return readings, acks

    def publish_states(self, link: Link, pipeline: Pipeline, now: float) -> int:
        """broker_state: publish (QoS 1, retained) each changed owned sensor's state; how many.

        Called at every snapshot and so at a clean stop, before the link goes offline.
        """
        if self.exchange is None:
            return 0
        ids = pipeline.forecaster.sensors()
        states = self.exchange.outgoing(pipeline, ids, pipeline.meta.tflite_sha256, now)
        link.hold_wakeups()
        try:
            for topic, payload in states:
                link.publish(topic, payload, qos=STATE_QOS, retain=True)
        finally:
            link.release_wakeups()
        return len(states)

    def health(self) -> dict[str, object]:
        """The health document's ``scaling`` section."""
        return {
            "shard": str(self.shard),
            "shared_group": self.shared_group,
            "broker_state": self.exchange.as_dict() if self.exchange is not None else None,
        }
