"""The op list of a ``.tflite`` file, read from the file itself (no interpreter involved).

The interpreters list a model's ops only through a private method (``_get_ops_details``); the
FlatBuffer format of a ``.tflite`` file is public (TensorFlow Lite's ``schema.fbs``), so the
model's operator codes are read from its bytes here. Pure Python, a few dozen bytes touched.
"""

from __future__ import annotations

import struct

# schema.fbs: the BuiltinOperator enum, by code (0..209). Codes added by later schema
# versions show as ``BUILTIN_<code>``.
_BUILTIN_NAMES = (
    "ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE "
    "EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D "
    "LOCAL_RESPONSE_NORMALIZATION LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU "
    "RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH SVDF TANH "
    "CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD "
    "UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN "
    "SUB DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN "
    "EXP TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM "
    "ARG_MAX MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN "
    "TRANSPOSE_CONV SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT "
    "SHAPE POW ARG_MIN FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND "
    "LOGICAL_NOT UNPACK REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD "
    "RANGE RESIZE_NEAREST_NEIGHBOR LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V "
    "UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG "
    "QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4 "
    "NON_MAX_SUPPRESSION_V5 SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL "
    "PLACEHOLDER_FOR_GREATER_OP_CODES CUMSUM CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG REAL "
    "COMPLEX_ABS HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT HASHTABLE_SIZE REDUCE_ALL "
    "CONV_3D_TRANSPOSE VAR_HANDLE READ_VARIABLE ASSIGN_VARIABLE BROADCAST_ARGS "
    "RANDOM_STANDARD_NORMAL BUCKETIZE RANDOM_UNIFORM MULTINOMIAL GELU DYNAMIC_UPDATE_SLICE "
    "RELU_0_TO_1 UNSORTED_SEGMENT_PROD UNSORTED_SEGMENT_MAX UNSORTED_SEGMENT_SUM ATAN2 "
    "UNSORTED_SEGMENT_MIN SIGN BITCAST BITWISE_XOR RIGHT_SHIFT STABLEHLO_LOGISTIC "
    "STABLEHLO_ADD STABLEHLO_DIVIDE STABLEHLO_MULTIPLY STABLEHLO_MAXIMUM STABLEHLO_RESHAPE "
    "STABLEHLO_CLAMP STABLEHLO_CONCATENATE STABLEHLO_BROADCAST_IN_DIM STABLEHLO_CONVOLUTION "
    "STABLEHLO_SLICE STABLEHLO_CUSTOM_CALL STABLEHLO_REDUCE STABLEHLO_ABS STABLEHLO_AND "
    "STABLEHLO_COSINE STABLEHLO_EXPONENTIAL STABLEHLO_FLOOR STABLEHLO_LOG STABLEHLO_MINIMUM "
    "STABLEHLO_NEGATE STABLEHLO_OR STABLEHLO_POWER STABLEHLO_REMAINDER STABLEHLO_RSQRT "
    "STABLEHLO_SELECT STABLEHLO_SUBTRACT STABLEHLO_TANH STABLEHLO_SCATTER STABLEHLO_COMPARE "
    "STABLEHLO_CONVERT STABLEHLO_DYNAMIC_SLICE STABLEHLO_DYNAMIC_UPDATE_SLICE STABLEHLO_PAD "
    "STABLEHLO_IOTA STABLEHLO_DOT_GENERAL STABLEHLO_REDUCE_WINDOW STABLEHLO_SORT "
    "STABLEHLO_WHILE STABLEHLO_GATHER STABLEHLO_TRANSPOSE DILATE STABLEHLO_RNG_BIT_GENERATOR "
    "REDUCE_WINDOW STABLEHLO_COMPOSITE STABLEHLO_SHIFT_LEFT STABLEHLO_CBRT STABLEHLO_CASE "
)
BUILTIN_OPS = tuple(_BUILTIN_NAMES.split())
_CUSTOM = BUILTIN_OPS.index("CUSTOM")
# Field numbers in schema.fbs: Model.operator_codes, OperatorCode.{deprecated_builtin_code,
# custom_code, builtin_code}.
_MODEL_OPERATOR_CODES = 1
_CODE_DEPRECATED_BUILTIN = 0
_CODE_CUSTOM = 1
_CODE_BUILTIN = 3


class TfliteFormatError(ValueError):
    """The bytes are not a TFLite FlatBuffer this reader understands."""


def op_names(content: bytes) -> list[str]:
    """Sorted names of the operator codes a ``.tflite`` model declares (custom ops by name)."""
    try:
        model = _table(content, _u32(content, 0))
        names = set()
        for code in _vector_of_tables(content, model, _MODEL_OPERATOR_CODES):
            builtin = max(
                _scalar(content, code, _CODE_DEPRECATED_BUILTIN, "<b", 0),
                _scalar(content, code, _CODE_BUILTIN, "<i", 0),
            )
            if builtin == _CUSTOM:
                names.add(_string(content, code, _CODE_CUSTOM) or "CUSTOM")
            elif 0 <= builtin < len(BUILTIN_OPS):
                names.add(BUILTIN_OPS[builtin])
            else:
                names.add(f"BUILTIN_{builtin}")
        return sorted(names)
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise TfliteFormatError(f"not a readable TFLite model ({exc})") from exc


def _u32(buf: bytes, pos: int) -> int:
    return int(struct.unpack_from("<I", buf, pos)[0])


def _table(buf: bytes, pos: int) -> tuple[int, int]:
    """``(table position, vtable position)``."""
    return pos, pos - int(struct.unpack_from("<i", buf, pos)[0])


def _field(buf: bytes, table: tuple[int, int], field: int) -> int | None:
    """Absolute position of a field, or None when absent (it has its default)."""
    pos, vtable = table
    entry = 4 + 2 * field
    if entry >= int(struct.unpack_from("<H", buf, vtable)[0]):
        return None
    offset = int(struct.unpack_from("<H", buf, vtable + entry)[0])
    return pos + offset if offset else None


def _scalar(buf: bytes, table: tuple[int, int], field: int, fmt: str, default: int) -> int:
    pos = _field(buf, table, field)
    return default if pos is None else int(struct.unpack_from(fmt, buf, pos)[0])


def _string(buf: bytes, table: tuple[int, int], field: int) -> str | None:
    pos = _field(buf, table, field)
    if pos is None:
        return None
    start = pos + _u32(buf, pos)
    return buf[start + 4 : start + 4 + _u32(buf, start)].decode("utf-8")


def _vector_of_tables(buf: bytes, table: tuple[int, int], field: int) -> list[tuple[int, int]]:
    pos = _field(buf, table, field)
    if pos is None:
        return []
    start = pos + _u32(buf, pos)
    items = []
    for i in range(_u32(buf, start)):
        item = start + 4 + 4 * i
        items.append(_table(buf, item + _u32(buf, item)))
    return items
