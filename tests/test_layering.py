"""Dependencies point one way: the pure core imports no paho, no TensorFlow, no interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

PURE = [
    "edge_lstm.metadata",
    "edge_lstm.resample",
    "edge_lstm.state",
    "edge_lstm.errors",
    "edge_lstm.features",
    "edge_lstm.calendar",
    "edge_lstm.history",
    "edge_lstm.covariates",
    "edge_lstm.bands",
    "edge_lstm.values",
    "edge_lstm.scaler",
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
    loaded = modules_after("import edge_lstm, edge_lstm.forecaster, edge_lstm.baselines")
    assert not loaded & {"paho", "tensorflow", "ai_edge_litert", "tflite_runtime", "keras"}


def test_cli_import_is_light() -> None:
    loaded = modules_after("import edge_lstm.cli")
    assert not loaded & {"tensorflow", "keras", "matplotlib", "amqtt"}
