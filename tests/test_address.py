"""The one broker-address parser: config, `edge-lstm run` and every other `--broker`."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_lstm.errors import ConfigError
from edge_lstm.stream.address import BrokerAddress, parse_broker


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("h:1", ("h", 1, False)),
        ("h", ("h", 1883, False)),
        (" pi.local:1884 ", ("pi.local", 1884, False)),
        ("192.168.1.10", ("192.168.1.10", 1883, False)),
        ("[::1]:8883", ("::1", 8883, False)),
        ("[::1]:1883", ("::1", 1883, False)),  # the form the two old parsers disagreed on
        ("[::1]", ("::1", 1883, False)),
        ("::1", ("::1", 1883, False)),  # a bare IPv6 address: all of it is the host
        ("fe80::1%eth0", ("fe80::1%eth0", 1883, False)),
        ("mqtt://h", ("h", 1883, False)),
        ("mqtt://h:1884", ("h", 1884, False)),
        ("mqtt://h:1884/", ("h", 1884, False)),
        ("MQTT://h", ("h", 1883, False)),
        ("mqtts://h", ("h", 8883, True)),
        ("mqtts://h:8884", ("h", 8884, True)),
        ("mqtts://[::1]", ("::1", 8883, True)),
        ("mqtts://[::1]:9000", ("::1", 9000, True)),
    ],
)
def test_the_forms_we_accept(text: str, expected: tuple[str, int, bool]) -> None:
    assert parse_broker(text) == BrokerAddress(*expected)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("tcp://192.168.1.10", "unknown scheme tcp://"),
        ("ws://h", "unknown scheme ws://"),
        ("host:", "port '' is not a number"),
        ("host:abc", "port 'abc' is not a number"),
        ("host:\u0661\u0668", "is not a number"),  # Arabic-Indic digits
        ("host:0", "port must be 1..65535"),
        ("host:65536", "port must be 1..65535"),
        ("[::1", "expected HOST"),
        ("[::1]x", "expected HOST"),
        ("[pi]:1883", "expected HOST"),  # brackets are for IPv6
        ("user@host:1883", "no user name here"),
        ("mqtt://user:pw@host", "no user name here"),
        ("mqtt://host/topic", "bad host"),
        ("mqtt://::1", "bad host"),  # in a URL an IPv6 address needs its brackets
        ("", "bad host"),
        ("pi local", "bad host"),
    ],
)
def test_bad_addresses_say_what_is_wrong_in_one_line(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_broker(text)
    message = str(info.value)
    assert message.startswith("broker ") and needle in message and "\n" not in message


HOSTS = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)


@given(HOSTS, st.integers(min_value=1, max_value=65535), st.booleans())
def test_the_canonical_spelling_reads_back(host: str, port: int, tls: bool) -> None:
    address = BrokerAddress(host, port, tls)
    assert parse_broker(str(address)) == address


@given(st.ip_addresses(v=6), st.integers(min_value=1, max_value=65535))
def test_every_ipv6_form_gives_the_same_host(ip: ipaddress.IPv6Address, port: int) -> None:
    assert parse_broker(f"[{ip}]:{port}") == BrokerAddress(str(ip), port)
    assert parse_broker(f"mqtt://[{ip}]:{port}") == BrokerAddress(str(ip), port)
    assert parse_broker(str(ip)) == BrokerAddress(str(ip), 1883)


@given(st.text(max_size=40))
def test_any_text_gives_an_address_or_a_config_error(text: str) -> None:
    try:
        address = parse_broker(text)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert 0 < address.port < 65536 and address.host


@pytest.mark.parametrize("command", ["status", "replay", "demo", "bench"])
def test_every_broker_option_reads_the_same_forms(command: str) -> None:
    from typer.testing import CliRunner

    from edge_lstm.cli.app import app

    runner = CliRunner()
    bad = runner.invoke(app, [command, "--broker", "tcp://pi"])
    assert bad.exit_code == 1 and "unknown scheme tcp://" in bad.stderr
    tls = runner.invoke(app, [command, "--broker", "mqtts://pi"])
    assert tls.exit_code == 1 and "no TLS" in tls.stderr
    assert "mqtts://HOST" in runner.invoke(app, [command, "--help"], env={"COLUMNS": "300"}).stdout
