"""The state-message codec: round trips named arrays; refuses every bad message with a reason."""

from __future__ import annotations

import random
import struct
from typing import Any

import numpy as np
import pytest

from edge_lstm.daemon.broker_state import (
    MAX_STATE_BYTES,
    REASONS,
    Refused,
    SensorState,
    decode_state,
    encode_state,
    sensor_of_state_topic,
    state_subscription,
    state_topic,
)

SHA = "ab" * 32
OTHER_SHA = "cd" * 32


def fields() -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(7)
    return {
        "state": rng.standard_normal(64).astype(np.float32),
        "last_y": rng.standard_normal((1, 3)).astype(np.float32),
        "steps": np.array(1234, dtype=np.int64),
        "clock_offset_s": np.array(-0.25, dtype=np.float64),
        "history": rng.standard_normal((2, 4, 3)).astype(np.float16),
        "bucket_open": np.array(True),
        "ring_pos": np.array([3, 0], dtype=np.uint16),
        "empty": np.zeros((0, 5), dtype=np.float32),
    }


def decoded(payload: bytes, sha: str = SHA, sensor: str | None = "boiler-1") -> SensorState:
    result = decode_state(payload, sha, sensor)
    assert isinstance(result, SensorState), result
    return result


def refused(payload: bytes, sha: str = SHA, sensor: str | None = "boiler-1") -> Refused:
    result = decode_state(payload, sha, sensor)
    assert isinstance(result, Refused), result
    assert result.reason in REASONS
    assert result.message and "\n" not in result.message
    return result


def test_round_trip_keeps_names_dtypes_shapes_and_values() -> None:
    original = fields()
    state = decoded(encode_state("boiler-1", SHA, original, 1_700_000_000.5))
    assert state.sensor_id == "boiler-1" and state.model_sha256 == SHA
    assert state.saved_at == 1_700_000_000.5
    assert list(state.fields) == list(original)
    for name, array in original.items():
        got = state.fields[name]
        assert got.dtype == array.dtype and got.shape == array.shape, name
        np.testing.assert_array_equal(got, array)


def test_big_endian_input_comes_back_native() -> None:
    big = np.arange(4, dtype=">f8")
    got = decoded(encode_state("boiler-1", SHA, {"x": big}, 0.0)).fields["x"]
    np.testing.assert_array_equal(got, big)
    assert got.dtype.isnative


def test_unicode_sensor_id_and_topics() -> None:
    state = decoded(encode_state("Küche-Ofen", SHA, {}, 0.0), sensor="Küche-Ofen")
    assert state.sensor_id == "Küche-Ofen" and state.fields == {}
    topic = state_topic("edge", "Küche-Ofen")
    assert topic == "edge/state/Küche-Ofen" and state_subscription("edge") == "edge/state/+"
    assert sensor_of_state_topic("edge", topic) == "Küche-Ofen"
    assert sensor_of_state_topic("edge", "edge/boiler/forecast") is None
    assert sensor_of_state_topic("edge", "edge/state/a/b") is None
    assert sensor_of_state_topic("edge", "edge/state/") is None


def test_compact() -> None:
    payload = encode_state("s1", SHA, {"state": np.zeros(64, np.float32)}, 0.0)
    # 256 bytes of data; the envelope (header, id, field header, checksum) is under 80 bytes.
    assert len(payload) < 256 + 80


def test_another_models_state_is_refused() -> None:
    result = refused(encode_state("boiler-1", OTHER_SHA, fields(), 0.0))
    assert result.reason == "model" and "cdcdcdcdcdcd" in result.message


def test_a_state_published_under_another_sensor_is_refused() -> None:
    result = refused(encode_state("boiler-2", SHA, fields(), 0.0))
    assert result.reason == "sensor" and "boiler-2" in result.message


def test_every_truncation_is_refused() -> None:
    payload = encode_state("boiler-1", SHA, fields(), 0.0)
    reasons = {refused(payload[:n]).reason for n in range(1, len(payload))}
    assert reasons == {"truncated"}


def test_every_single_bit_flip_is_refused_or_harmless() -> None:
    payload = encode_state("boiler-1", SHA, fields(), 0.0)
    for i in range(len(payload)):
        for bit in (0, 5):
            flipped = bytearray(payload)
            flipped[i] ^= 1 << bit
            result = decode_state(bytes(flipped), SHA, "boiler-1")
            # crc32 detects every single-bit error: nothing corrupted is ever accepted.
            assert isinstance(result, Refused), (i, bit)


def test_garbage_never_raises() -> None:
    rng = random.Random(13)
    for n in (1, 3, 4, 7, 40, 200, 5000):
        for _ in range(50):
            blob = bytes(rng.randrange(256) for _ in range(n))
            assert isinstance(decode_state(blob, SHA, "boiler-1"), Refused)
    for blob in (b'{"sensor": "boiler-1"}', b"ELSS", b"ELSS" + b"\xff" * 100, "ü".encode()):
        assert isinstance(decode_state(blob, SHA, "boiler-1"), Refused)


def test_crafted_messages_with_a_valid_checksum_are_refused() -> None:
    # A hostile publisher can compute a crc32: the structure is checked after it.
    def forge(body: bytes) -> bytes:
        import zlib

        head = struct.pack("<4sBBI32s", b"ELSS", 1, 0, 42 + len(body) + 4, bytes.fromhex(SHA))
        data = head + body
        return data + struct.pack("<I", zlib.crc32(data))

    sid = struct.pack("<H", 8) + b"boiler-1" + struct.pack("<d", 0.0)
    obj_field = struct.pack("<H", 1) + b"\x01x" + b"\x03|O8" + b"\x00" + b"\x00" * 8
    huge_dims = (
        struct.pack("<H", 1) + b"\x01x" + b"\x03<f4" + b"\x02" + struct.pack("<II", 2**31, 9)
    )
    trailing = struct.pack("<H", 0) + b"junk"
    nan_time = struct.pack("<H", 8) + b"boiler-1" + struct.pack("<d", float("nan"))
    for body in (sid + obj_field, sid + huge_dims, sid + trailing, nan_time + b"\x00\x00"):
        assert refused(forge(body)).reason in ("garbage", "truncated")


def test_empty_and_oversized_and_other_versions() -> None:
    assert refused(b"").reason == "empty"
    assert refused(b"ELSS" + bytes(MAX_STATE_BYTES)).reason == "too_large"
    payload = bytearray(encode_state("boiler-1", SHA, fields(), 0.0))
    payload[4] = 2
    assert refused(bytes(payload)).reason == "version"


def test_sensor_check_is_optional() -> None:
    assert decoded(encode_state("x", SHA, {}, 0.0), sensor=None).sensor_id == "x"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"o": np.array(["a"], dtype=object)}, "not storable"),
        ({"c": np.zeros(2, np.complex64)}, "not storable"),
        ({"d": np.zeros((1,) * 5, np.float32)}, "not storable"),
        ({"big": np.zeros(MAX_STATE_BYTES, np.uint8)}, "at most"),
    ],
)
def test_encode_refuses_what_it_cannot_hold(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_state("s", SHA, bad, 0.0)


def test_encode_refuses_a_bad_digest() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        encode_state("s", "abcd", {}, 0.0)
