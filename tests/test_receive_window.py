"""The MQTT 5 receive window: a backlog reaches the daemon two batches at a time (memory bound)."""

from __future__ import annotations

import time

import pytest

from edge_lstm.daemon.config import Config
from edge_lstm.daemon.intake import Intake
from edge_lstm.daemon.mqtt import MqttLink, receive_window
from edge_lstm.mqttkit.broker import Mosquitto
from edge_lstm.mqttkit.clients import Publisher, unique_prefix, wait_until
from edge_lstm.stream.readings import Inbound


def test_the_window_is_two_batches_or_the_intake_with_broker_state() -> None:
    assert receive_window(Config.load(overrides={"batch_max": 5000})) == 10_000
    assert receive_window(Config.load(overrides={"batch_max": 40_000})) == 65_535
    assert receive_window(Config.load(overrides={"batch_max": 8, "queue_size": 10})) == 10
    # Held readings wait for a marker that comes after them: the window is the intake's.
    held = Config.load(overrides={"batch_max": 5000, "broker_state": True, "queue_size": 30_000})
    assert receive_window(held) == 30_000


@pytest.mark.broker
def test_a_backlog_arrives_a_window_at_a_time(mosquitto: Mosquitto) -> None:
    """40 readings wait; the broker sends 10 (2 x batch_max) until some are acknowledged."""
    prefix = unique_prefix("window")
    config = Config.load(
        overrides={"broker": mosquitto.url, "client_id": f"{prefix}-d", "batch_max": 5}
    )
    intake: Intake[Inbound] = Intake(config.queue_size)
    link = MqttLink(config, [f"{prefix}/s/+"], f"{prefix}/status", intake)
    link.start()
    publisher = Publisher(mosquitto)
    try:
        assert link.connected.wait(10)
        for i in range(40):
            publisher.publish(f"{prefix}/s/a", f'{{"value": {i}}}', qos=1)
        assert publisher.wait_all_acked(10)

        def received(count: int) -> bool:
            link.hold_wakeups()  # as the worker does after each batch: it reads what came
            link.release_wakeups()
            return intake.qsize() >= count

        assert wait_until(lambda: received(10), 10)
        time.sleep(0.5)
        received(11)
        assert intake.qsize() == 10  # and no more while none is acknowledged
        for message in intake.take(4, timeout_s=0):
            link.ack(message.mid, message.qos)
        assert wait_until(lambda: received(10), 10)
        time.sleep(0.5)
        received(11)
        assert intake.qsize() == 10
    finally:
        publisher.close()
        link.stop()
