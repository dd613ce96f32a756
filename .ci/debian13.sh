#!/usr/bin/env bash
# The test suite under Debian 13's Python (3.13, Raspberry Pi OS's today), from the built wheel.
#
# A minbase Debian 13 userland (debootstrap, cached in $CI_USERLAND_CACHE) gets the wheel of this
# clone installed into a venv exactly as a user would (`pip install edge_lstm-*.whl[dev,demo]`),
# then runs the tests from a copy of tests/ next to which there is no edge_lstm/ source: every
# import is the installed package. The userland has its own mosquitto, so the daemon end-to-end
# tests run too. Left out: tests that need TensorFlow (the desktop's `train` extra).
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/userland.sh

started=$SECONDS
ci_apt debootstrap
root="$(ci_userland amd64 trixie python3,python3-venv,mosquitto,mosquitto-clients,openssl)"
ci_lock "$root"
wheel="$(ci_wheel "$root.wheel")"
trap ci_leave EXIT
ci_enter "$root"

mkdir -p "$root/tmp/src" "$root/tmp/wheel"
cp "$wheel" "$root/tmp/wheel/"
tar -c pyproject.toml README.md docs deploy models data scripts tests | tar -x -C "$root/tmp/src"
ci_log "debian13: $(ci_run "$root" python3 --version), installing $(basename "$wheel")"
ci_run "$root" sh -ec '
  python3 -m venv /tmp/venv
  /tmp/venv/bin/pip install -q "$(ls /tmp/wheel/edge_lstm-*.whl)[dev,demo]"
'
ci_log "debian13: pytest (everything but the train and peer extras' tests)"
t0=$SECONDS
code=0
# Not the train (TensorFlow) and peer (statsforecast) extras' tests: desktop tools, not the Pi's.
# Only the TensorFlow, chattr and systemd checks may skip here (no TensorFlow, no
# systemd-analyze in a minbase userland).
# (tests/conftest.py: under EDGE_LSTM_REQUIRE_ALL=1 any other skip fails the run.)
ci_run "$root" sh -c 'cd /tmp/src && EDGE_LSTM_REQUIRE_ALL=1 exec /tmp/venv/bin/python -m pytest \
  -q -p no:cacheprovider -m "not train and not peer" -ra --allow-skip systemd-analyze \
  --allow-skip immutable --allow-skip tensorflow' || code=$?
ci_log "debian13: pytest exit $code in $((SECONDS - t0)) s; whole phase $((SECONDS - started)) s"
exit "$code"
