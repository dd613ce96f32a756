"""The in-process amqtt broker the demo uses when no --broker is given: real sockets, real paho."""

from __future__ import annotations

import queue
import socket
import sys

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

pytest.importorskip("amqtt")

from edge_lstm.demo.embedded_broker import EmbeddedBroker
from edge_lstm.errors import BrokerError

V2 = CallbackAPIVersion.VERSION2


def _subscriber(
    broker: EmbeddedBroker, topic: str
) -> tuple[mqtt.Client, queue.Queue[mqtt.MQTTMessage]]:
    inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    client = mqtt.Client(V2)
    client.on_message = lambda _c, _u, msg: inbox.put(msg)
    client.on_subscribe = lambda *_a: subscribed.put(True)
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.subscribe(topic, qos=1)
    subscribed.get(timeout=5)
    return client, inbox


def _stop(*clients: mqtt.Client) -> None:
    for client in clients:
        client.disconnect()
        client.loop_stop()


def test_publish_subscribe_round_trip_on_a_free_loopback_port() -> None:
    with EmbeddedBroker() as broker:
        assert broker.host == "127.0.0.1"
        assert broker.port > 0
        assert broker.address == f"127.0.0.1:{broker.port}"
        sub, inbox = _subscriber(broker, "sensors/#")
        pub = mqtt.Client(V2)
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        for i in range(20):
            pub.publish(f"sensors/s{i}", str(i), qos=1).wait_for_publish(5)
        got = {inbox.get(timeout=5).topic for _ in range(20)}
        assert got == {f"sensors/s{i}" for i in range(20)}
        _stop(sub, pub)


def test_retained_message_reaches_a_later_subscriber() -> None:
    # The daemon's availability topic is retained; the demo reads it from a fresh client.
    with EmbeddedBroker() as broker:
        pub = mqtt.Client(V2)
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        pub.publish("edge-lstm/status", "online", qos=1, retain=True).wait_for_publish(5)
        sub, inbox = _subscriber(broker, "edge-lstm/status")
        message = inbox.get(timeout=5)
        assert (message.payload, message.retain) == (b"online", True)
        _stop(sub, pub)


def test_stop_closes_the_port_and_the_thread() -> None:
    broker = EmbeddedBroker().start()
    port = broker.port
    thread = broker._thread
    assert thread is not None and thread.is_alive()
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    broker.stop()
    broker.stop()  # twice is harmless
    assert not thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_two_brokers_get_different_ports() -> None:
    with EmbeddedBroker() as first, EmbeddedBroker() as second:
        assert first.port != second.port


def test_a_taken_port_is_one_clear_broker_error() -> None:
    with EmbeddedBroker() as first, pytest.raises(BrokerError, match="failed to start"):
        EmbeddedBroker(port=first.port).start()


def test_missing_amqtt_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "amqtt.broker", None)  # import now raises ImportError
    with pytest.raises(BrokerError, match=r"edge-lstm\[demo\]"):
        EmbeddedBroker().start()
