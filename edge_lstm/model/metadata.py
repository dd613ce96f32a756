"""The sidecar metadata of an exported single-step model (``NAME.json`` beside ``NAME.tflite``).

Pure: no interpreter, no TensorFlow. ``edge-lstm export`` writes it, the runtime reads it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from .arrays import FloatArray
from .companion import Companion
from .features import PLAIN, InputSpec
from .scaler import Scaler as Scaler  # re-exported: the sidecar's scaler is part of its API

#: Format 2 adds the optional ``inputs`` object (lags, calendar, level); format 1 files load as
#: models whose input is the observed value alone.
FORMAT_VERSION = 2
FORMAT_VERSIONS = (1, 2)
LAYER_KINDS = ("lstm", "gru")
QUANTIZE_MODES = ("none", "float16", "dynamic")
#: Ops that mean a conversion kept TensorFlow-only (Flex, custom) or stateful machinery (a WHILE
#: loop, resource variables) that a builtin-only interpreter cannot run or runs wrongly.
FORBIDDEN_OPS = (
    "FLEX",
    "CUSTOM",
    "WHILE",
    "VAR_HANDLE",
    "READ_VARIABLE",
    "ASSIGN_VARIABLE",
    "CALL_ONCE",
)


@dataclass(frozen=True)
class Layer:
    """One recurrent layer of the original model."""

    kind: str
    units: int


@dataclass(frozen=True)
class StateTensor:
    """One state vector (an LSTM has ``h`` and ``c`` per layer, a GRU only ``h``)."""

    name: str
    size: int
    input: str
    output: str


@dataclass(frozen=True)
class Parity:
    """How closely the exported model reproduced the Keras model at export time."""

    max_abs_error: float
    tolerance: float
    quantize: str = "none"
    steps: int = 0
    sequences: int = 0


@dataclass(frozen=True)
class Validation:
    """Held-out multi-step rollout errors, written by ``scripts/train.py``.

    ``mae`` maps a method (``lstm``, ``naive``, ``seasonal_naive``) to MAE per horizon step, in
    original units, averaged over features. ``residual_q10`` / ``residual_q90`` are per horizon step
    and per feature quantiles of ``actual - forecast`` of the LSTM: the forecast band is
    ``[v + q10, v + q90]``.
    """

    horizon: int
    season: int
    mae: Mapping[str, Sequence[float]]
    residual_q10: Sequence[Sequence[float]] = ()
    residual_q90: Sequence[Sequence[float]] = ()
    rows: int = 0

    def band(self, n_features: int) -> tuple[FloatArray, FloatArray] | None:
        """The (q10, q90) residual quantiles as ``(horizon, F)`` arrays, or None if absent."""
        if not self.residual_q10 or not self.residual_q90:
            return None
        lo = np.asarray(self.residual_q10, dtype=np.float32).reshape(-1, n_features)
        hi = np.asarray(self.residual_q90, dtype=np.float32).reshape(-1, n_features)
        return lo, hi


@dataclass(frozen=True)
class ModelMeta:
    """Everything the runtime needs to know about a ``.tflite`` single-step model."""

    name: str
    tflite_sha256: str
    features: tuple[str, ...]
    layers: tuple[Layer, ...]
    x_input: str
    y_output: str
    state: tuple[StateTensor, ...]
    step_s: float
    horizon: int
    warmup: int
    scaler: Scaler
    parity: Parity | None = None
    validation: Validation | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    inputs: InputSpec | None = None
    """Extra inputs of each step (format 2); None: ``x`` is the observed value alone."""
    companion: Companion | None = None
    """A linear seasonal forecast blended with the LSTM's (format 2, with ``inputs``)."""

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError("features must name at least one feature")
        if len(set(self.features)) != len(self.features):
            raise ValueError("feature names must be unique")
        if len(self.scaler.mean) != len(self.features):
            raise ValueError(
                f"scaler has {len(self.scaler.mean)} features, model has {len(self.features)}"
            )
        if not self.state:
            raise ValueError("state must list at least one tensor")
        if any(s.size <= 0 for s in self.state):
            raise ValueError("state sizes must be > 0")
        if any(layer.kind not in LAYER_KINDS for layer in self.layers):
            raise ValueError(f"layer kinds must be one of {LAYER_KINDS}")
        if not (self.step_s > 0 and math.isfinite(self.step_s)):
            raise ValueError("step_s must be > 0")
        if self.horizon < 1:
            raise ValueError("horizon must be >= 1")
        if self.warmup < 0:
            raise ValueError("warmup must be >= 0")
        if self.companion is not None:
            if self.input_spec.is_plain:
                raise ValueError("companion needs a model with inputs (its history ring)")
            if self.companion.n_features != len(self.features):
                raise ValueError(
                    f"companion has {self.companion.n_features} features, model has "
                    f"{len(self.features)}"
                )

    @property
    def n_features(self) -> int:
        """F, the values observed and predicted per step."""
        return len(self.features)

    @property
    def input_spec(self) -> InputSpec:
        return self.inputs if self.inputs is not None else PLAIN

    @property
    def input_width(self) -> int:
        """D, the width of the model's ``x`` input (F for a model without extra inputs)."""
        return self.input_spec.width(self.n_features)

    @property
    def history_len(self) -> int:
        """Values each sensor's history ring holds: for the inputs and the companion."""
        companion = 0 if self.companion is None else self.companion.history_len
        return max(self.input_spec.history_len, companion)

    @property
    def format_version(self) -> int:
        return 1 if self.inputs is None else 2

    @property
    def warmup_steps(self) -> int:
        """Observed steps before a sensor's forecasts are ``ok``: warm-up and the longest lag."""
        return max(1, self.warmup, self.input_spec.max_lag)

    @property
    def state_size(self) -> int:
        """Width of one sensor's flattened state (all state tensors concatenated)."""
        return sum(s.size for s in self.state)

    def layout_key(self) -> tuple[object, ...]:
        """What must match for saved states to be meaningful under another model file."""
        state = tuple((s.name, s.size) for s in self.state)
        return (self.features, state, self.input_spec, self.history_len)

    def to_json(self) -> str:
        """The sidecar document (format 1, or 2 with ``inputs``), laid out by ``_LAYOUT``."""
        doc: dict[str, Any] = {"format_version": self.format_version}
        for key in _LAYOUT:
            value = getattr(self, key.attr)
            if value is None and key.omit_none:
                continue
            *parents, leaf = key.path
            place = doc
            for parent in parents:
                place = place.setdefault(parent, {})
            place[leaf] = None if value is None else key.write(value)
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "metadata") -> ModelMeta:
        """Parse and validate; any problem is a ``ModelError`` naming ``source``."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        if not isinstance(doc, dict):
            raise ModelError(f"{source}: expected a JSON object")
        version = doc.get("format_version")
        if version not in FORMAT_VERSIONS:
            raise ModelError(
                f"{source}: format_version {version!r} is not supported (expected one of "
                f"{', '.join(map(str, FORMAT_VERSIONS))})"
            )
        for part in ("inputs", "companion"):
            if doc.get(part) is not None and version < 2:
                raise ModelError(
                    f"{source}: {part} needs format_version 2, the file says {version}"
                )
        values: dict[str, Any] = {}
        try:
            for key in _LAYOUT:
                values[key.attr] = key.read(_lookup(doc, key.path, key.required))
            return cls(**values)
        except KeyError as exc:
            raise ModelError(f"{source}: missing key {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{source}: {exc}") from exc

    @classmethod
    def load(cls, path: Path) -> ModelMeta:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelError(
                f"{path}: metadata file not found (edge-lstm export writes it)"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: cannot read metadata ({exc})") from exc
        return cls.from_json(text, source=str(path))

    def save(self, path: Path) -> None:
        path.write_text(self.to_json(), encoding="utf-8")


def _same(value: Any) -> Any:
    return value


def _records(cls: Callable[..., Any], **convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Reader of a list of objects into a tuple of ``cls``, each key through its converter."""

    def read(items: Any) -> tuple[Any, ...]:
        return tuple(cls(**{k: conv(item[k]) for k, conv in convert.items()}) for item in items)

    return read


