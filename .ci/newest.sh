#!/usr/bin/env bash
# The install a user gets today: a fresh venv with every dependency (paho-mqtt, numpy, typer,
# ai-edge-litert, amqtt and the dev tools) upgraded to the newest release pyproject.toml allows,
# then the daemon, MQTT and interpreter tests against it, so that a new paho 2.x (or any other
# release) that breaks us fails here before it fails for users. Runs after scripts/test.sh (which
# installed mosquitto). Not the train/peer extras (desktop tools, tested by the main suite).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
venv=.venv-newest
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

rm -rf "$venv"
"$PYTHON" -m venv "$venv"
"${pip[@]}" install -q --upgrade pip
"${pip[@]}" install -q --upgrade --upgrade-strategy eager -e ".[dev,demo]"
"${pip[@]}" check
echo "newest: installed"
"${pip[@]}" list --format=freeze |
  grep -iE '^(paho-mqtt|numpy|typer|click|ai-edge-litert|amqtt|matplotlib|pytest|hypothesis)=='
echo "newest: releases newer than these (outside our version ranges, if any)"
"${pip[@]}" list --outdated 2>/dev/null || true

# Every skip fails the run (tests/conftest.py) but systemd's and chattr's checks, on a machine
# without them; a missing broker fails up front.
EDGE_LSTM_REQUIRE_ALL=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider \
  -m "not train and not peer" -ra --allow-skip systemd-analyze --allow-skip immutable \
  tests/test_daemon_e2e.py tests/test_daemon_parts.py tests/test_cmd_run.py \
  tests/test_fault_broker.py tests/test_fault_poison.py tests/test_fault_crash.py \
  tests/test_security.py tests/test_status.py tests/test_mqttkit.py \
  tests/test_embedded_broker.py tests/test_demo.py tests/test_service_inprocess.py \
  tests/test_runtime.py tests/test_tflite_ops.py tests/test_forecaster.py
