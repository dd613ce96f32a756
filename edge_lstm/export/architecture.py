"""Read a Keras sequence model layer by layer and rebuild it as a functional single-step model.

The single-step model takes ``x[B, F]`` plus every recurrent state tensor and returns
``y[B, F_out]`` plus the new state tensors, with the weights copied from the original cells, so one
call advances one time step for any number of sensors.
Keras is imported inside the functions that build models, never at module import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError
from ..model.metadata import Layer

RECURRENT = ("LSTM", "GRU")


@dataclass(frozen=True)
class StepLayer:
    """One layer of the original model as the single-step model needs it."""

    kind: str  # "lstm", "gru", "dense", "skip" (Dropout is dropped: identity at inference)
    config: dict[str, Any]
    weights: tuple[Any, ...]
    units: int


@dataclass(frozen=True)
class Architecture:
    """The supported chain of layers of a Keras model, plus its input facts."""

    layers: tuple[StepLayer, ...]
    n_features: int
    n_outputs: int
    stateful: bool
    batch_size: int | None
    time_steps: int | None

    @property
    def recurrent(self) -> tuple[StepLayer, ...]:
        return tuple(layer for layer in self.layers if layer.kind in ("lstm", "gru"))

    def meta_layers(self) -> tuple[Layer, ...]:
        return tuple(Layer(layer.kind, layer.units) for layer in self.recurrent)

    def state_names(self) -> list[tuple[str, int]]:
        """``(name, size)`` of each state tensor, in the order the runtime concatenates them."""
        names: list[tuple[str, int]] = []
        for i, layer in enumerate(self.recurrent):
            names.append((f"h{i}", layer.units))
            if layer.kind == "lstm":
                names.append((f"c{i}", layer.units))
        return names


def describe(model: Any) -> Architecture:
    """Check that ``model`` is a chain edge-lstm can export; ``ModelError`` names what is not."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(
            f"model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "edge-lstm exports models with one input and one output"
        )
    in_shape = tuple(model.inputs[0].shape)
    if len(in_shape) != 3 or in_shape[2] is None:
        raise ModelError(f"model input shape {in_shape} is not (batch, time, features)")
    layers: list[StepLayer] = []
    stateful = False
    sources = _sources(model)
    previous = input_name = ""
    for layer in model.layers:
        name = type(layer).__name__
        if name == "InputLayer":
            previous = input_name = layer.name
            continue
        if name == "Concatenate":
            _check_skip(layer, sources.get(layer.name, []), [previous, input_name])
            layers.append(StepLayer("skip", layer.get_config(), (), 0))
        elif name in RECURRENT:
            config = layer.get_config()
            _check_recurrent(layer.name, name, config)
            stateful = stateful or bool(config["stateful"])
            layers.append(
                StepLayer(name.lower(), config, tuple(layer.get_weights()), int(config["units"]))
            )
        elif name == "Dense" or (name == "TimeDistributed" and _wraps_dense(layer)):
            dense = layer.layer if name == "TimeDistributed" else layer
            config = dense.get_config()
            layers.append(
                StepLayer("dense", config, tuple(dense.get_weights()), int(config["units"]))
            )
        elif name != "Dropout":  # Dropout: inference is the identity
            inner = f"({type(layer.layer).__name__})" if hasattr(layer, "layer") else ""
            raise ModelError(
                f"layer {layer.name!r} of type {name}{inner} is not supported; edge-lstm exports "
                "LSTM/GRU layers followed by optional Dense or TimeDistributed(Dense) layers "
                "(and one Concatenate of the last output with the model input)"
            )
        previous = layer.name
    if not any(layer.kind in ("lstm", "gru") for layer in layers):
        raise ModelError("model has no LSTM or GRU layer")
    out_shape = tuple(model.outputs[0].shape)
    n_out = out_shape[-1]
    if n_out is None:
        raise ModelError(f"model output shape {out_shape} has no fixed feature size")
    return Architecture(
        layers=tuple(layers),
        n_features=int(in_shape[2]),
        n_outputs=int(n_out),
        stateful=stateful,
        batch_size=None if in_shape[0] is None else int(in_shape[0]),
        time_steps=None if in_shape[1] is None else int(in_shape[1]),
    )


def _sources(model: Any) -> dict[str, list[str]]:
    """Each layer's input layers by name, from a functional model's config (a Sequential: {})."""
    found: dict[str, list[str]] = {}

    def walk(node: object, names: list[str]) -> None:
        if isinstance(node, dict):
            history = node.get("keras_history")  # [layer name, node index, tensor index]
            if isinstance(history, list | tuple) and history and isinstance(history[0], str):
                names.append(history[0])
            for value in node.values():
                walk(value, names)
        elif isinstance(node, list | tuple):
            for value in node:
                walk(value, names)

    for entry in model.get_config().get("layers", []):
        if isinstance(entry, dict) and "inbound_nodes" in entry:
            names: list[str] = []
            walk(entry["inbound_nodes"], names)
            found[str(entry.get("name"))] = names
    return found


