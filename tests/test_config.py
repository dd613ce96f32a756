"""The typed, closed config: TOML < environment < overrides; unknown keys named."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_lstm.daemon.config import FIELDS, Config, field_help
from edge_lstm.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    c = Config.load(None, {}, {})
    assert (c.broker_host, c.broker_port) == ("localhost", 1883)
    assert c.topics == ("sensors/{sensor}",) and c.durability == "snapshot" and c.qos == 1
    assert c.templates()[0].subscription == "sensors/+"


def test_every_field_is_documented() -> None:
    assert all(field_help(name) for name in FIELDS)


def test_precedence_toml_env_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'broker = "pi:1884"\nclient_id = "toml"\ngrace_s = 1\n'
        'topics = ["a/{sensor}", "b/{sensor}"]\n',
    )
    c = Config.load(path, {}, {})
    assert c.broker_port == 1884 and c.client_id == "toml" and c.grace_s == 1.0
    assert c.topics == ("a/{sensor}", "b/{sensor}")
    env = {
        "EDGE_LSTM_CLIENT_ID": "env",
        "EDGE_LSTM_RETAIN_FORECASTS": "yes",
        "EDGE_LSTM_TOPICS": "x/{sensor}, y/{sensor}",
        "EDGE_LSTM_BACKEND": "tensorflow",
        "HOME": "/root",
    }
    c = Config.load(path, env, {})
    assert c.client_id == "env" and c.retain_forecasts is True
    assert c.topics == ("x/{sensor}", "y/{sensor}")
    c = Config.load(path, env, {"client_id": "flag", "horizon": None, "state_dir": "/tmp/s"})
    assert c.client_id == "flag" and c.horizon is None and c.state_dir == Path("/tmp/s")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("brokr = 'x'\n", "unknown key 'brokr'"),
        ("qos = 2\n", "qos must be 0 or 1"),
        ("qos = 'one'\n", "qos: expected an integer"),
        ("grace_s = true\n", "grace_s: expected a number"),
        ("retain_forecasts = 1\n", "retain_forecasts: expected true/false"),
        ("durability = 'fsync'\n", "durability: must be one of"),
        ("broker = 'host:abc'\n", "port 'abc' is not a number"),
        ("topics = ['sensors/#']\n", "topic template"),
        ("output_prefix = 'a/+'\n", "output_prefix"),
        ("log_level = 'LOUD'\n", "log_level"),
        ("tls_cert = '/c.pem'\n", "tls_cert and tls_key"),
        ("queue_size = 0\n", "queue_size must be between 1 and 10,000,000, not 0"),
        ("this is not toml", "config file"),
    ],
)
def test_bad_toml_names_the_problem(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Config.load(write(tmp_path, text), {}, {})


def test_bad_env_and_overrides() -> None:
    with pytest.raises(ConfigError, match="EDGE_LSTM_BROKR"):
        Config.load(None, {"EDGE_LSTM_BROKR": "x"}, {})
    with pytest.raises(ConfigError, match="keepalive_s: expected a number"):
        Config.load(None, {"EDGE_LSTM_KEEPALIVE_S": "soon"}, {})
    with pytest.raises(ConfigError, match="unknown setting 'nope'"):
        Config.load(None, {}, {"nope": 1})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Config.load(tmp_path / "absent.toml", {}, {})


@pytest.mark.parametrize(
    ("broker", "host", "port", "tls"),
    [("pi:1884", "pi", 1884, False), ("[::1]:1883", "::1", 1883, False),
     ("mqtts://pi", "pi", 8883, True), ("mqtt://pi", "pi", 1883, False)],
)  # fmt: skip
def test_broker_address_and_tls(broker: str, host: str, port: int, tls: bool) -> None:
    c = Config.load(None, {}, {"broker": broker})
    assert (c.broker_host, c.broker_port, c.tls) == (host, port, tls)
    assert Config.load(None, {}, {"broker": broker, "tls_ca": "/ca.pem"}).tls


@pytest.mark.parametrize("broker", ["tcp://pi", "pi:abc", "user@pi", "[::1"])
def test_a_bad_broker_is_a_config_error_naming_it(broker: str) -> None:
    with pytest.raises(ConfigError, match=r"^broker "):
        Config.load(None, {}, {"broker": broker})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("keepalive_s", 100_000),  # paho's thread died on struct.error
        ("keepalive_s", 0),
        ("max_sensors", 10**9),  # a numpy traceback when the state table was allocated
        ("horizon", 0),
        ("horizon", 100_000),
        ("snapshot_interval_s", 0.0),
        ("snapshot_interval_s", 1e12),
        ("batch_max", 10**9),
        ("queue_size", 10**9),
        ("health_interval_s", float("inf")),
        ("max_payload_bytes", 10**9),
        ("reconnect_max_s", 10**6),
        ("grace_s", -1.0),
        ("max_clock_skew_s", -1.0),
        ("wal_max_bytes", 10),
        ("max_gap_steps", -1),
    ],
)
def test_every_number_is_range_checked(key: str, value: float) -> None:
    with pytest.raises(ConfigError) as info:
        Config.load(None, {}, {key: value})
    message = str(info.value)
    assert message.startswith(f"{key} must be between") and "\n" not in message


def test_batch_cannot_exceed_the_queue() -> None:
    with pytest.raises(ConfigError, match="batch_max must be <= queue_size"):
        Config.load(None, {}, {"queue_size": 10, "batch_max": 20})


@pytest.mark.parametrize("prefix", ["$SYS/x", "$share", "a\u2028b"])
def test_output_prefix_is_not_a_broker_topic(prefix: str) -> None:
    with pytest.raises(ConfigError, match="output_prefix"):
        Config.load(None, {}, {"output_prefix": prefix})


def test_topics_as_a_string_in_toml_is_an_error_that_shows_the_list(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Config.load(write(tmp_path, 'topics = "sensors/{sensor}"\n'), {}, {})
    assert 'expected a list of strings, e.g. topics = ["sensors/{sensor}"]' in str(info.value)


def test_mqtt_version_5_as_a_toml_number_is_taken(tmp_path: Path) -> None:
    assert Config.load(write(tmp_path, "mqtt_version = 5\n"), {}, {}).mqtt_version == "5"
    with pytest.raises(ConfigError) as info:
        Config.load(write(tmp_path, "mqtt_version = 4\n"), {}, {})
    assert 'must be one of "5", "3.1.1" (a string), not 4' in str(info.value)


@pytest.mark.parametrize(
    ("topics", "prefix", "homeassistant"),
    [
        (["mf/{sensor}"], "mf", False),  # would read mf/status and mf/health
        (["+/{sensor}"], "edge-lstm", False),
        (["mf/{sensor}/forecast"], "mf", False),
        (["mf/+/{sensor}"], "mf", False),  # every forecast read back as sensor "forecast"
        (["ha/sensor/edge_lstm/{sensor}/config"], "out", True),
    ],
)
def test_a_template_that_matches_our_own_output_is_refused(
    topics: list[str], prefix: str, homeassistant: bool
) -> None:
    overrides = {"topics": topics, "output_prefix": prefix, "homeassistant": homeassistant,
                 "homeassistant_prefix": "ha"}  # fmt: skip
    with pytest.raises(ConfigError, match="matches the daemon's own output"):
        Config.load(None, {}, overrides)


def test_templates_beside_the_output_are_fine() -> None:
    c = Config.load(None, {}, {"topics": ["mf/in/{sensor}"], "output_prefix": "mf/out"})
    assert c.topics == ("mf/in/{sensor}",)
    # Meets only the forecasts of a sensor named "sensors" (refused as readings): allowed.
    c = Config.load(None, {}, {"topics": ["p/sensors/{sensor}"], "output_prefix": "p"})
    assert c.output_prefix == "p"


def test_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert Config.load(None, {}, {"password_file": secret}).password() == "s3cret"
    with pytest.raises(ConfigError, match="password_file"):
        Config.load(None, {}, {"password_file": tmp_path / "none"}).password()


def test_example_deploy_config_is_valid() -> None:
    example = Path(__file__).parent.parent / "deploy" / "config.toml"
    if not example.exists():
        pytest.skip("deploy/config.toml not written yet")
    Config.load(example, {}, {})


def test_the_docs_settings_table_is_the_schema() -> None:
    """docs/daemon.md's table is rendered from the declarations: help, range, default, flag."""
    from edge_lstm.daemon.config import SCHEMA

    docs = (Path(__file__).parent.parent / "docs" / "daemon.md").read_text()
    table = SCHEMA.docs_table()
    assert table in docs, "paste SCHEMA.docs_table() into docs/daemon.md:\n" + table


