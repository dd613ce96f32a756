#!/usr/bin/env bash
# The Raspberry Pi install path on emulated aarch64: a 64-bit Debian 13 userland (what Raspberry
# Pi OS is built on) under qemu-user, the wheel installed as a Pi user installs it
# (`pip install edge_lstm-*.whl` in a venv), the runtime/forecaster tests, and a daemon smoke
# test: `edge-lstm run` and `edge-lstm replay` in the emulated userland against a Mosquitto on
# this host, until a warm forecast comes back.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/userland.sh

started=$SECONDS
ci_apt debootstrap qemu-user-static mosquitto mosquitto-clients
# qemu's default CPU has SVE, which no Pi has: emulate the Pi 4's core.
export QEMU_CPU=cortex-a72

registered=""
daemon_pid=""
broker_pid=""
port=""
stop_daemon() {
  [ -n "$daemon_pid" ] || return 0
  kill "$daemon_pid" 2>/dev/null
  # $! is the shell around env/chroot: the emulated daemon itself would outlive it (and keep
  # this script's lock), so end it by its command line, which names this run's port.
  pkill -TERM -f "edge-lstm run --broker 127.0.0.1:$port" 2>/dev/null
  wait "$daemon_pid" 2>/dev/null
  daemon_pid=""
}
cleanup() {
  set +e
  stop_daemon
  if [ -n "$broker_pid" ]; then kill "$broker_pid"; wait "$broker_pid"; fi 2>/dev/null
  ci_leave
  # The handler is machine-wide: leave the machine as it was.
  if [ -n "$registered" ]; then echo -1 >/proc/sys/fs/binfmt_misc/qemu-aarch64; fi
}
trap cleanup EXIT

ensure_binfmt() {
  [ -e /proc/sys/fs/binfmt_misc/register ] ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    # The F flag opens the emulator now, so the userland needs no copy of it.
    cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register
    registered=1
  fi
}

ensure_binfmt # building the userland runs its ldconfig
root="$(ci_userland arm64 trixie python3,python3-venv)"
ci_lock "$root"
ensure_binfmt # a run that held the lock before this one has unregistered it on its way out
wheel="$(ci_wheel "$root.wheel")"
# A Raspberry Pi 4's /proc/cpuinfo: LiteRT reads it to choose its kernels.
cpuinfo="$root.cpuinfo"
for core in 0 1 2 3; do
  printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$core"
  printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n'
  printf 'CPU revision\t: 3\n\n'
done >"$cpuinfo"
printf 'Revision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n' >>"$cpuinfo"
ci_enter "$root" "$cpuinfo"

mkdir -p "$root/tmp/src" "$root/tmp/wheel"
cp "$wheel" "$root/tmp/wheel/"
tar -c pyproject.toml models data tests | tar -x -C "$root/tmp/src"
ci_log "aarch64: $(ci_run "$root" uname -m), $(ci_run "$root" python3 --version)"
t0=$SECONDS
ci_run "$root" sh -ec '
  python3 -m venv /tmp/venv
  /tmp/venv/bin/pip install -q /tmp/wheel/edge_lstm-*.whl
  /tmp/venv/bin/pip install -q pytest hypothesis
  /tmp/venv/bin/edge-lstm version
'
ci_log "aarch64: venv and install $((SECONDS - t0)) s"

t0=$SECONDS
ci_run "$root" sh -c 'cd /tmp/src && EDGE_LSTM_REQUIRE_ALL=1 exec /tmp/venv/bin/python -m pytest \
  -q -p no:cacheprovider tests/test_runtime.py tests/test_forecaster.py tests/test_contract.py tests/test_state.py \
  tests/test_resample.py tests/test_default_model.py'
ci_log "aarch64: runtime/forecaster tests $((SECONDS - t0)) s"

# Daemon smoke test: the broker is the host's (a Pi's broker is native too); the daemon and the
# publisher run emulated.
t0=$SECONDS
port="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$root.mosquitto.conf"
mosquitto -c "$root.mosquitto.conf" >"$root.mosquitto.log" 2>&1 &
broker_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
ci_run "$root" /tmp/venv/bin/edge-lstm run --broker "127.0.0.1:$port" 2>"$root.daemon.log" &
daemon_pid=$!
if ! mosquitto_sub -p "$port" -t edge-lstm/status -C 1 -W 180 | grep -q online; then
  tail -20 "$root.daemon.log" >&2
  echo "aarch64: the daemon did not come online" >&2
  exit 1
fi
# Until the first warm ("ok") forecast: the default model warms up for a week (168 steps), and a
# batch of several steps publishes only its newest forecast, so no fixed count of them will do.
stdbuf -oL mosquitto_sub -p "$port" -t 'edge-lstm/+/forecast' -W 300 >"$root.forecasts" &
sub_pid=$!
ci_run "$root" /tmp/venv/bin/edge-lstm replay --broker "127.0.0.1:$port" --columns greensboro \
  --speed 30 --duration 10
for _ in $(seq 240); do
  grep -q '"status":"ok"' "$root.forecasts" && break
  sleep 0.5
done
kill "$sub_pid" 2>/dev/null || true
wait "$sub_pid" || true
stop_daemon || true
if ! grep -q '"status":"ok"' "$root.forecasts"; then
  tail -20 "$root.daemon.log" >&2
  echo "aarch64: no warm forecast came back ($(wc -l <"$root.forecasts") forecasts)" >&2
  exit 1
fi
ok="$(grep -c '"status":"ok"' "$root.forecasts")"
ci_log "aarch64: daemon smoke test: $ok warm of $(wc -l <"$root.forecasts") forecasts back" \
  "in $((SECONDS - t0)) s; the last: $(tail -1 "$root.forecasts" | cut -c1-200)..."
ci_log "aarch64: whole phase $((SECONDS - started)) s"
