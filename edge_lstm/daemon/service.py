"""The daemon: one worker thread owns the interpreter; paho's thread only feeds it a queue.

Lifecycle: ``start()`` loads the model, restores the snapshot (and replays the journal),
connects in the background, starts the worker and tells systemd ``READY=1``. ``stop()`` stops
intake, lets the worker finish its batch and snapshot, publishes ``offline`` and disconnects.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType

from .. import __version__
from ..model.forecaster import Forecaster
from ..model.paths import default_model_path
from ..stream.readings import Inbound
from .config import Config
from .health import health_document
from .homeassistant import status_topic as ha_status_topic
from .intake import Intake
from .link import Link, LinkFactory, one_wakeup
from .mqtt import MqttLink
from .pipeline import Outgoing, Pipeline
from .scaling import Scaling
from .sdnotify import Notifier
from .snapshots import SnapshotKeeper, open_journal
from .wal import Journal, NullJournal

__all__ = ["Daemon", "Journal", "NullJournal"]

log = logging.getLogger(__name__)

STOP_STACKS_AFTER_S = 15.0
"""A stop still running after this long prints every stack (it takes ~11 s at most; the unit's
TimeoutStopSec is 20 s)."""

CLOSE_CHECK_S = 1.0
"""How often the worker looks for buckets to close on the wall clock."""
HA_ANNOUNCE_MIN_S = 10.0
"""Home Assistant discovery is republished at most this often, whatever floods its status."""
FORCED_SNAPSHOT_RETRY_S = 2.0
"""After a failed snapshot, the earliest next try outside the regular interval."""
SNAPSHOT_SLACK_BYTES = 65_536


class NetworkThreadDied(RuntimeError):
    """paho's network thread ended: nothing would ever be received or published again."""