def test_default_model_path_candidates() -> None:
    import sys

    from edge_lstm.model.paths import default_model_candidates, default_model_path

    repo, wheel = default_model_candidates()
    assert repo.parts[-2:] == ("models", "default.tflite")
    assert wheel == Path(sys.prefix) / "share" / "edge-lstm" / "models" / "default.tflite"
    assert default_model_path() in (repo, wheel)


def test_scaling_settings_default_to_one_plain_daemon() -> None:
    c = Config.load(None, {}, {})
    assert (c.shard, c.shard_index, c.shard_count) == ("0/1", 0, 1)
    assert c.shared_group is None and c.broker_state is False


def test_scaling_settings_from_toml_env_and_flags(tmp_path: Path) -> None:
    path = write(tmp_path, 'shard = "1/3"\nshared_group = "edge"\nbroker_state = true\n')
    c = Config.load(path, {}, {})
    assert (c.shard_index, c.shard_count, c.shared_group, c.broker_state) == (1, 3, "edge", True)
    env = {"EDGE_LSTM_SHARD": "2/3", "EDGE_LSTM_BROKER_STATE": "false"}
    c = Config.load(path, env, {"shared_group": "other"})
    assert (c.shard_index, c.shard_count, c.shared_group, c.broker_state) == (2, 3, "other", False)


