"""One MQTT kit for the tests, ``edge-lstm bench``, the demo and the CLI's clients.

- ``broker``: a real Mosquitto on a free loopback port (started, stopped, killed, restarted).
- ``pki``: a throw-away CA and certificates for TLS tests (the ``openssl`` CLI).
- ``clients``: a recording subscriber, a QoS 1 publisher, the retained message of a topic.
- ``observer``: the daemon's output topics as a test or the bench reads them.
- ``daemon``: ``edge-lstm run`` as a child process.
- ``rig``: a daemon process with its observer and publisher, for a test.
- ``fake``: ``FakeLink``, the daemon's broker link in process (no broker, no network).

Of the daemon the kit imports only ``daemon.link`` (for the fake) and the config file writer
(``daemon.config_parse.to_toml``): it drives the daemon through its public surface, so the
daemon can be refactored under it.
Import the submodules; this package imports nothing, so ``edge-lstm status`` stays light.
"""