def _check_skip(layer: Any, sources: list[str], expected: list[str]) -> None:
    """A Concatenate is the input skip only as ``[last output, model input]`` on the last axis."""
    axis = layer.get_config().get("axis", -1)
    if sources != expected or axis not in (-1, 2):
        raise ModelError(
            f"layer {layer.name!r} (Concatenate) joins {sources} on axis {axis}; edge-lstm exports "
            f"only a skip that joins {expected} on the last axis"
        )


def _wraps_dense(layer: Any) -> bool:
    return type(getattr(layer, "layer", None)).__name__ == "Dense"


def _check_recurrent(layer_name: str, kind: str, config: dict[str, Any]) -> None:
    if config.get("go_backwards"):
        raise ModelError(f"layer {layer_name!r} ({kind}) has go_backwards=True; not supported")
    if config.get("return_state"):
        raise ModelError(f"layer {layer_name!r} ({kind}) has return_state=True; not supported")


def build_step_model(arch: Architecture) -> Any:
    """The functional single-step Keras model: inputs ``x, h0, c0, ...``, outputs ``y, h0, ...``."""
    import keras

    x_in = keras.Input(shape=(arch.n_features,), name="x", dtype="float32")
    state_inputs = {
        name: keras.Input(shape=(size,), name=name, dtype="float32")
        for name, size in arch.state_names()
    }
    new_states: dict[str, Any] = {}
    cells: list[tuple[Any, tuple[Any, ...]]] = []
    value = x_in
    rec_index = 0
    for layer in arch.layers:
        if layer.kind == "skip":  # the input skip: the head also sees this step's inputs
            value = keras.layers.Concatenate()([value, x_in])
            continue
        if layer.kind == "dense":
            dense = keras.layers.Dense.from_config(_without_name(layer.config))
            value = dense(value)
            cells.append((dense, layer.weights))
            continue
        h_name = f"h{rec_index}"
        if layer.kind == "lstm":
            cell = keras.layers.LSTMCell(**_cell_kwargs(layer.config, lstm=True))
            c_name = f"c{rec_index}"
            value, (h_new, c_new) = cell(value, [state_inputs[h_name], state_inputs[c_name]])
            new_states[h_name], new_states[c_name] = h_new, c_new
        else:
            cell = keras.layers.GRUCell(**_cell_kwargs(layer.config, lstm=False))
            value, h_new = cell(value, state_inputs[h_name])
            new_states[h_name] = h_new[0] if isinstance(h_new, list | tuple) else h_new
        cells.append((cell, layer.weights))
        rec_index += 1
    # Identity layers give every output a stable name in the Keras model (TFLite renames them
    # anyway; the converter's names are mapped by probing, see convert.py).
    outputs = [keras.layers.Identity(name="y")(value)]
    outputs += [keras.layers.Identity(name=f"new_{n}")(new_states[n]) for n in state_inputs]
    model = keras.Model([x_in, *state_inputs.values()], outputs, name="single_step")
    for cell, weights in cells:
        cell.set_weights(list(weights))
    return model


def _without_name(config: dict[str, Any]) -> dict[str, Any]:
    # The original layer names may clash with the step model's own input names ("x", "h0").
    config = dict(config)
    config.pop("name", None)
    return config


def _cell_kwargs(config: dict[str, Any], *, lstm: bool) -> dict[str, Any]:
    keys = ["units", "activation", "recurrent_activation", "use_bias"]
    keys += ["unit_forget_bias"] if lstm else ["reset_after"]
    return {k: config[k] for k in keys if k in config}


def reference_model(model: Any, arch: Architecture) -> Any:
    """The original model, or a same-weights clone that accepts one time step per call.

    A model saved with a fixed time length (``batch_shape=(1, look_back, F)``) cannot be fed
    step by step, so it is rebuilt with a free time axis; the batch size (fixed for stateful
    models) is kept.
    """
    if arch.time_steps is None:
        return model
    config = model.get_config()
    changed = False
    for entry in config.get("layers", []):
        layer_config = entry.get("config", {})
        shape = layer_config.get("batch_shape")
        if entry.get("class_name") == "InputLayer" and shape is not None and len(shape) == 3:
            layer_config["batch_shape"] = (shape[0], None, shape[2])
            changed = True
    if not changed:
        raise ModelError("model has a fixed time length and no InputLayer to rebuild it from")
    clone = type(model).from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def reset_states(model: Any) -> None:
    """Zero every stateful recurrent layer (Keras 3 models have no ``reset_states``)."""
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_states()


def as_float32(values: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A contiguous float32 copy (Keras returns backend tensors)."""
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32))