def _dicts(items: Sequence[Any]) -> list[dict[str, Any]]:
    return [asdict(item) for item in items]


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _scaler(doc: Any) -> Scaler:
    return Scaler(_floats(doc["mean"]), _floats(doc["scale"]))


def _validation_doc(validation: Validation) -> dict[str, Any]:
    doc = asdict(validation)
    doc["mae"] = {k: list(v) for k, v in validation.mae.items()}
    return doc


@dataclass(frozen=True)
class _Key:
    """One entry of the sidecar's layout: where it sits in the document and how it converts."""

    path: tuple[str, ...]
    attr: str
    read: Callable[[Any], Any]
    write: Callable[[Any], Any] = _same
    required: bool = True
    omit_none: bool = False


def _part(name: str, parse: Callable[[Any], Any]) -> _Key:
    """An optional object of format 2 that parses and writes itself (``from_doc``/``to_doc``)."""
    return _Key(
        (name,),
        name,
        lambda d: None if d is None else parse(d),
        lambda part: part.to_doc(),
        required=False,
        omit_none=True,
    )


# The sidecar document, declared once: ``to_json`` writes and ``from_json`` reads these keys in
# this order. Optional parts get None (absent, null or empty) and read it themselves. ``inputs``
# (format 2) is InputSpec's own object: a new input kind is added there, not here.
_LAYOUT = (
    _Key(("name",), "name", str),
    _Key(("tflite_sha256",), "tflite_sha256", str),
    _Key(("features",), "features", lambda v: tuple(str(f) for f in v), list),
    _Key(("layers",), "layers", _records(Layer, kind=str, units=int), _dicts),
    _Key(("tensors", "x"), "x_input", str),
    _Key(("tensors", "y"), "y_output", str),
    _Key(
        ("tensors", "state"),
        "state",
        _records(StateTensor, name=str, size=int, input=str, output=str),
        _dicts,
    ),
    _Key(("step_s",), "step_s", float),
    _Key(("horizon",), "horizon", int),
    _Key(("warmup",), "warmup", int),
    _Key(("scaler",), "scaler", _scaler, lambda s: {"mean": list(s.mean), "scale": list(s.scale)}),
    _Key(("parity",), "parity", lambda d: Parity(**d) if d else None, asdict, required=False),
    _Key(
        ("validation",),
        "validation",
        lambda d: Validation(**d) if d else None,
        _validation_doc,
        required=False,
    ),
    _Key(("info",), "info", lambda d: dict(d or {}), dict, required=False),
    _part("inputs", InputSpec.from_doc),
    _part("companion", Companion.from_doc),
)


def _lookup(doc: Mapping[str, Any], path: tuple[str, ...], required: bool) -> Any:
    """``doc[a][b]``; a missing required key is a ``KeyError`` naming it, optional ones None."""
    place: Any = doc
    for part in path:
        if not required and not isinstance(place, Mapping):
            return None
        place = place[part] if required else place.get(part)
    return place


def forbidden_ops(ops: Iterable[str]) -> list[str]:
    """The ops of ``ops`` that an exported single-step model must not contain."""
    return [op for op in ops if op.upper().startswith(FORBIDDEN_OPS)]


def sidecar_path(model_path: Path) -> Path:
    """``models/x.tflite`` -> ``models/x.json``."""
    return model_path.with_suffix(".json")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
