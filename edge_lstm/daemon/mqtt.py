"""The one module that imports paho: connection, availability, intake queue, publishing.

paho's network thread only wraps each message and puts it on a bounded queue (never blocks,
never parses: the worker does that in batches). QoS 1 with ``manual_ack``: the worker
acknowledges a reading once it has been handled, so a reading that was queued but not handled
when the process died is redelivered by the broker from the persistent session.
"""

from __future__ import annotations

import contextlib
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

RECV_BUFFER_BYTES = 65_536
READ_BURST_RECVS = 8


class _Client(paho.Client):
    """paho's client, able to wake its network thread once per worker batch.

    paho writes a byte to a socket pair for every packet queued from another thread (a publish,
    an acknowledgement), so that its network thread leaves ``select``: two system calls and a
    thread switch per packet. Between ``hold_wakeups()`` and ``release_wakeups()`` the worker's
    packets are queued exactly as paho queues them, and the network thread is woken once.
    """

    _held_by: int | None = None
    _wake_pending = False
    # Receive buffer: paho reads each packet with three recv() calls (type, length, body);
    # reading 64 KiB at a time and serving the packets from it takes one call for hundreds.
    _rbuf = b""
    _rpos = 0
    _rsock: object = None
    _recv_budget = 0
    last_loop_mono = 0.0
    """Monotonic time of the network loop's latest turn (``loop_misc`` runs once a turn)."""
    network_error: BaseException | None = None
    """What ended the network thread, if something did."""

    def loop_misc(self) -> MQTTErrorCode:
        self.last_loop_mono = time.monotonic()
        return super().loop_misc()

    def loop_forever(
        self, timeout: float = 1.0, retry_first_connection: bool = False
    ) -> MQTTErrorCode:
        # loop_start()'s thread runs this; an exception here (paho's struct.error on a
        # keepalive beyond 65535, a bug) ends the thread silently. Keep it for the daemon.
        try:
            return super().loop_forever(timeout, retry_first_connection)
        except BaseException as exc:
            self.network_error = exc
            raise

    def network_thread_alive(self) -> bool:
        # paho keeps loop_start()'s thread in a private attribute and has no public accessor;
        # fail loudly (as dead) if a release renames it, rather than never noticing.
        thread = getattr(self, "_thread", None)
        return isinstance(thread, threading.Thread) and thread.is_alive()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        # paho reads max(1, messages in flight) packets per select(), i.e. one when the daemon
        # has no QoS 1 publish of its own in flight. Read until the socket is drained instead,
        # at most READ_BURST_RECVS buffer fills per call so that writes (acks) are not starved;
        # the buffer is always empty on return, so select() never sleeps on buffered bytes.
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        self._recv_budget = READ_BURST_RECVS
        while True:
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN and self._rpos >= len(self._rbuf):
                return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _sock_recv(self, bufsize: int) -> bytes:
        sock = self._sock
        if sock is not self._rsock:  # a new connection: nothing of the old stream is kept
            self._rsock, self._rbuf, self._rpos = sock, b"", 0
        pos = self._rpos
        if pos >= len(self._rbuf):
            if self._recv_budget <= 0:
                raise BlockingIOError()  # back to select() and writing; the data waits there
            self._recv_budget -= 1
            data = super()._sock_recv(RECV_BUFFER_BYTES)
            if len(data) <= bufsize:
                return data
            self._rbuf, pos = data, 0
        end = pos + bufsize
        self._rpos = end
        return self._rbuf[pos:end]

    def hold_wakeups(self) -> None:
        if self._thread is not None:  # only with loop_start(): otherwise paho writes inline
            self._held_by = threading.get_ident()

    def release_wakeups(self) -> None:
        self._held_by = None
        if self._wake_pending:
            self._wake_pending = False
            sock = self._sockpairW
            if sock is not None:
                with contextlib.suppress(OSError):  # full (a wake-up is pending) or closed
                    sock.send(b"0")

    def _packet_queue(  # type: ignore[override]
        self,
        command: int,
        packet: bytes | bytearray,
        mid: int,
        qos: int,
        info: paho.MQTTMessageInfo | None = None,
    ) -> MQTTErrorCode:
        if self._held_by is None or self._held_by != threading.get_ident():
            return super()._packet_queue(command, packet, mid, qos, info)
        self._out_packet.append(
            {
                "command": command,
                "mid": mid,
                "qos": qos,
                "pos": 0,
                "to_process": len(packet),
                "packet": packet,
                "info": info,
            }
        )
        self._wake_pending = True
        return MQTTErrorCode.MQTT_ERR_SUCCESS


