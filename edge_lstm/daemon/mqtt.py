"""The one module that imports paho: connection, availability, intake queue, publishing.

paho is driven through its documented external-loop API by our own network thread
(``netloop.NetworkLoop``); its message callback only wraps each message and puts it on a
bounded queue (never blocks, never parses: the worker does that in batches). QoS 1 with
``manual_ack``: the worker acknowledges a reading once it has been handled, so a reading that
was queued but not handled when the process died is redelivered by the broker from the
persistent session.
"""

from __future__ import annotations

import logging
import queue
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ..errors import BrokerError
from ..stream.readings import Inbound
from .config import Config
from .health import RateLimitedLog
from .intake import Intake
from .netloop import NetworkLoop

log = logging.getLogger(__name__)

ONLINE = "online"
OFFLINE = "offline"
# Outgoing QoS 1 forecasts held by paho while the broker is away; beyond this they are dropped
# (counted) instead of growing memory without bound on a Pi.
MAX_QUEUED_PUBLISHES = 50_000
MAX_INFLIGHT_PUBLISHES = 1_000
SESSION_EXPIRY_S = 7 * 24 * 3600
"""How long the broker keeps our session (and queued readings) while we are away (MQTT 5)."""


SESSION_TAKEN_OVER = 142
"""MQTT 5 DISCONNECT reason: another client connected with our client id."""
TAKEOVER_WINDOW_S = 2.0
"""A connection dropped this soon after it was accepted counts as taken over."""
TAKEOVER_RESET_S = 60.0
NETWORK_STUCK_S = 60.0
"""A connected network loop that has not turned for this long is stuck (it turns every 1 s)."""
SWITCH_INTERVAL_S = 0.0005
"""The interpreter's thread switch interval while the link runs (see ``start``)."""


