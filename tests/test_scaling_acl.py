"""The Mosquitto ACL that docs/scaling.md prints, in a real Mosquitto: only daemons write states."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from edge_lstm.mqttkit.broker import Mosquitto
from edge_lstm.mqttkit.clients import Publisher, Recorder, wait_until

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
    with Mosquitto(tmp_path / "broker", users=USERS, extra_config=f"acl_file {acl}\n") as broker:
        daemon_view = Recorder(broker, ["edge-lstm/state/#", "sensors/#"], setup=login("edge-lstm"))
        daemon_view.start()
        for user in USERS:
            pub = Publisher(broker, setup=login(user))
            pub.publish(f"edge-lstm/state/from-{user}", b"state")
            pub.publish(f"sensors/{user}", b"21.5")
            assert pub.close(flush_timeout_s=30.0) == 0  # acknowledged (denied ones too)
        marker = Publisher(broker, setup=login("edge-lstm"))
        marker.publish("edge-lstm/state/zz-last", b"end")  # in order after everything above
        assert marker.close(flush_timeout_s=30.0) == 0
        assert wait_until(lambda: bool(daemon_view.on("edge-lstm/state/zz-last"))), "no marker"
        topics = sorted({m.topic for m in daemon_view.snapshot()})
        daemon_view.close()
    states = [t for t in topics if t.startswith("edge-lstm/state/")]
    assert states == ["edge-lstm/state/from-edge-lstm", "edge-lstm/state/zz-last"]
    # A sensor writes its own readings topic (a pattern line: every user may write its own).
    assert "sensors/kitchen" in topics