class MqttLink:
    """A paho client configured the way a long-running daemon needs it."""

    def __init__(
        self,
        config: Config,
        subscriptions: list[str],
        status_topic: str,
        intake: queue.Queue[Inbound],
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
        self._client = self._make_client()

    @property
    def reconnects(self) -> int:
        """Successful connects after the first."""
        return max(0, self.connects - 1)

    def _make_client(self) -> _Client:
        c = self.config
        v5 = c.mqtt_version == "5"
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=c.client_id,
            # Persistent session: QoS 1 readings wait for us while we are away (v5: clean_start
            # False plus a session expiry, set at connect).
            clean_session=None if v5 else False,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            manual_ack=True,
        )
        client.reconnect_delay_set(c.reconnect_min_s, c.reconnect_max_s)
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
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        for topic, handler in self.extra_handlers.items():
            client.message_callback_add(topic, _wrap_extra(handler))
        return client

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background (returns at once; paho retries with backoff)."""
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
        self._client.loop_start()
        self._started = True

    def network_problem(self, now_mono: float) -> tuple[bool, str]:
        """``(fatal, why)`` when paho's network thread is dead or stuck; ``(False, "")`` if fine.

        Dead (fatal): nothing would ever connect again. Stuck: connected, but the loop has not
        turned for a long time (it turns at least once a second while connected).
        """
        if not self._started or self._paused:
            return False, ""
        client = self._client
        if not client.network_thread_alive():
            return True, f"the MQTT network thread has died ({client.network_error!r})"
        stuck_s = now_mono - max(client.last_loop_mono, self._connected_mono)
        if self.connected.is_set() and stuck_s > NETWORK_STUCK_S:
            return False, f"the MQTT network loop has not turned for {stuck_s:.0f}s"
        return False, ""

    def pause_intake(self) -> None:
        """Stop taking new messages (they stay unacknowledged and are redelivered later)."""
        self._paused = True

    def stop(self, timeout_s: float = 3.0) -> None:
        """Publish ``offline`` (retained), disconnect cleanly and stop the network thread."""
        self._paused = True
        if self.connected.is_set():
            info = self._client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout_s)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish %s before disconnecting: %s", OFFLINE, exc)
        self._client.disconnect()
        # paho's loop_stop() joins its network thread with no timeout: a thread stuck in a
        # socket call would hang the shutdown until systemd's SIGKILL. Bounded here; the thread
        # is a daemon thread, so the process still exits.
        stopper = threading.Thread(
            target=self._client.loop_stop, name="edge-lstm-mqtt-stop", daemon=True
        )
        stopper.start()
        stopper.join(timeout_s)
        if stopper.is_alive():
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
        self._client.hold_wakeups()

    def release_wakeups(self) -> None:
        """Wake the network thread for the packets queued since ``hold_wakeups()``."""
        self._client.release_wakeups()

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
                client.reconnect_delay_set(self.config.reconnect_min_s, self.config.reconnect_max_s)
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

        Two daemons with one client_id knock each other off at every reconnect, forever; paho
        reconnects after ``reconnect_min_s`` each time because every connect succeeded.
        """
        c = self.config
        self._takeovers += 1
        delay = min(c.reconnect_max_s, c.reconnect_min_s * 2**self._takeovers)
        client.reconnect_delay_set(delay, max(delay, c.reconnect_max_s))
        self.last_error = (
            f"the broker dropped us after {lasted_s:.1f}s ({reason_code}): most likely another "
            f"client is connected with the same client_id {c.client_id!r} (a second daemon?); "
            f"give each daemon its own client_id. Reconnecting in {delay}s"
        )
        self._rate_log.log("takeover", self.last_error, time.time(), logging.ERROR)

    def _on_connect_fail(self, client: paho.Client, userdata: object) -> None:
        # paho calls this from inside its `except OSError:` around the connect: the exception
        # in flight is the reason (TLS verification, refused, DNS), which paho does not pass.
        self.last_error = f"cannot connect to {self.config.broker}: {describe_connect_error()}"
        self._rate_log.log("connect", self.last_error, time.time(), logging.ERROR)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
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


def describe_connect_error() -> str:
    """One line for the connection error being handled (TLS errors spelled out)."""
    exc = sys.exc_info()[1]
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: broker certificate not trusted ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc})"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return "unknown error"
