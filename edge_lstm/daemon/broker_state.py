"""One sensor's state as a retained MQTT message on ``PREFIX/state/SENSOR``: the codec.

A daemon publishes each owned sensor's state at every snapshot and at a clean stop; a daemon
that takes a sensor over (a replacement Pi with an empty disk, a re-shard) imports it and goes
on warm. Anybody can publish to a broker, so decoding trusts nothing: it never raises, and every
refusal has a reason (counted) and a one-line message (logged, rate-limited).

Layout (version 1, integers little-endian)::

    magic "ELSS" | version u8 | flags u8 (0) | total length u32 | model sha256 (32 raw bytes)
    | sensor id: u16 length + UTF-8 | saved_at f64 (epoch s) | field count u16
    | per field: name (u8 length + ASCII) | dtype (u8 length + numpy dtype str, e.g. "<f4")
                 | ndim u8 | dims u32 each | data (C order, little-endian)
    | crc32 of everything before, u32

The fields are whatever ``Pipeline.export_sensor`` names (LSTM h/c, steps, clock, history
ring, band): the codec is generic over names, dtypes and shapes; whether they fit the model is
``Pipeline.import_sensor``'s call. Only plain numeric and bool dtypes are accepted (no
objects, so nothing is ever unpickled).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAGIC = b"ELSS"
VERSION = 1
MAX_STATE_BYTES = 4 * 1024 * 1024
"""Refused above this: a sensor's state is a few KB; a huge retained message is an attack."""
MAX_FIELDS = 256
MAX_NDIM = 4
_ALLOWED_KINDS = "biuf"  # bool, signed, unsigned, float
_HEAD = struct.Struct("<4sBBI32s")
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_F64 = struct.Struct("<d")
_CRC = struct.Struct("<I")

#: Why a state message was refused (health counts these as ``state_refused`` by reason).
REASONS = ("empty", "garbage", "version", "truncated", "checksum", "model", "sensor", "too_large")


@dataclass(frozen=True)
class SensorState:
    """A decoded state message."""

    sensor_id: str
    model_sha256: str
    """Hex digest of the ``.tflite`` file the state was computed with."""
    saved_at: float
    fields: dict[str, np.ndarray[Any, Any]] = field(repr=False)


@dataclass(frozen=True)
class Refused:
    """A state message that was not taken, and why."""

    reason: str
    """One of ``REASONS``."""
    message: str


def encode_state(
    sensor_id: str,
    model_sha256: str,
    fields: Mapping[str, np.ndarray[Any, Any]],
    saved_at: float,
) -> bytes:
    """The message for one sensor's state (``ValueError`` for a field the format cannot hold)."""
    digest = bytes.fromhex(model_sha256)
    if len(digest) != 32:
        raise ValueError(f"model sha256 must be 32 bytes, got {len(digest)}")
    if len(fields) > MAX_FIELDS:
        raise ValueError(f"{len(fields)} fields; at most {MAX_FIELDS}")
    sid = sensor_id.encode("utf-8")
    parts = [b"", _U16.pack(len(sid)), sid]
    parts += [_F64.pack(saved_at), _U16.pack(len(fields))]
    for name, value in fields.items():
        array = np.asarray(value)
        if array.dtype.kind not in _ALLOWED_KINDS or array.ndim > MAX_NDIM:
            raise ValueError(
                f"field {name!r}: dtype {array.dtype} / ndim {array.ndim} not storable"
            )
        array = np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")
        name_bytes = name.encode("ascii")
        dtype_bytes = array.dtype.str.encode("ascii")
        parts += [_U8.pack(len(name_bytes)), name_bytes, _U8.pack(len(dtype_bytes)), dtype_bytes]
        parts += [_U8.pack(array.ndim), *(_U32.pack(d) for d in array.shape), array.tobytes()]
    total = _HEAD.size + sum(map(len, parts)) + _CRC.size
    if total > MAX_STATE_BYTES:
        raise ValueError(f"state of {sensor_id!r} is {total} bytes; at most {MAX_STATE_BYTES}")
    parts[0] = _HEAD.pack(MAGIC, VERSION, 0, total, digest)
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


class _Truncated(Exception):
    pass


