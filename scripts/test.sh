#!/usr/bin/env bash
# Everything CI checks, from a fresh machine: set-up, lint, types, the full test suite in the
# main environment (ai-edge-litert, numpy 2, TensorFlow), and the runtime/forecaster tests again
# under tflite-runtime with numpy<2.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
export EDGE_LSTM_REQUIRE_ALL=1   # a missing broker or TensorFlow fails the run instead of skipping
.venv/bin/ruff check edge_lstm tests scripts
.venv/bin/ruff format --check edge_lstm tests scripts
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
echo "--- runtime and forecaster tests under tflite-runtime + numpy<2 ---"
EDGE_LSTM_BACKEND=tflite_runtime .venv-tflite/bin/python -m pytest -q -p no:cacheprovider \
  tests/test_runtime.py tests/test_forecaster.py tests/test_contract.py tests/test_state.py \
  tests/test_resample.py tests/test_default_model.py
