"""Keras LSTM/GRU models to single-step TFLite models, with parity proved at every export.

The only package (with ``scripts/``) that imports TensorFlow; import it only where exporting.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..model.features import InputSpec
from ..model.metadata import ModelMeta, Parity, Scaler, StateTensor, Validation, sidecar_path
from .architecture import Architecture, build_step_model, describe, reference_model
from .convert import Converted, convert
from .parity import TOLERANCE, ParityResult, check_covariate_parity, check_parity

__all__ = [
    "TOLERANCE",
    "ExportOptions",
    "ExportResult",
    "export_model",
    "load_keras",
    "quiet_tensorflow",
    "require_keras",
]


@dataclass(frozen=True)
class ExportOptions:
    """What the metadata needs beyond the Keras model itself."""

    step_s: float = 3600.0
    horizon: int = 12
    warmup: int = 24
    feature_names: Sequence[str] | None = None
    scaler: Scaler | None = None
    quantize: str = "none"
    name: str | None = None
    validation: Validation | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    inputs: InputSpec | None = None
    """Lags, calendar and level the model's input row holds (metadata ``inputs``); None: the
    model's input is the observed value alone, as for the usual stateful Keras models."""
    parity_sequences: int = 4
    parity_known_steps: int = 24
    parity_seed: int = 0


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and measured."""

    meta: ModelMeta
    parity: ParityResult
    size_bytes: int
    ops: tuple[str, ...]


def load_keras(path: Path) -> Any:
    """Load a ``.keras`` file for inference (no optimizer); ``ModelError`` if it cannot be."""
    quiet_tensorflow()
    import keras

    if not path.is_file():
        raise ModelError(f"{path}: Keras model file not found")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors, TypeError...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"{path}: cannot load Keras model ({first})") from exc


def export_model(model: Any, output: Path, options: ExportOptions) -> ExportResult:
    """Export ``model`` to ``output`` + sidecar; raise ``ModelError`` if parity fails.

    Nothing is left at ``output`` when the export fails.
    """
    quiet_tensorflow()
    arch = describe(model)
    spec = options.inputs if options.inputs is not None and not options.inputs.is_plain else None
    n_targets = _targets(arch, spec)
    features = _features(options.feature_names, n_targets)
    scaler = options.scaler or Scaler.identity(n_targets)
    if len(scaler.mean) != n_targets:
        raise ModelError(f"scaler has {len(scaler.mean)} features, the model predicts {n_targets}")
    step = build_step_model(arch)
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its SavedModel path
        converted = convert(step, options.quantize)
    meta = _meta(arch, converted, features, scaler, options, output, spec)
    from ..model.runtime import StepModel

    step_model = StepModel(converted.content, meta, backend=None, source=str(output))
    reference = reference_model(model, arch)
    horizon = max(options.horizon, 12)
    if spec is None:
        result = check_parity(
            reference,
            arch,
            step_model,
            quantize=options.quantize,
            sequences=options.parity_sequences,
            known_steps=options.parity_known_steps,
            horizon=horizon,
            seed=options.parity_seed,
        )
    else:
        result = check_covariate_parity(
            reference,
            arch,
            step_model,
            quantize=options.quantize,
            sequences=options.parity_sequences,
            known_steps=options.parity_known_steps + spec.history_len,
            horizon=horizon,
            seed=options.parity_seed,
        )
    if not result.ok:
        raise ModelError(
            f"parity check failed: exported model differs from Keras by {result.max_abs_error:.3g} "
            f"(tolerance {result.tolerance:.3g}, quantize={options.quantize})"
        )
    meta = replace(
        meta,
        parity=Parity(
            max_abs_error=result.max_abs_error,
            tolerance=result.tolerance,
            quantize=options.quantize,
            steps=result.steps,
            sequences=result.sequences,
        ),
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_bytes(converted.content)
    os.replace(tmp, output)
    meta.save(sidecar_path(output))
    return ExportResult(meta, result, len(converted.content), converted.ops)


def _targets(arch: Architecture, spec: InputSpec | None) -> int:
    """F, the values the model predicts per step; checks the input width D against ``spec``."""
    n_targets = arch.n_outputs
    if spec is None:
        if n_targets != arch.n_features:
            raise ModelError(
                f"model predicts {n_targets} values per step but takes {arch.n_features} inputs; "
                "edge-lstm feeds each prediction back as the next input, so they must match, "
                "unless the extra inputs are declared (lags, calendar, level: docs/training.md)"
            )
        return n_targets
    width = spec.width(n_targets)
    if width != arch.n_features:
        raise ModelError(
            f"model takes {arch.n_features} inputs per step, but {n_targets} predicted value(s) "
            f"with lags {list(spec.lags)} and calendar {list(spec.calendar)} make {width} "
            f"(value and each lag per feature, then a sin/cos pair per calendar kind)"
        )
    return n_targets


def _features(names: Sequence[str] | None, n_features: int) -> tuple[str, ...]:
    if names is None:
        return ("value",) if n_features == 1 else tuple(f"f{i}" for i in range(n_features))
    names = tuple(names)
    if len(names) != n_features:
        raise ModelError(f"{len(names)} feature names given, the model takes {n_features}")
    return names


def _meta(
    arch: Architecture,
    converted: Converted,
    features: tuple[str, ...],
    scaler: Scaler,
    options: ExportOptions,
    output: Path,
    spec: InputSpec | None,
) -> ModelMeta:
    import hashlib

    state = tuple(
        StateTensor(name, size, converted.inputs[name], converted.outputs[f"new_{name}"])
        for name, size in arch.state_names()
    )
    info = {
        "ops": list(converted.ops),
        "source_stateful": arch.stateful,
        "source_batch_size": arch.batch_size,
        **dict(options.info),
    }
    try:
        return ModelMeta(
            name=options.name or output.stem,
            tflite_sha256=hashlib.sha256(converted.content).hexdigest(),
            features=features,
            layers=arch.meta_layers(),
            x_input=converted.inputs["x"],
            y_output=converted.outputs["y"],
            state=state,
            step_s=options.step_s,
            horizon=options.horizon,
            warmup=options.warmup,
            scaler=scaler,
            validation=options.validation,
            info=info,
            inputs=spec,
        )
    except ValueError as exc:
        raise ModelError(f"invalid export options: {exc}") from exc


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ start-up notes: they would bury the one line a user reads."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # oneDNN prints a note at import even so; without it rounding differs by ~1e-7, far inside
    # the parity tolerance, and parity is measured on what runs.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def require_keras(what: str) -> None:
    """Check TensorFlow/Keras can be imported; else one ``ModelError`` line naming the extra."""
    quiet_tensorflow()  # before the first TensorFlow import, or its C++ start-up notes show
    try:
        import keras  # noqa: F401
    except ImportError as exc:
        raise ModelError(
            f"{what} needs TensorFlow and Keras, the train extra ({exc.name} is not "
            "installed): pip install 'edge-lstm[train]'"
        ) from None