class Daemon:
    """``edge-lstm run`` as an object: ``start()``, ``stop()``, ``run_forever()``, ``health()``."""

    def __init__(
        self,
        config: Config,
        env: Mapping[str, str] | None = None,
        link_factory: LinkFactory = MqttLink,
    ) -> None:
        self.config = config
        self._link_factory = link_factory
        self.notifier = Notifier(env)
        self.model_path: Path = config.model or default_model_path()
        self._intake: Intake[Inbound] = Intake(config.queue_size)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._reload = threading.Event()
        self._ha_online = threading.Event()
        self._worker: threading.Thread | None = None
        self._worker_error: BaseException | None = None
        self._next_announce_mono = 0.0
        self._next_forced_snapshot_mono = 0.0
        self._network_stuck = False
        self._started_mono = time.monotonic()
        self._last_health: dict[str, object] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the model and state, connect in the background, start the worker (non-blocking).

        Raises ``ModelError``/``ConfigError``/``BrokerError``/``StateFileError`` for problems a
        user must fix; nothing is left running in that case.
        """
        c = self.config
        forecaster = Forecaster.load(self.model_path, max_sensors=c.max_sensors)
        journal = open_journal(c)
        self.scaling = Scaling(c, time.time())  # shard, shared_group, broker_state
        self.pipeline = Pipeline(forecaster, c, journal, owns=self.scaling.owns)
        self.keeper = SnapshotKeeper(c.state_dir)
        self.keeper.restore(self.pipeline)
        journal.keep_free(2 * self.keeper.last_size_bytes + SNAPSHOT_SLACK_BYTES)
        replayed = self.pipeline.replay(journal.replay_records())
        if replayed:
            log.info("replayed %d journaled reading(s)", replayed)
        extra: dict[str, Callable[[bytes], None]] = {}
        if c.homeassistant:
            extra[ha_status_topic(c.homeassistant_prefix)] = self._on_ha_status
        self.link: Link = self._link_factory(
            c,
            self.scaling.subscriptions(self.pipeline.router.subscriptions),
            self.pipeline.out.status,
            self._intake,
            on_connected=self._ha_online.set if c.homeassistant else None,
            extra_handlers=extra,
        )
        meta = forecaster.meta
        log.info(
            "model %s (%s, sha256 %s…): step %gs, horizon %d, %d feature(s); broker %s",
            self.model_path, forecaster.model.backend, meta.tflite_sha256[:12], meta.step_s,
            self.pipeline.horizon, meta.n_features, c.broker,
        )  # fmt: skip
        self._started_mono = time.monotonic()
        self._last_health = self._health_doc()  # before the worker owns the state
        self.link.start()
        self._worker = threading.Thread(target=self._work, name="edge-lstm-worker", daemon=True)
        self._worker.start()
        self.notifier.ready(f"model {meta.name}, broker {c.broker}")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Clean shutdown: stop intake, finish the batch, snapshot, publish offline, disconnect."""
        if self._stopped.is_set() or self._worker is None:
            return
        self._stopped.set()
        self.notifier.stopping()
        self.link.pause_intake()
        self._stop.set()
        self._worker.join(timeout_s)
        if self._worker.is_alive():
            log.error(
                "worker did not finish within %.1fs; exiting without a final snapshot", timeout_s
            )
        self.link.stop(timeout_s=min(3.0, timeout_s))
        log.info("stopped")

    def run_forever(self) -> int:
        """Start, block until SIGTERM/SIGINT (SIGHUP reloads the model), stop; the exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_signal)
        self.start()
        return self.wait()

    def wait(self) -> int:
        """Block until a stop is requested (or the worker died), stop; the exit code."""
        while not self._stop.wait(1.0):
            pass
        failed = self._worker_error is not None
        # Every wait in stop() is bounded (worker, offline publish, network thread); should one
        # still hang, every thread's stack goes to stderr (the journal) for the bug report.
        faulthandler.dump_traceback_later(STOP_STACKS_AFTER_S, exit=False)
        try:
            self.stop()
        finally:
            faulthandler.cancel_dump_traceback_later()
        return 1 if failed else 0

    def request_stop(self) -> None:
        """Ask ``run_forever`` to return (thread-safe)."""
        self._stop.set()

    def request_reload(self) -> None:
        """Reload the model file at the worker's next turn (what SIGHUP does)."""
        self._reload.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            log.info("SIGHUP: reloading the model from %s", self.model_path)
            self._reload.set()
        else:
            log.info("%s: shutting down", signal.Signals(signum).name)
            self._stop.set()

    def _on_ha_status(self, payload: bytes) -> None:
        # Home Assistant restarted: it wants discovery again. A flood of these only sets the
        # flag again; the worker announces at most once per HA_ANNOUNCE_MIN_S.
        if payload.strip() == b"online":
            self._ha_online.set()

    # -- the worker ------------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # the process must not linger without a worker
            self._worker_error = exc
            log.critical("worker crashed: %r; saving state and exiting", exc, exc_info=True)
            # What the worker did up to here is saved; systemd (Restart=on-failure) restarts
            # the process on its non-zero exit code.
            try:
                self._final_snapshot()
            except Exception as snap_exc:
                log.critical("final snapshot after the crash failed: %r", snap_exc)
            self._stop.set()
            return
        self._final_snapshot()

    def _loop(self) -> None:
        c = self.config
        now = time.monotonic()
        next_health = now + min(1.0, c.health_interval_s)
        next_snapshot = now + c.snapshot_interval_s
        next_close = next_watchdog = now
        watchdog_s = self.notifier.watchdog_interval_s
        while not self._stop.is_set():
            batch = self._drain(timeout_s=0.2)
            if batch:
                self._handle(batch)
            now = time.monotonic()
            if now >= next_close:
                self._publish(self.pipeline.tick(time.time()))
                next_close = now + CLOSE_CHECK_S
            if self._reload.is_set():
                self._reload.clear()
                self._reload_model()
            if self._ha_online.is_set() and now >= self._next_announce_mono:
                self._ha_online.clear()
                self._next_announce_mono = now + HA_ANNOUNCE_MIN_S
                self._publish(self.pipeline.announce_all())
            if now >= next_health:
                self._publish_health()
                next_health = now + c.health_interval_s
            if now >= next_snapshot or self._snapshot_due(now):
                self._snapshot()
                next_snapshot = now + c.snapshot_interval_s
            network_ok = self._check_network(now)
            if watchdog_s is not None and now >= next_watchdog and network_ok:
                # From this loop, and only while the network loop turns too: a stuck worker
                # or a dead MQTT thread stops the pings, and systemd restarts the service.
                self.notifier.watchdog()
                next_watchdog = now + watchdog_s

    def _drain(self, timeout_s: float) -> list[Inbound]:
        # Linger a little: readings trickling in one by one would otherwise cost one full
        # interpreter rollout (horizon steps) each instead of sharing it.
        c = self.config
        return self._intake.take(c.batch_max, timeout_s, linger_s=c.batch_wait_ms / 1000.0)

    def _handle(self, batch: list[Inbound]) -> None:
        p = self.pipeline  # broker_state: the batch's state messages are taken out first
        batch, state_acks = self.scaling.take_states(batch, p, self.link)
        handled = p.handle(batch, time.time(), make_room=self._make_room)
        self._ack(state_acks + handled.acks)
        self._publish(handled.publish)

    def _ack(self, acks: list[tuple[int, int]]) -> None:
        if not acks:
            return
        link = self.link
        with one_wakeup(link):  # one wake-up of the network thread for the batch's acks
            for mid, qos in acks:
                link.ack(mid, qos)

    def _snapshot_due(self, now: float) -> bool:
        """A snapshot before the log passes ``wal_max_bytes``, or to cover unjournaled ones."""
        if self.pipeline.has_unacked and now >= self._next_forced_snapshot_mono:
            return True
        journal = self.pipeline.journal
        return journal.size_bytes() > self.config.wal_max_bytes // 2 and (
            now >= self._next_forced_snapshot_mono
        )

    def _make_room(self) -> bool:
        """A snapshot for a full journal (not more often than a failing disk allows)."""
        return time.monotonic() >= self._next_forced_snapshot_mono and self._snapshot()

    def _snapshot(self) -> bool:
        """Snapshot now; on success acknowledge what it made durable and resize the reserve."""
        saved = self.keeper.save(self.pipeline)
        self.scaling.publish_states(self.link, self.pipeline, time.time())  # broker_state
        if saved:
            self.pipeline.journal.keep_free(2 * self.keeper.last_size_bytes + SNAPSHOT_SLACK_BYTES)
            self._ack(self.pipeline.durable())
        else:
            # A failing disk is not hammered with snapshot attempts once per batch.
            self._next_forced_snapshot_mono = time.monotonic() + FORCED_SNAPSHOT_RETRY_S
        return saved

    def _check_network(self, now: float) -> bool:
        """False while paho's network loop is stuck; a dead network thread ends the worker."""
        fatal, why = self.link.network_problem(now)
        if fatal:
            raise NetworkThreadDied(why)
        if why and not self._network_stuck:  # once per episode, not once per loop turn
            log.error("%s; no watchdog pings until it recovers", why)
        elif not why and self._network_stuck:
            log.info("the MQTT network loop turns again; watchdog pings resume")
        self._network_stuck = bool(why)
        return not why

    def _publish(self, outgoing: list[Outgoing]) -> None:
        qos = self.config.forecast_qos
        link = self.link
        publish = link.publish
        with one_wakeup(link):  # and one for its forecasts
            for item in outgoing:
                item_qos = qos if item.qos is None else item.qos
                publish(item.topic, item.payload, item_qos, item.retain)

    def _reload_model(self) -> None:
        try:
            from ..model.runtime import StepModel

            model = StepModel.load(self.model_path)
        except Exception as exc:  # keep serving the old model
            log.error("model reload failed, keeping the current model: %s", exc)
            return
        forecaster = self.pipeline.forecaster
        kept = forecaster.replace_model(model)
        self.pipeline.replace_forecaster_model(forecaster, kept)
        log.info(
            "reloaded model %s (sha256 %s…); sensor states %s",
            model.meta.name,
            model.meta.tflite_sha256[:12],
            "kept" if kept else "reset (new layout)",
        )

    def _final_snapshot(self) -> None:
        # The worker owns the forecaster, so the last snapshot is taken here, after its loop.
        self._snapshot()
        self._publish_health()
        try:
            self.pipeline.journal.close()
        except Exception as exc:
            log.warning("closing the journal: %s", exc)

    def _publish_health(self) -> None:
        doc = self._health_doc()
        self._last_health = doc
        self.link.publish(self.pipeline.out.health, _json(doc), qos=1, retain=True)
        for sensor_id in self.pipeline.table.accuracy.take_dirty():
            summary = self.pipeline.table.accuracy.sensor_summary(sensor_id)
            if summary is not None:
                topic = self.pipeline.out.accuracy(sensor_id)
                self.link.publish(topic, _json({"sensor": sensor_id, **summary}), retain=True)

    # -- health ------------------------------------------------------------------------------------

    def health(self) -> dict[str, object]:
        """The latest health document (the one published on ``PREFIX/health``).

        Safe from any thread: it is a copy made by the worker, which alone touches the state
        (at most ``min(1 s, health_interval_s)`` old after start, then ``health_interval_s``).
        """
        if self._worker is None or not self._worker.is_alive():
            return self._health_doc() if hasattr(self, "pipeline") else {}
        return dict(self._last_health)

    def _health_doc(self) -> dict[str, object]:
        p = self.pipeline
        meta = p.meta
        link = self.link
        forecaster = p.forecaster
        doc = health_document(
            version=__version__,
            uptime_s=time.monotonic() - self._started_mono,
            link={
                "connected": link.connected.is_set(),
                "broker": self.config.broker,
                "broker_error": link.last_error or None,
            },
            model={
                "name": meta.name,
                "sha256": meta.tflite_sha256,
                "step_s": meta.step_s,
                "horizon": p.horizon,
                "backend": forecaster.model.backend,
            },
            sensors=p.sensors_warm(),
            counters=p.counters.as_dict(),
            queue={
                "queue_depth": self._intake.qsize(),
                "queue_size": self.config.queue_size,
                "queue_dropped": link.dropped,
                "publish_dropped": link.publish_dropped,
                "reconnects": link.reconnects,
            },
            latency_ms=(p.latency.percentiles(), p.lag.percentiles()),
            accuracy=p.table.accuracy.summary(),
            band=forecaster.coverage() if forecaster.has_bands else None,
            journal_errors=p.journal_errors,
            state={
                "dir": str(self.config.state_dir) if self.config.state_dir else None,
                "durability": self.config.durability,
                "last_snapshot_at": self.keeper.last_saved_at,
                "error": self.keeper.last_error or None,
                # The write-ahead log's latest failure (durability=wal), e.g. a full disk.
                "journal_error": getattr(p.journal, "error", "") or None,
            },
        )
        doc["scaling"] = self.scaling.health()  # shard, shared_group, broker_state
        return doc


def _json(doc: Mapping[str, object]) -> bytes:
    import json

    return json.dumps(doc, separators=(",", ":")).encode("utf-8")
