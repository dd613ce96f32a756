"""A daemon under test with an observer of its output and a publisher of its readings: the
three parts nearly every daemon test needs, made together, started together, closed together."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .broker import Address
from .clients import ClientSetup, Publisher, unique_prefix
from .daemon import DaemonProcess, daemon_settings
from .observer import Observer


class Rig:
    """``edge-lstm run`` with ``daemon_settings(broker, model, prefix, **settings)``, an observer
    of ``{prefix}/out`` and a publisher (persistent session ``{prefix}-pub``); readings go to
    ``send(sensor, payload)``. ``start()`` returns once the daemon is online."""

    def __init__(
        self,
        broker: Address,
        model: Path,
        workdir: Path,
        prefix: str | None = None,
        *,
        observer_id: str | None = None,
        setup: ClientSetup | None = None,
        **settings: object,
    ) -> None:
        self.prefix = prefix or unique_prefix("rig")
        self.daemon = DaemonProcess(
            workdir / "daemon", daemon_settings(broker, model, self.prefix, **settings)
        )
        self.observer = Observer(broker, f"{self.prefix}/out", client_id=observer_id, setup=setup)
        try:
            self.publisher = Publisher(broker, f"{self.prefix}-pub", setup=setup)
        except BaseException:
            self.observer.close()
            raise

    def start(self, extra_env: Mapping[str, str] | None = None) -> Rig:
        """Start the daemon (again, after a kill) and wait until it is online."""
        self.daemon.start(extra_env)
        self.observer.wait_online(self.daemon)
        return self

    def send(self, sensor: str, payload: bytes | str) -> None:
        """Publish one reading of ``sensor`` (QoS 1)."""
        self.publisher.publish(f"{self.prefix}/s/{sensor}", payload)

    def close(self) -> None:
        """Kill the daemon if it still runs, disconnect both clients."""
        self.daemon.cleanup()
        self.publisher.close()
        self.observer.close()

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
