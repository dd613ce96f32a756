"""Payload parsing (pure): good payloads become Readings, everything else a reasoned error."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_lstm.errors import PayloadError
from edge_lstm.stream.readings import REASONS, parse_payload

ARRIVAL = 1_700_000_000.0
ONE = ("temperature",)
TWO = ("temperature", "humidity")


def reason_of(payload: bytes, features: tuple[str, ...] = ONE, max_bytes: int = 1024) -> str:
    with pytest.raises(PayloadError) as info:
        parse_payload(payload, "s1", features, ARRIVAL, max_bytes)
    assert "s1" in str(info.value)
    assert info.value.reason in REASONS
    return info.value.reason


@pytest.mark.parametrize(
    ("payload", "value"),
    [(b"21.5", 21.5), (b" -3 ", -3.0), (b"1e3", 1000.0), (b".5", 0.5), (b"7\n", 7.0)],
)
def test_plain_numbers_use_arrival_time(payload: bytes, value: float) -> None:
    r = parse_payload(payload, "s1", ONE, ARRIVAL)
    assert r.values == (value,) and r.ts == ARRIVAL and r.sensor_id == "s1"


def test_json_value_with_epoch_and_iso_ts() -> None:
    r = parse_payload(b'{"value": 21.5, "ts": 1700000100}', "s1", ONE, ARRIVAL)
    assert (r.values, r.ts) == ((21.5,), 1_700_000_100.0)
    r = parse_payload(b'{"value": 2, "ts": "2023-11-14T22:15:00Z"}', "s1", ONE, ARRIVAL)
    assert r.ts == 1_700_000_100.0
    r = parse_payload(b'{"value": 2, "ts": "2023-11-14T23:15:00+01:00"}', "s1", ONE, ARRIVAL)
    assert r.ts == 1_700_000_100.0
    r = parse_payload(b'{"value": 2, "ts": "2023-11-14T22:15:00"}', "s1", ONE, ARRIVAL)
    assert r.ts == 1_700_000_100.0  # no zone: UTC
    r = parse_payload(b'{"value": 2, "battery": 90}', "s1", ONE, ARRIVAL)
    assert r.ts == ARRIVAL  # extra fields are ignored


def test_multi_feature_named_fields_and_list() -> None:
    r = parse_payload(b'{"humidity": 40, "temperature": 21.5}', "s1", TWO, ARRIVAL)
    assert r.values == (21.5, 40.0)
    r = parse_payload(b'{"value": [21.5, 40], "ts": 1700000000.5}', "s1", TWO, ARRIVAL)
    assert r.values == (21.5, 40.0) and r.ts == 1_700_000_000.5
    assert reason_of(b"21.5", TWO) == "wrong_length"
    assert reason_of(b'{"temperature": 21.5}', TWO) == "missing_field"
    assert reason_of(b'{"value": [1, 2, 3]}', TWO) == "wrong_length"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"   ", "empty"),
        (b"abc", "not_a_number"),
        (b"nan", "not_a_number"),
        (b"inf", "not_a_number"),
        (b"1_000", "not_a_number"),
        (b"true", "not_a_number"),
        (b"1e999", "not_finite"),
        (b"\xff\xfe\x00", "binary"),
        (b"{not json", "bad_json"),
        (b'{"value": NaN}', "not_finite"),
        (b'{"value": Infinity}', "not_finite"),
        (b'{"value": 1e999}', "not_finite"),
        (b'{"value": true}', "not_a_number"),
        (b'{"value": "21.5"}', "not_a_number"),
        (b'{"value": null}', "not_a_number"),
        (b'{"value": {"x": 1}}', "not_a_number"),
        (b'{"value": []}', "wrong_length"),
        (b'{"val": 1}', "missing_field"),
        (b'{"value": 1, "ts": "yesterday"}', "bad_ts"),
        (b'{"value": 1, "ts": 1700000000000}', "bad_ts"),
        (b'{"value": 1, "ts": true}', "bad_ts"),
        (b'{"value": 1, "ts": [1]}', "bad_ts"),
        (b"[1, 2]", "not_a_number"),
        (b"{" * 600, "bad_json"),
    ],
)
def test_rejections(payload: bytes, reason: str) -> None:
    assert reason_of(payload, max_bytes=4096) == reason


def test_size_limit() -> None:
    assert reason_of(b"1" + b" " * 2000) == "too_large"
    assert parse_payload(b"1" + b" " * 100, "s1", ONE, ARRIVAL, max_bytes=101).values == (1.0,)


def test_millisecond_hint() -> None:
    with pytest.raises(PayloadError, match="milliseconds"):
        parse_payload(b'{"value": 1, "ts": 1700000000000}', "s1", ONE, ARRIVAL)


@given(st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_any_finite_float_round_trips(value: float) -> None:
    assert parse_payload(repr(value).encode(), "s", ONE, ARRIVAL).values == (value,)
    doc = json.dumps({"value": value, "ts": ARRIVAL}).encode()
    assert parse_payload(doc, "s", ONE, ARRIVAL).values == (value,)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash(payload: bytes) -> None:
    try:
        r = parse_payload(payload, "s", ONE, ARRIVAL)
    except PayloadError as exc:
        assert exc.reason in REASONS
    else:
        assert len(r.values) == 1 and all(math.isfinite(v) for v in r.values)
