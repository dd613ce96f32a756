"""The TFLite step model: the only module that imports an interpreter.

A :class:`StepModel` wraps a single-step ``.tflite`` model whose recurrent state is an explicit
input and output. ``step(x, state)`` advances any number of sensors by one model step in one
batched call (``advance(x, state)`` the same, the new state written over the old).

Ownership: a TFLite interpreter is not thread-safe. A ``StepModel`` (and the ``Forecaster`` that
holds it) belongs to exactly one thread at a time; in the daemon that is the worker thread.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ModelError
from .arrays import FloatArray
from .metadata import ModelMeta, forbidden_ops, sidecar_path
from .native_log import without_xnnpack_notice
from .tflite_ops import TfliteFormatError, op_names

#: Preference order when no backend is named.
BACKENDS = ("ai_edge_litert", "tflite_runtime", "tensorflow")
_MODULES = {
    "ai_edge_litert": "ai_edge_litert.interpreter",
    "tflite_runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow",
}
#: Interpreters are sized once at these batch sizes; a call is padded up to the next one.
#: Resizing + reallocating per call costs more than the LSTM step itself at small batches.
#: Larger batches go in chunks of the largest: 256 steps 10,000 sensors as fast as 1024 did
#: (40 calls instead of 10, the per-call cost is small beside the LSTM's), and its arena is a
#: quarter of the size (the default model: 1.2 MiB instead of 4.7 MiB, docs/bench.md).
BATCH_SIZES = (1, 16, 128, 256)


def available_backends() -> list[str]:
    """Backends whose module can be found, in preference order (nothing is imported)."""
    found = []
    for name in BACKENDS:
        try:
            if importlib.util.find_spec(_MODULES[name].split(".")[0]) is not None:
                found.append(name)
        except (ImportError, ValueError):
            continue
    return found


def resolve_backend(backend: str | None = None) -> str:
    """The backend a :class:`StepModel` would use (``backend``, ``EDGE_LSTM_BACKEND`` or the
    first importable); imports it. ``ModelError`` when none can be imported."""
    return _interpreter_factory(backend)[0]


def _interpreter_factory(backend: str | None) -> tuple[str, Callable[..., Any]]:
    wanted = backend or os.environ.get("EDGE_LSTM_BACKEND") or None
    if wanted is not None and wanted not in BACKENDS:
        choices = ", ".join(BACKENDS)
        raise ModelError(f"unknown interpreter backend {wanted!r} (choose from {choices})")
    errors = []
    for name in [wanted] if wanted else list(BACKENDS):
        assert name is not None
        try:
            module = importlib.import_module(_MODULES[name])
        except ImportError as exc:  # tflite-runtime under numpy 2 fails here, not at find_spec
            errors.append(f"{name}: {exc}")
            continue
        factory = module.lite.Interpreter if name == "tensorflow" else module.Interpreter
        return name, factory
    raise ModelError(
        "no TFLite interpreter could be imported ("
        + "; ".join(errors)
        + "); install edge-lstm[litert] or edge-lstm[tflite]"
    )


@dataclass
class _Sized:
    """One interpreter allocated at a fixed batch size, with its tensor indices."""

    interpreter: Any
    batch: int
    x_index: int
    y_index: int
    state_in: list[int]
    state_out: list[int]


class StepModel:
    """A single-step recurrent model: ``(x[B,D], state[B,S]) -> (y[B,F], state'[B,S])``.

    ``x`` and ``y`` are in model (scaled) units; ``D`` is ``meta.input_width`` (``F`` for a model
    without extra inputs). ``state`` is every state tensor of
    ``meta.state`` concatenated in order, so a sensor's whole state is one row.
    """

    def __init__(
        self, content: bytes, meta: ModelMeta, backend: str | None = None, source: str = "model"
    ) -> None:
        self.meta = meta
        self.source = source
        self.backend, self._factory = _interpreter_factory(backend)
        self._content = content
        self._offsets = np.cumsum([0] + [s.size for s in meta.state]).tolist()
        self._shape = (meta.input_width, meta.state_size)  # read by every advance
        self._sized: dict[int, _Sized] = {}
        self._check_signature(self._interpreter(1))

    @classmethod
    def load(cls, path: Path | str, backend: str | None = None) -> StepModel:
        """Load ``path`` and its sidecar metadata; every problem is one ``ModelError`` line."""
        content, meta = cls.read(path)
        return cls(content, meta, backend=backend, source=str(path))

    @staticmethod
    def read(path: Path | str) -> tuple[bytes, ModelMeta]:
        """The model's bytes and its sidecar, checked against each other (no interpreter yet)."""
        path = Path(path)
        # These first: the sidecar's or the checksum's complaint would point the wrong way.
        if path.suffix != ".tflite":
            raise ModelError(
                f"{path}: not a .tflite file (convert a Keras model with edge-lstm export)"
            )
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        meta = ModelMeta.load(sidecar_path(path))
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"{path}: cannot read model file ({exc.strerror})") from exc
        digest = hashlib.sha256(content).hexdigest()
        if digest != meta.tflite_sha256:
            raise ModelError(
                f"{path}: sha256 {digest[:12]}… does not match its metadata "
                f"({meta.tflite_sha256[:12]}…): truncated, corrupt or from another export"
            )
        return content, meta

    @property
    def sha256(self) -> str:
        return self.meta.tflite_sha256

    def zero_state(self, batch: int) -> FloatArray:
        """A fresh (all zero) state for ``batch`` sensors."""
        return np.zeros((batch, self.meta.state_size), dtype=np.float32)

    def ops(self) -> list[str]:
        """Names of the ops in the model graph (for ``inspect`` and export checks)."""
        # Read from the model's FlatBuffer: the interpreters list ops only through a private
        # method, and with default delegates they would list XNNPACK as one DELEGATE op.
        try:
            return op_names(self._content)
        except TfliteFormatError as exc:
            raise ModelError(f"{self.source}: {exc}") from exc

    def step(self, x: npt.ArrayLike, state: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Advance ``B`` sensors one step; returns new arrays, the inputs are not modified."""
        new_state = np.array(state, dtype=np.float32, order="C")  # always a copy
        y = self.advance(x, new_state)
        return y, new_state

    def advance(self, x: npt.ArrayLike, state: FloatArray) -> FloatArray:
        """Advance ``B`` sensors one step, the new state written over ``state`` (the caller's
        own C-contiguous float32 ``(B, state_size)``); returns ``y`` ``(B, F)``.

        What the daemon's steps and every forecast's fed-back steps use: no array the size of
        the state per call. (At 10,000 sensors that was 2.5 MB a step, each of its pages
        faulted in afresh when the allocator gave it a new mapping: with the daemon's
        allocator settings, ``heap.hold_less``, 40% of a forecast's CPU.)
        """
        xs = np.ascontiguousarray(x, dtype=np.float32)
        batch = xs.shape[0]
        width, size = self._shape
        if xs.shape != (batch, width) or state.shape != (batch, size):
            raise ValueError(
                f"step expects x[B,{width}] and state[B,{size}], got {xs.shape} and {state.shape}"
            )
        if state.dtype != np.float32 or not state.flags.c_contiguous:
            raise ValueError("advance needs the state as a C-contiguous float32 array")
        largest = BATCH_SIZES[-1]
        if batch <= largest:
            return self._advance_chunk(xs, state)
        y = np.empty((batch, self.meta.n_features), dtype=np.float32)
        for start in range(0, batch, largest):
            stop = min(start + largest, batch)
            y[start:stop] = self._advance_chunk(xs[start:stop], state[start:stop])
        return y

    def _advance_chunk(self, x: FloatArray, state: FloatArray) -> FloatArray:
        n = x.shape[0]
        size = next(b for b in BATCH_SIZES if b >= n)
        sized = self._interpreter(size)
        interp = sized.interpreter
        offsets = self._offsets
        # Write straight into the interpreter's input buffers (no intermediate copies). The
        # views must not outlive this statement: invoke() refuses to run while one is held.
        # Rows past n are padding; rows are independent, so they never leak into real rows.
        interp.tensor(sized.x_index)()[:n] = x
        for i, index in enumerate(sized.state_in):
            interp.tensor(index)()[:n] = state[:, offsets[i] : offsets[i + 1]]
        interp.invoke()
        # get_tensor (a copy in C, a chunk's rows at most) is faster than a view of the output
        for i, index in enumerate(sized.state_out):
            state[:, offsets[i] : offsets[i + 1]] = interp.get_tensor(index)[:n]
        y: FloatArray = interp.get_tensor(sized.y_index)[:n]
        return y

    def _interpreter(self, batch: int) -> _Sized:
        sized = self._sized.get(batch)
        if sized is not None:
            return sized
        try:
            interp = self._factory(model_content=self._content, num_threads=1)
        except Exception as exc:  # each backend raises its own type for an unreadable flatbuffer
            raise ModelError(f"{self.source}: not a valid TFLite model ({exc})") from exc
        inputs = {d["name"]: d for d in interp.get_input_details()}
        outputs = {d["name"]: d for d in interp.get_output_details()}
        meta = self.meta
        wanted_in = [meta.x_input] + [s.input for s in meta.state]
        wanted_out = [meta.y_output] + [s.output for s in meta.state]
        missing = [n for n in wanted_in if n not in inputs] + [
            n for n in wanted_out if n not in outputs
        ]
        if missing:
            raise ModelError(
                f"{self.source}: metadata does not match the model: no tensor named "
                f"{', '.join(map(repr, missing))} (model has inputs {sorted(inputs)}, "
                f"outputs {sorted(outputs)})"
            )
        try:
            for name in wanted_in:
                shape = list(inputs[name]["shape"])
                interp.resize_tensor_input(inputs[name]["index"], [batch, *shape[1:]], strict=False)
            with without_xnnpack_notice():
                interp.allocate_tensors()
        except Exception as exc:
            raise ModelError(f"{self.source}: cannot allocate at batch {batch} ({exc})") from exc
        sized = _Sized(
            interpreter=interp,
            batch=batch,
            x_index=inputs[meta.x_input]["index"],
            y_index=outputs[meta.y_output]["index"],
            state_in=[inputs[s.input]["index"] for s in meta.state],
            state_out=[outputs[s.output]["index"] for s in meta.state],
        )
        self._sized[batch] = sized
        return sized

    def _check_signature(self, sized: _Sized) -> None:
        interp = sized.interpreter
        details = {d["index"]: d for d in interp.get_input_details() + interp.get_output_details()}
        meta = self.meta
        expected: list[tuple[int, int, str]] = [
            (sized.x_index, meta.input_width, f"x input {meta.x_input!r}"),
            (sized.y_index, meta.n_features, f"y output {meta.y_output!r}"),
        ]
        for s, i_in, i_out in zip(meta.state, sized.state_in, sized.state_out, strict=True):
            expected.append((i_in, s.size, f"state input {s.name!r}"))
            expected.append((i_out, s.size, f"state output {s.name!r}"))
        for index, width, what in expected:
            shape = _shape(details[index])
            if len(shape) != 2 or shape[1] != width:
                raise ModelError(
                    f"{self.source}: metadata does not match the model: {what} has shape "
                    f"{shape}, expected [batch, {width}]"
                )
            if np.dtype(details[index]["dtype"]) != np.float32:
                raise ModelError(f"{self.source}: {what} is {details[index]['dtype']}, not float32")
        bad = forbidden_ops(self.ops())
        if bad:
            raise ModelError(f"{self.source}: model uses unsupported ops {', '.join(bad)}")


def _shape(detail: dict[str, Any]) -> Sequence[int]:
    return [int(v) for v in detail["shape"]]
