#!/usr/bin/env bash
# Set up a development machine (idempotent): system packages, then a virtual environment.
#   scripts/setup.sh            .venv with the demo extra (enough for `edge-lstm demo` and `run`)
#   scripts/setup.sh test       .venv with dev+train+demo, plus .venv-tflite (tflite-runtime, numpy<2)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-demo}"
PYTHON="${PYTHON:-python3}"

apt_install() {
  local missing=()
  for cmd_pkg in "$@"; do
    command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || missing+=("${cmd_pkg##*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]} (apt)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

venv() {  # venv DIR EXTRAS
  [ -x "$1/bin/python" ] || "$PYTHON" -m venv "$1"
  "$1/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$1/bin/python" -m pip install -q --disable-pip-version-check -e ".[$2]"
}

if [ "$mode" = "test" ]; then
  # mosquitto: the real broker the tests start; openssl: test CA for TLS; systemd-analyze: unit checks
  apt_install mosquitto:mosquitto mosquitto_pub:mosquitto-clients openssl:openssl systemd-analyze:systemd
  venv .venv "dev,train,demo,peer"
  # tflite-runtime 2.14 needs numpy<2: it gets its own small environment
  venv .venv-tflite "tflite,dev"
else
  venv .venv "demo"
fi
echo "setup: done ($mode)"
