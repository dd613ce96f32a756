"""The op list read from a ``.tflite`` FlatBuffer (the interpreters have no public way)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from edge_lstm.model import tflite_ops
from edge_lstm.model.metadata import forbidden_ops
from edge_lstm.model.runtime import StepModel
from edge_lstm.model.tflite_ops import TfliteFormatError, op_names

GOLDEN_OPS = ["ADD", "FULLY_CONNECTED", "LOGISTIC", "MUL", "SPLIT", "TANH"]


def test_the_golden_models_ops(golden_model: Path) -> None:
    assert op_names(golden_model.read_bytes()) == GOLDEN_OPS
    assert StepModel.load(golden_model).ops() == GOLDEN_OPS


def _with_code(content: bytes, old: str, new: str) -> bytes:
    """``content`` with one builtin operator code replaced (both of its code fields)."""
    data = bytearray(content)
    model = tflite_ops._table(data, tflite_ops._u32(data, 0))
    for code in tflite_ops._vector_of_tables(data, model, 1):
        builtin = tflite_ops._field(data, code, 3)
        if builtin is None or struct.unpack_from("<i", data, builtin)[
            0
        ] != tflite_ops.BUILTIN_OPS.index(old):
            continue
        struct.pack_into("<i", data, builtin, tflite_ops.BUILTIN_OPS.index(new))
        deprecated = tflite_ops._field(data, code, 0)
        if deprecated is not None:  # codes above 127 keep 127 here (schema.fbs)
            struct.pack_into("<b", data, deprecated, min(127, tflite_ops.BUILTIN_OPS.index(new)))
        return bytes(data)
    raise AssertionError(f"{old} not found")


def test_a_resource_variable_op_is_seen_and_forbidden(golden_model: Path) -> None:
    content = _with_code(golden_model.read_bytes(), "FULLY_CONNECTED", "READ_VARIABLE")
    ops = op_names(content)
    assert "READ_VARIABLE" in ops and "FULLY_CONNECTED" not in ops
    assert forbidden_ops(ops) == ["READ_VARIABLE"]


@pytest.mark.parametrize("size", [0, 3, 7, 16, 40])
def test_truncated_bytes_are_a_format_error(golden_model: Path, size: int) -> None:
    with pytest.raises(TfliteFormatError, match="not a readable TFLite model"):
        op_names(golden_model.read_bytes()[:size])
