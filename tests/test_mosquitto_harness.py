"""The broker harness itself: a real mosquitto that starts, delivers, persists, authenticates."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.mosquitto import Mosquitto, Pki, unique_prefix

pytestmark = pytest.mark.broker


def _client(client_id: str = "", clean: bool = True) -> mqtt.Client:
    return mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean
    )


def _connect_rc(client: mqtt.Client, broker: Mosquitto) -> int:
    """Connect and return the CONNACK reason code as an int (0 = accepted)."""
    done = threading.Event()
    result: list[int] = []

    def on_connect(c: mqtt.Client, u: object, f: object, rc: mqtt.ReasonCode, p: object) -> None:
        result.append(rc.value)
        done.set()

    client.on_connect = on_connect
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    assert done.wait(10), "no CONNACK"
    return result[0]


def _roundtrip(broker: Mosquitto, configure: Callable[[mqtt.Client], None] | None = None) -> bytes:
    topic = f"{unique_prefix()}/x"
    got = threading.Event()
    payloads: list[bytes] = []
    c = _client()
    if configure:
        configure(c)

    def on_message(cl: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        payloads.append(msg.payload)
        got.set()

    c.on_message = on_message
    try:
        assert _connect_rc(c, broker) == 0
        c.subscribe(topic, qos=1)[0]
        c.publish(topic, b"hello", qos=1).wait_for_publish(10)
        assert got.wait(10)
    finally:
        c.disconnect()
        c.loop_stop()
    return payloads[0]


def test_plain_broker_delivers(mosquitto: Mosquitto) -> None:
    assert _roundtrip(mosquitto) == b"hello"


def test_restart_keeps_port_and_persists_queued_qos1(
    mosquitto_factory: Callable[..., Mosquitto],
) -> None:
    broker = mosquitto_factory(persistence=True)
    topic = f"{unique_prefix()}/q"
    sub = _client("harness-sub", clean=False)
    assert _connect_rc(sub, broker) == 0
    sub.subscribe(topic, qos=1)
    sub.disconnect()
    sub.loop_stop()
    pub = _client()
    assert _connect_rc(pub, broker) == 0
    for i in range(5):
        pub.publish(topic, str(i), qos=1).wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()
    port = broker.port
    broker.restart()
    assert broker.port == port and broker.starts == 2
    got: list[bytes] = []
    done = threading.Event()

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        got.append(msg.payload)
        if len(got) == 5:
            done.set()

    sub = _client("harness-sub", clean=False)
    sub.on_message = on_message
    try:
        assert _connect_rc(sub, broker) == 0
        assert done.wait(10), f"queued messages lost over restart: {got}"
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert got == [b"0", b"1", b"2", b"3", b"4"]


def test_password_file(mosquitto_factory: Callable[..., Mosquitto]) -> None:
    broker = mosquitto_factory(users={"alice": "s3cret"})
    assert _roundtrip(broker, lambda c: c.username_pw_set("alice", "s3cret")) == b"hello"
    wrong = _client()
    wrong.username_pw_set("alice", "nope")
    try:
        assert _connect_rc(wrong, broker) != 0
    finally:
        wrong.loop_stop()


def test_tls_with_client_cert(mosquitto_factory: Callable[..., Mosquitto], broker_pki: Pki) -> None:
    broker = mosquitto_factory(tls=broker_pki, require_client_cert=True)

    def good(c: mqtt.Client) -> None:
        c.tls_set(
            ca_certs=str(broker_pki.ca_cert),
            certfile=str(broker_pki.client_cert),
            keyfile=str(broker_pki.client_key),
        )

    assert _roundtrip(broker, good) == b"hello"
    rogue = _client()
    rogue.tls_set(ca_certs=str(broker_pki.rogue_ca_cert))
    with pytest.raises(ssl.SSLError):
        rogue.connect(broker.host, broker.port)


def test_kill_leaves_port_free(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "m").start()
    broker.kill()
    assert not broker.running
    broker.start()
    try:
        assert broker.running
    finally:
        broker.kill()
