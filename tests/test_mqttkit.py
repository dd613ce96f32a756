"""The MQTT kit itself: a real mosquitto that starts, delivers, persists, authenticates; the
kit's publisher and recorder against it."""

from __future__ import annotations

import os
import signal
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge_lstm.errors import BrokerError
from edge_lstm.mqttkit.broker import Mosquitto
from edge_lstm.mqttkit.clients import (
    MAX_UNACKNOWLEDGED,
    ClientSetup,
    Publisher,
    Recorder,
    retained,
    unique_prefix,
)
from edge_lstm.mqttkit.pki import Pki

pytestmark = pytest.mark.broker


def _roundtrip(broker: Mosquitto, setup: ClientSetup | None = None) -> bytes:
    topic = f"{unique_prefix()}/x"
    recorder = Recorder(broker, [topic], setup=setup).start()
    publisher = Publisher(broker, setup=setup)
    try:
        publisher.publish(topic, b"hello")
        assert publisher.wait_all_acked(10)
        assert recorder.wait_for(1, timeout_s=10)
    finally:
        publisher.close()
        recorder.close()
    return recorder.snapshot()[0].payload


def test_plain_broker_delivers(mosquitto: Mosquitto) -> None:
    assert _roundtrip(mosquitto) == b"hello"


@pytest.mark.slow
def test_a_publisher_loses_nothing_past_65535_unacknowledged(mosquitto: Mosquitto) -> None:
    """paho numbers a QoS 1 message with a 16-bit id when it is published: with the broker
    not acknowledging (stopped here, SIGSTOP), the 65,536th would replace the first. The
    publisher waits at MAX_UNACKNOWLEDGED instead, until the broker is back."""
    topic = f"{unique_prefix()}/wrap"
    count = 70_000
    recorder = Recorder(mosquitto, [topic]).start()
    publisher = Publisher(mosquitto)
    assert mosquitto.proc is not None
    pid = mosquitto.proc.pid
    os.kill(pid, signal.SIGSTOP)
    resume = threading.Timer(2.0, os.kill, (pid, signal.SIGCONT))
    resume.start()
    most = 0
    try:
        for i in range(count):
            publisher.publish(topic, str(i))
            most = max(most, publisher.unacknowledged())
    finally:
        resume.join()
        os.kill(pid, signal.SIGCONT)
    try:
        assert publisher.wait_all_acked(60)
        assert recorder.wait_for(count, timeout_s=60)
    finally:
        publisher.close()
        recorder.close()
    assert most == MAX_UNACKNOWLEDGED  # it did wait for the broker
    assert sorted(int(m.payload) for m in recorder.snapshot()) == list(range(count))


def test_retained_is_what_a_fresh_subscriber_sees(mosquitto: Mosquitto) -> None:
    topic = f"{unique_prefix()}/status"
    publisher = Publisher(mosquitto)
    publisher.publish(topic, "online", retain=True)
    assert publisher.close(flush_timeout_s=10) == 0
    assert retained(mosquitto, topic) == b"online"
    assert retained(mosquitto, f"{topic}-none", timeout_s=0.5) is None


def test_restart_keeps_port_and_persists_queued_qos1(
    mosquitto_factory: Callable[..., Mosquitto],
) -> None:
    broker = mosquitto_factory(persistence=True)
    topic = f"{unique_prefix()}/q"
    session = f"{unique_prefix('kit-sub')}"
    Recorder(broker, [topic], client_id=session).start().close()  # a session, then away
    publisher = Publisher(broker)
    for i in range(5):
        publisher.publish(topic, str(i))
    assert publisher.close(flush_timeout_s=10) == 0
    port = broker.port
    broker.restart()
    assert broker.port == port and broker.starts == 2
    recorder = Recorder(broker, [topic], client_id=session).start()
    try:
        assert recorder.wait_for(5, timeout_s=10), f"lost over restart: {recorder.snapshot()}"
    finally:
        recorder.close()
    assert [m.payload for m in recorder.snapshot()] == [b"0", b"1", b"2", b"3", b"4"]


def test_publisher_keeps_messages_while_the_broker_is_down(
    mosquitto_factory: Callable[..., Mosquitto],
) -> None:
    broker = mosquitto_factory(persistence=True)
    topic = f"{unique_prefix()}/q"
    recorder = Recorder(broker, [topic], client_id=unique_prefix("kit-sub")).start()
    publisher = Publisher(broker, client_id=unique_prefix("kit-pub"))
    try:
        broker.stop()
        publisher.publish(topic, "while away")
        assert publisher.unacknowledged() == 1
        broker.start()
        assert publisher.wait_all_acked(30)
        assert recorder.wait_for(1, timeout_s=30)
    finally:
        publisher.close()
        recorder.close()
    assert recorder.on(topic)[0].payload == b"while away"


def test_password_file(mosquitto_factory: Callable[..., Mosquitto]) -> None:
    broker = mosquitto_factory(users={"alice": "s3cret"})
    assert _roundtrip(broker, lambda c: c.username_pw_set("alice", "s3cret")) == b"hello"
    with pytest.raises(BrokerError, match="refused the connection"):
        Publisher(broker, setup=lambda c: c.username_pw_set("alice", "nope"), timeout_s=10)


def test_tls_with_client_cert(mosquitto_factory: Callable[..., Mosquitto], broker_pki: Pki) -> None:
    broker = mosquitto_factory(tls=broker_pki, require_client_cert=True)

    def good(c: mqtt.Client) -> None:
        c.tls_set(
            ca_certs=str(broker_pki.ca_cert),
            certfile=str(broker_pki.client_cert),
            keyfile=str(broker_pki.client_key),
        )

    assert _roundtrip(broker, good) == b"hello"
    with pytest.raises((ssl.SSLError, BrokerError)):
        Publisher(broker, setup=lambda c: c.tls_set(ca_certs=str(broker_pki.rogue_ca_cert)))


def test_kill_leaves_port_free(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "m").start()
    broker.kill()
    assert not broker.running
    broker.start()
    try:
        assert broker.running
    finally:
        broker.kill()
