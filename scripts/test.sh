#!/usr/bin/env bash
# Everything CI checks, from a fresh machine: set-up, lint, types, the full test suite in the
# main environment (ai-edge-litert, numpy 2, TensorFlow), and the runtime/forecaster tests again
# under tflite-runtime with numpy<2. Every phase runs even when an earlier one failed (a flaky
# test must not hide the other backend's result); the script fails at the end if any did.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test || exit 1
# Every phase: a skip fails the run unless its reason is allowed with --allow-skip REGEX (see
# tests/conftest.py); a missing broker or TensorFlow fails up front. Both phases here expect none.
export EDGE_LSTM_REQUIRE_ALL=1

failed=()
phase() {
  local name="$1"
  shift
  echo "--- ${name} ---"
  if ! "$@"; then
    failed+=("${name}")
  fi
}

phase "ruff check" .venv/bin/ruff check edge_lstm tests scripts
phase "ruff format" .venv/bin/ruff format --check edge_lstm tests scripts
phase "mypy" .venv/bin/mypy
phase "pytest (ai-edge-litert, numpy 2)" .venv/bin/python -m pytest -q "$@"
phase "pytest (tflite-runtime, numpy<2)" env EDGE_LSTM_BACKEND=tflite_runtime \
  .venv-tflite/bin/python -m pytest -q -p no:cacheprovider \
  tests/test_runtime.py tests/test_forecaster.py tests/test_contract.py tests/test_state.py \
  tests/test_resample.py tests/test_default_model.py

if ((${#failed[@]})); then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "all phases passed"
