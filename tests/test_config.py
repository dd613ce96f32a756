"""The typed, closed config: TOML < environment < overrides; unknown keys named."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_lstm.config import FIELDS, Config, field_help, split_broker
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
        ("queue_size = 0\n", "queue_size must be > 0"),
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
    ("text", "expected"),
    [("h:1", ("h", 1)), ("h", ("h", 1883)), ("[::1]:8883", ("::1", 8883)), ("::1", ("::1", 1883))],
)
def test_split_broker(text: str, expected: tuple[str, int]) -> None:
    assert split_broker(text) == expected


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


def test_docs_list_every_setting() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "daemon.md").read_text()
    missing = [name for name in FIELDS if f"| `{name}` |" not in docs]
    assert not missing, "add these settings to docs/daemon.md"


def test_default_model_path_candidates() -> None:
    import sys

    from edge_lstm.paths import default_model_candidates, default_model_path

    repo, wheel = default_model_candidates()
    assert repo.parts[-2:] == ("models", "default.tflite")
    assert wheel == Path(sys.prefix) / "share" / "edge-lstm" / "models" / "default.tflite"
    assert default_model_path() in (repo, wheel)
