"""The Mosquitto ACL that docs/scaling.md prints, in a real Mosquitto: only daemons write states."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from .daemon_run import Collector, Publisher
from .mosquitto import Mosquitto

pytestmark = pytest.mark.broker

DOC = Path(__file__).resolve().parents[1] / "docs" / "scaling.md"
USERS = {"edge-lstm": "d-secret", "dashboard": "b-secret", "kitchen": "k-secret"}


def doc_acl() -> str:
    """The ``acl_file`` example of docs/scaling.md, as printed there."""
    blocks = re.findall(r"```text\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    acl = [b for b in blocks if "acl_file" in b]
    assert len(acl) == 1, "docs/scaling.md should print one acl_file example"
    return str(acl[0])


def login(user: str) -> Callable[[paho.Client], None]:
    return lambda client: client.username_pw_set(user, USERS[user])


def test_only_the_daemons_user_may_write_states(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text(doc_acl(), encoding="utf-8")
    broker = Mosquitto(tmp_path / "broker", users=USERS, extra_config=f"acl_file {acl}\n").start()
    try:
        daemon_view = Collector(
            broker.host, broker.port, ["edge-lstm/state/#", "sensors/#"], setup=login("edge-lstm")
        )
        for user in USERS:
            pub = Publisher(broker.host, broker.port, setup=login(user))
            pub.send(f"edge-lstm/state/from-{user}", b"state")
            pub.send(f"sensors/{user}", b"21.5")
            pub.wait_all()
            pub.close()
        marker = Publisher(broker.host, broker.port, setup=login("edge-lstm"))
        marker.send("edge-lstm/state/zz-last", b"end")  # in order after everything above
        marker.wait_all()
        marker.close()
        daemon_view.wait_for(lambda: bool(daemon_view.on("edge-lstm/state/zz-last")), "marker")
        time.sleep(0.2)
        topics = sorted({m.topic for m in daemon_view.messages})
        daemon_view.close()
    finally:
        broker.kill()
    states = [t for t in topics if t.startswith("edge-lstm/state/")]
    assert states == ["edge-lstm/state/from-edge-lstm", "edge-lstm/state/zz-last"]
    # A sensor writes its own readings topic (a pattern line: every user may write its own).
    assert "sensors/kitchen" in topics
