"""Convert the single-step Keras model to TFLite and find which TFLite tensor is which.

``TFLiteConverter.from_keras_model`` on a functional model of cells gives plain builtin ops; the
SavedModel / ``tf.function`` route turns Keras 3 variables into READ_VARIABLE ops (and NaN), and an
``LSTM`` layer would become a WHILE loop, so both are refused here. The converter names outputs
``output_0..`` in an order it does not promise, so tensors are mapped by probing: feed known random
values to both models and match what comes out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError
from ..model.metadata import QUANTIZE_MODES, forbidden_ops
from ..model.tflite_ops import op_names


@dataclass(frozen=True)
class Converted:
    """A converted model and the facts learnt about it."""

    content: bytes
    ops: tuple[str, ...]
    inputs: dict[str, str]  # Keras input name ("x", "h0", ...) -> TFLite tensor name
    outputs: dict[str, str]  # Keras output name ("y", "new_h0", ...) -> TFLite tensor name


def convert(step_model: Any, quantize: str = "none") -> Converted:
    """TFLite bytes of ``step_model`` (builtin ops only), its ops and its tensor name mapping."""
    import tensorflow as tf

    if quantize not in QUANTIZE_MODES:
        raise ModelError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}, not {quantize!r}")
    converter = tf.lite.TFLiteConverter.from_keras_model(step_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    try:
        content = bytes(converter.convert())
    except Exception as exc:  # the converter raises a zoo of types; all mean "cannot convert"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"TFLite conversion failed: {first}") from exc
    interpreter = _interpreter(content)
    ops = tuple(op_names(content))
    bad = forbidden_ops(ops)
    if bad:
        raise ModelError(f"converted model uses unsupported ops {', '.join(bad)}")
    inputs = _map_inputs(step_model, interpreter)
    outputs = _map_outputs(step_model, interpreter, inputs)
    return Converted(content, ops, inputs, outputs)


def _interpreter(content: bytes) -> Any:
    import warnings

    import tensorflow as tf

    # tf.lite.Interpreter is deprecated for ai_edge_litert, but here TensorFlow is present anyway
    # and the export must not depend on which runtime backend is installed. Without default
    # delegates, so that the op list shows the model's own ops rather than one XNNPACK DELEGATE.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(
            model_content=content,
            experimental_op_resolver_type=(
                tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            ),
        )
    interpreter.allocate_tensors()
    return interpreter


def _map_inputs(step_model: Any, interpreter: Any) -> dict[str, str]:
    """Keras input name -> TFLite input name (the converter embeds the Keras input name)."""
    details = interpreter.get_input_details()
    mapping: dict[str, str] = {}
    for keras_input in step_model.inputs:
        name = keras_input.name
        width = int(keras_input.shape[-1])
        candidates = [
            d["name"]
            for d in details
            if _base_name(d["name"]) == name and int(d["shape"][-1]) == width
        ]
        if len(candidates) != 1:
            seen = ", ".join(d["name"] for d in details)
            raise ModelError(f"cannot find the TFLite input for {name!r} among: {seen}")
        mapping[name] = candidates[0]
    return mapping


def _base_name(tflite_name: str) -> str:
    """``serving_default_h0:0`` -> ``h0``."""
    base = tflite_name.split(":")[0]
    return base.removeprefix("serving_default_")


def run_tflite(interpreter: Any, feeds: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
    """Run ``interpreter`` once: ``{input name: array}`` -> ``{output name: array}``."""
    by_name = {d["name"]: d for d in interpreter.get_input_details()}
    batch = next(iter(feeds.values())).shape[0]
    for name, value in feeds.items():
        detail = by_name[name]
        if int(detail["shape"][0]) != batch:
            interpreter.resize_tensor_input(detail["index"], [batch, value.shape[1]])
    interpreter.allocate_tensors()
    by_name = {d["name"]: d for d in interpreter.get_input_details()}
    for name, value in feeds.items():
        interpreter.set_tensor(by_name[name]["index"], value.astype(np.float32))
    interpreter.invoke()
    return {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}


def _map_outputs(step_model: Any, interpreter: Any, inputs: dict[str, str]) -> dict[str, str]:
    rng = np.random.default_rng(20240601)
    batch = 3
    feeds_keras = [
        rng.normal(size=(batch, int(t.shape[-1]))).astype(np.float32) for t in step_model.inputs
    ]
    expected = [np.asarray(v) for v in step_model(feeds_keras, training=False)]
    got = run_tflite(
        interpreter,
        {inputs[t.name]: v for t, v in zip(step_model.inputs, feeds_keras, strict=True)},
    )
    # Closest pairs first: a right pairing differs by float (or quantization) noise, a wrong one
    # by O(1). No absolute bound here: the parity check that follows judges the size of the error.
    pairs = sorted(
        (float(np.max(np.abs(value - want))), name, tfl)
        for name, want in zip(step_model.output_names, expected, strict=True)
        for tfl, value in got.items()
        if value.shape == want.shape
    )
    mapping: dict[str, str] = {}
    for _, name, tfl in pairs:
        if name not in mapping and tfl not in mapping.values():
            mapping[name] = tfl
    missing = [name for name in step_model.output_names if name not in mapping]
    if missing:
        raise ModelError(f"cannot match the Keras outputs {missing} to TFLite outputs")
    return mapping
