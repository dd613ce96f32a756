"""`broker = "mqtts://HOST:PORT"` turns TLS on with the system's CA store, no tls_ca needed.

The "system" store is the test CA, given through OpenSSL's ``SSL_CERT_FILE``: the daemon only
comes online if it spoke TLS (the listener speaks nothing else) and verified the broker.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge_lstm.mqttkit.broker import Mosquitto
from edge_lstm.mqttkit.clients import unique_prefix
from edge_lstm.mqttkit.daemon import DaemonProcess, daemon_settings
from edge_lstm.mqttkit.observer import Observer
from edge_lstm.mqttkit.pki import Pki


@pytest.mark.broker
def test_an_mqtts_address_connects_over_tls_with_the_system_cas(
    mosquitto_factory: Callable[..., Mosquitto], broker_pki: Pki, golden_model: Path, tmp_path: Path
) -> None:
    broker = mosquitto_factory(tls=broker_pki)
    prefix = unique_prefix("mqtts")
    settings = daemon_settings(broker, golden_model, prefix)
    # No port: mqtts:// means 8883, so the test's own port is given; no tls_ca either.
    settings["broker"] = f"mqtts://localhost:{broker.port}"

    def trust_test_ca(client: mqtt.Client) -> None:
        client.tls_set(ca_certs=str(broker_pki.ca_cert))

    observer = Observer(broker, f"{prefix}/out", setup=trust_test_ca)
    daemon = DaemonProcess(tmp_path / "daemon", settings)
    try:
        daemon.start(extra_env={"SSL_CERT_FILE": str(broker_pki.ca_cert)})
        observer.wait_online(daemon)
        assert daemon.terminate() == 0
    finally:
        daemon.cleanup()
        observer.close()