class MqttLink:
    """A paho client configured the way a long-running daemon needs it."""

    def __init__(
        self,
        config: Config,
        subscriptions: list[str],
        status_topic: str,
        intake: Intake[Inbound],
        on_connected: Callable[[], None] | None = None,
        extra_handlers: Mapping[str, Callable[[bytes], None]] | None = None,
    ) -> None:
        self.config = config
        self.subscriptions = subscriptions
        self.status_topic = status_topic
        self.intake = intake
        self.on_connected = on_connected
        self.extra_handlers = dict(extra_handlers or {})
        self.connected = threading.Event()
        self.connects = 0
        self.dropped = 0
        self.publish_dropped = 0
        self.last_error = ""
        self._paused = False
        self._started = False
        self._connected_mono = 0.0
        self._takeovers = 0
        self._rate_log = RateLimitedLog(log, 30.0)
        self._delivered = 0
        self._client = self._make_client()
        self._loop = NetworkLoop(
            self._client,
            delivered=lambda: self._delivered,
            on_connect_error=self._on_connect_error,
            backoff_s=(config.reconnect_min_s, config.reconnect_max_s),
            worker_reads=True,
        )
        self._client.on_socket_register_write = self._loop.on_register_write

    @property
    def reconnects(self) -> int:
        """Successful connects after the first."""
        return max(0, self.connects - 1)

    def _make_client(self) -> paho.Client:
        c = self.config
        v5 = c.mqtt_version == "5"
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=c.client_id,
            # Persistent session: QoS 1 readings wait for us while we are away (v5: clean_start
            # False plus a session expiry, set at connect).
            clean_session=None if v5 else False,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            manual_ack=True,
        )
        client.max_inflight_messages_set(MAX_INFLIGHT_PUBLISHES)
        client.max_queued_messages_set(MAX_QUEUED_PUBLISHES)
        client.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        if c.username is not None:
            client.username_pw_set(c.username, c.password())
        if c.tls:
            try:
                client.tls_set(
                    ca_certs=str(c.tls_ca) if c.tls_ca else None,  # None: the system's CAs
                    certfile=str(c.tls_cert) if c.tls_cert else None,
                    keyfile=str(c.tls_key) if c.tls_key else None,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise BrokerError(f"TLS setup failed: {exc}") from exc
            if c.tls_insecure:
                client.tls_insecure_set(True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        for topic, handler in self.extra_handlers.items():
            client.message_callback_add(topic, _wrap_extra(handler))
        return client

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background (returns at once; retried with backoff)."""
        c = self.config
        kwargs: dict[str, object] = {}
        if c.mqtt_version == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            # Acknowledgements wait for the worker; with MQTT 3.1.1 the broker stops sending
            # after its own in-flight limit (Mosquitto: 20), v5 lets us ask for a wider window.
            props.ReceiveMaximum = max(1, min(c.queue_size, 65_535))
            kwargs = {"clean_start": False, "properties": props}
        try:
            self._client.connect_async(
                c.broker_host,
                c.broker_port,
                keepalive=c.keepalive_s,
                **kwargs,  # type: ignore[arg-type]
            )
        except (OSError, ValueError) as exc:
            raise BrokerError(f"cannot connect to {c.broker}: {exc}") from exc
        # paho reads a packet with three recv() calls, each of which lets go of the GIL; with
        # the worker busy in Python, taking it back waits for the switch interval (5 ms by
        # default), so the network thread would read a few hundred packets a second while a
        # batch is handled. A short interval keeps intake flowing; the daemon owns its process.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self._loop.start()
        self._started = True

    def network_problem(self, now_mono: float) -> tuple[bool, str]:
        """``(fatal, why)`` when the network thread is dead or stuck; ``(False, "")`` if fine.

        Dead (fatal): nothing would ever connect again. Stuck: connected, but the loop has not
        turned for a long time (it turns at least once a second while connected).
        """
        if not self._started or self._paused:
            return False, ""
        loop = self._loop
        if not loop.is_alive():
            return True, f"the MQTT network thread has died ({loop.error!r})"
        stuck_s = now_mono - max(loop.turned_at, self._connected_mono)
        if self.connected.is_set() and stuck_s > NETWORK_STUCK_S:
            return False, f"the MQTT network loop has not turned for {stuck_s:.0f}s"
        return False, ""

    def pause_intake(self) -> None:
        """Stop taking new messages (they stay unacknowledged and are redelivered later)."""
        self._paused = True
        self._loop.reading_alone()  # acknowledgements of our own publishes still come in

    def stop(self, timeout_s: float = 3.0) -> None:
        """Publish ``offline`` (retained), disconnect cleanly and stop the network thread."""
        self.pause_intake()
        if self.connected.is_set():
            info = self._client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout_s)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish %s before disconnecting: %s", OFFLINE, exc)
        self._client.disconnect()  # queued: the network thread sends it, then closes
        # Bounded: a thread stuck in a socket call must not hang the shutdown until systemd's
        # SIGKILL; it is a daemon thread, so the process still exits.
        if self._started and not self._loop.stop(timeout_s):
            log.error("the MQTT network thread did not stop within %.1fs; exiting", timeout_s)
        self.connected.clear()

    # -- used by the worker --------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> bool:
        """Queue one publish; False (counted) when paho's bounded queue is full or closed."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            return True  # NO_CONN: queued by paho for QoS 1, sent after the reconnect
        self.publish_dropped += 1
        self._rate_log.log("publish", f"publish to {topic} failed: {info.rc.name}", time.time())
        return False

    def hold_wakeups(self) -> None:
        """Until ``release_wakeups()``: this thread's packets wake the network thread once."""
        self._loop.hold()

    def release_wakeups(self) -> None:
        """Send the packets queued since ``hold_wakeups()``, and read what has arrived."""
        self._loop.release(read_max=self.config.batch_max)

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a handled QoS 1 message."""
        if qos > 0:
            self._client.ack(mid, qos)

    # -- paho callbacks (network thread) -------------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            # Not connected: paho keeps retrying; do not mark ourselves online (Frigate's slip).
            self.last_error = f"broker refused the connection: {reason_code}"
            self._rate_log.log("connect", self.last_error, time.time(), logging.ERROR)
            return
        self.connects += 1
        self._connected_mono = time.monotonic()
        self._loop.reset_backoff()
        self.last_error = ""
        log.info("connected to %s (session present: %s)", self.config.broker, flags.session_present)
        qos = self.config.qos
        topics = [(t, qos) for t in self.subscriptions]
        topics += [(t, 0) for t in self.extra_handlers]
        result, _ = client.subscribe(topics)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.error("subscribe failed: %s", result.name)
        # After the SUBSCRIBE: a broker handles one connection's packets in order, so whoever
        # sees `online` can publish readings and they reach us (none lost to a missing
        # subscription right after a start).
        client.publish(self.status_topic, ONLINE, qos=1, retain=True)
        self.connected.set()
        if self.on_connected is not None:
            self.on_connected()

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        lasted_s = time.monotonic() - self._connected_mono
        v5 = self.config.mqtt_version == "5"
        if was_connected and not self._paused and _taken_over(reason_code, lasted_s, v5):
            self._on_taken_over(client, reason_code, lasted_s)
        elif was_connected and not self._paused:
            if lasted_s > TAKEOVER_RESET_S and self._takeovers:
                self._takeovers = 0
                self._loop.set_backoff(self.config.reconnect_min_s, self.config.reconnect_max_s)
            log.warning("disconnected from %s (%s); reconnecting", self.config.broker, reason_code)
        elif not was_connected and not self._paused and not self.last_error:
            # Dropped before CONNACK: with TLS 1.3 this is how a rejected client certificate
            # shows (the handshake "succeeds" for us, then the broker hangs up).
            self.last_error = (
                f"broker {self.config.broker} closed the connection before accepting it "
                f"({reason_code}); check the client certificate and credentials"
            )
            self._rate_log.log("connect", self.last_error, time.time(), logging.ERROR)

    def _on_taken_over(self, client: paho.Client, reason_code: ReasonCode, lasted_s: float) -> None:
        """Another client with our client_id took the session: say so, and back off.

        Two daemons with one client_id knock each other off at every reconnect, forever: each
        connect succeeds, so the backoff would stay at ``reconnect_min_s``.
        """
        c = self.config
        self._takeovers += 1
        delay = min(c.reconnect_max_s, c.reconnect_min_s * 2**self._takeovers)
        self._loop.set_backoff(delay, max(delay, c.reconnect_max_s))
        self.last_error = (
            f"the broker dropped us after {lasted_s:.1f}s ({reason_code}): most likely another "
            f"client is connected with the same client_id {c.client_id!r} (a second daemon?); "
            f"give each daemon its own client_id. Reconnecting in {delay}s"
        )
        self._rate_log.log("takeover", self.last_error, time.time(), logging.ERROR)

    def _on_connect_error(self, exc: BaseException) -> None:
        self.last_error = f"cannot connect to {self.config.broker}: {describe_connect_error(exc)}"
        self._rate_log.log("connect", self.last_error, time.time(), logging.ERROR)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        self._delivered += 1  # before anything can return: the read loop's progress signal
        if self._paused:
            return  # not acknowledged: the broker keeps it for the next session
        item = Inbound(
            msg.topic, bytes(msg.payload), msg.mid, msg.qos, time.time(), time.monotonic()
        )
        try:
            self.intake.put_nowait(item)
        except queue.Full:
            # Acknowledged although dropped: an unacknowledged message holds one of the broker's
            # in-flight slots until the next reconnect, and enough of them stall all intake.
            self.dropped += 1
            self.ack(msg.mid, msg.qos)
            self._rate_log.log(
                "queue_full",
                f"intake queue full ({self.intake.maxsize}); dropped a message on {msg.topic}",
                time.time(),
            )


def _taken_over(reason_code: ReasonCode, lasted_s: float, v5: bool) -> bool:
    """MQTT 5 says so (142); MQTT 3.1.1 brokers just close: a drop right after connecting."""
    value = getattr(reason_code, "value", None)
    if v5 and value == SESSION_TAKEN_OVER:
        return True
    # Mosquitto closes a taken-over MQTT 5 session without a DISCONNECT packet as well, so
    # paho reports "Unspecified error": a drop right after a successful connect is the sign.
    return lasted_s < TAKEOVER_WINDOW_S and value != 0


def _wrap_extra(
    handler: Callable[[bytes], None],
) -> Callable[[paho.Client, object, paho.MQTTMessage], None]:
    def callback(client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        handler(bytes(msg.payload))

    return callback


def describe_connect_error(exc: BaseException) -> str:
    """One line for a connection error (TLS errors spelled out)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: broker certificate not trusted ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc})"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return "unknown error"