class _Garbage(Exception):
    pass


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise _Truncated(f"needs {end} bytes, has {len(self.data)}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def unpack(self, fmt: struct.Struct) -> Any:
        return fmt.unpack(self.take(fmt.size))[0]


def decode_state(
    payload: bytes, model_sha256: str, sensor_id: str | None = None
) -> SensorState | Refused:
    """The state in ``payload`` if it is intact, for this model and (if given) this sensor.

    Never raises: whatever the bytes, the answer is a ``SensorState`` or a ``Refused``.
    """
    try:
        return _decode(bytes(payload), model_sha256, sensor_id)
    except _Truncated as exc:
        return Refused("truncated", f"state message truncated ({exc})")
    except _Garbage as exc:
        return Refused("garbage", f"not a state message: {exc}")
    except Exception as exc:  # a payload must never take the worker down
        return Refused("garbage", f"not a state message ({type(exc).__name__}: {exc})")


def _decode(payload: bytes, model_sha256: str, sensor_id: str | None) -> SensorState | Refused:
    if not payload:
        return Refused("empty", "empty state message (a cleared retained state)")
    if len(payload) > MAX_STATE_BYTES:
        return Refused("too_large", f"state message of {len(payload)} bytes is too large")
    if not payload.startswith(MAGIC):
        if MAGIC.startswith(payload):
            return Refused("truncated", f"state message truncated to {len(payload)} bytes")
        raise _Garbage(f"starts with {payload[:8]!r}")
    reader = _Reader(payload)
    _, version, _flags, total, digest = _HEAD.unpack(reader.take(_HEAD.size))
    if version != VERSION:
        return Refused("version", f"state format version {version}; this daemon reads {VERSION}")
    if len(payload) < total:
        return Refused("truncated", f"state message truncated: {len(payload)} of {total} bytes")
    if len(payload) > total or total < reader.pos + _CRC.size:
        raise _Garbage(f"{len(payload)} bytes where the header says {total}")
    body, crc = payload[: -_CRC.size], _CRC.unpack(payload[-_CRC.size :])[0]
    if zlib.crc32(body) != crc:
        return Refused("checksum", "state message checksum mismatch (corrupted)")
    if digest.hex() != model_sha256.lower():
        return Refused(
            "model",
            f"state computed with model sha256 {digest.hex()[:12]}…, "
            f"this daemon runs {model_sha256[:12]}…",
        )
    reader.data = body
    found_id = reader.take(reader.unpack(_U16)).decode("utf-8")
    if sensor_id is not None and found_id != sensor_id:
        return Refused("sensor", f"state of sensor {found_id!r} published for {sensor_id!r}")
    saved_at = float(reader.unpack(_F64))
    if not math.isfinite(saved_at):
        raise _Garbage("saved_at is not finite")
    fields = {}
    for _ in range(reader.unpack(_U16)):
        name = reader.take(reader.unpack(_U8)).decode("ascii")
        dtype = np.dtype(reader.take(reader.unpack(_U8)).decode("ascii"))
        if dtype.kind not in _ALLOWED_KINDS or name in fields:
            raise _Garbage(f"field {name!r}: dtype {dtype} or a repeated name")
        ndim = reader.unpack(_U8)
        if ndim > MAX_NDIM:
            raise _Garbage(f"field {name!r} has {ndim} dimensions")
        shape = tuple(int(reader.unpack(_U32)) for _ in range(ndim))
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        data = reader.take(nbytes)
        fields[name] = (
            np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
        )
    if reader.pos != len(body):
        raise _Garbage(f"{len(body) - reader.pos} bytes after the last field")
    return SensorState(found_id, digest.hex(), saved_at, fields)


def state_topic(prefix: str, sensor_id: str) -> str:
    """Where a sensor's state is retained."""
    return f"{prefix}/state/{sensor_id}"


def state_subscription(prefix: str) -> str:
    """The filter that receives every sensor's retained state."""
    return f"{prefix}/state/+"


def sensor_of_state_topic(prefix: str, topic: str) -> str | None:
    """The sensor id in a state topic, or None when ``topic`` is not one."""
    head = f"{prefix}/state/"
    if not topic.startswith(head):
        return None
    rest = topic[len(head) :]
    return rest if rest and "/" not in rest else None
