"""Dependencies point one way: the pure core imports no paho, no TensorFlow, no interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

PURE = [
    "edge_lstm.model.metadata",
    "edge_lstm.stream.resample",
    "edge_lstm.model.state",
    "edge_lstm.errors",
    "edge_lstm.model.features",
    "edge_lstm.model.calendar",
    "edge_lstm.model.history",
    "edge_lstm.model.covariates",
    "edge_lstm.model.bands",
    "edge_lstm.model.values",
    "edge_lstm.model.scaler",
    "edge_lstm.model.arrays",
    "edge_lstm.stream.timestamps",
    "edge_lstm.stream.address",
    "edge_lstm.daemon.config",
]


def modules_after(statement: str) -> set[str]:
    code = f"{statement}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in out.stdout.split()}


@pytest.mark.parametrize("module", PURE)
def test_pure_core_imports_no_outside_library(module: str) -> None:
    loaded = modules_after(f"import {module}")
    assert not loaded & {"paho", "tensorflow", "ai_edge_litert", "tflite_runtime", "keras"}


def test_forecaster_loads_an_interpreter_only_when_a_model_is_loaded() -> None:
    loaded = modules_after(
        "import edge_lstm, edge_lstm.model.forecaster, edge_lstm.model.baselines"
    )
    assert not loaded & {"paho", "tensorflow", "ai_edge_litert", "tflite_runtime", "keras"}


def test_cli_import_is_light() -> None:
    loaded = modules_after("import edge_lstm.cli.app")
    assert not loaded & {"tensorflow", "keras", "matplotlib", "amqtt"}