@pytest.mark.parametrize(
    ("shard", "needle"),
    [
        ("3/3", "I must be"),
        ("0/0", "N must be"),
        ("1", "expected I/N"),
        ("-1/2", "expected I/N"),
        ("0/1001", "N must be"),
        ("a/b", "expected I/N"),
        ("", "expected I/N"),
    ],
)
def test_a_bad_shard_is_one_line_naming_it(shard: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.load(None, {}, {"shard": shard})
    message = str(info.value)
    assert message.startswith("shard ") and needle in message and "\n" not in message


@pytest.mark.parametrize("group", ["", "a/b", "a+", "#", "x\u202ey", "$share"])
def test_shared_group_is_one_topic_level(group: str) -> None:
    with pytest.raises(ConfigError, match=r"^shared_group "):
        Config.load(None, {}, {"shared_group": group})


def test_the_toml_writer_and_reader_agree(tmp_path: Path) -> None:
    """One document, one serialiser: what to_toml writes, load reads back to an equal Config."""
    settings: dict[str, object] = {
        "broker": "mqtts://[::1]",
        "topics": ["a/{sensor}", 'b "q"/{sensor}'],
        "tls_ca": "/ca.pem",
        "grace_s": 0.25,
        "shard": "2/3",
        "shared_group": "g\u00e9",
        "mqtt_version": "3.1.1",
        "horizon": 5,
        "retain_forecasts": True,
    }
    for config in (Config.load(None, {}, {}), Config.load(None, {}, settings)):
        assert Config.load(write(tmp_path, config.to_toml()), {}, {}) == config


def test_every_numeric_setting_declares_its_range_or_choices() -> None:
    """A new number cannot slip in unchecked (issue 9): its declaration must say what it takes."""
    from edge_lstm.daemon.config import SCHEMA

    numeric = [n for n, kind in FIELDS.items() if kind in (int, float, int | None, float | None)]
    assert "keepalive_s" in numeric and "horizon" in numeric
    unbounded = [n for n in numeric if SCHEMA.about(n).high is None and not SCHEMA.about(n).choices]
    assert not unbounded
