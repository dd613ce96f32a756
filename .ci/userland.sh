# Shared by .ci/debian13.sh and .ci/aarch64.sh (sourced, not run): build a Debian userland with
# debootstrap once, cache it outside the clone, and run commands in it under chroot.
#
# The cached userland is never changed by a run: everything a run makes (the venv, a copy of the
# tests, temp files) lives on a tmpfs mounted at the userland's /tmp and goes away with it.

# Not EDGE_LSTM_*: the daemon (and so the tests) refuse unknown variables with that prefix.
CI_CACHE="${CI_USERLAND_CACHE:-/var/cache/edge-lstm-ci}"
DEBIAN_MIRROR="${CI_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CI_MOUNTS=()

ci_log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*"; }

ci_apt() {  # ci_apt PACKAGE...: install the Debian packages that are not installed yet
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  ci_log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

ci_wheel() {  # ci_wheel OUTDIR: build the wheel of this clone as a release would, echo its path
  local out="$1"
  rm -rf "$out" && mkdir -p "$out"
  .venv/bin/python -m pip wheel -q --no-deps -w "$out" . >&2
  ls "$out"/edge_lstm-*.whl
}

# ci_userland ARCH SUITE INCLUDE: path of a cached minbase userland with INCLUDE (comma-separated
# packages), built now when the cache has none for exactly these arguments.
ci_userland() {
  local arch="$1" suite="$2" include="$3"
  local key dir build_lock
  key="$(printf '%s %s %s %s' "$arch" "$suite" "$include" "$DEBIAN_MIRROR" | sha256sum | cut -c1-12)"
  dir="$CI_CACHE/$suite-$arch-$key"
  mkdir -p "$CI_CACHE"
  # Two CI runs on one machine: one builds, the other waits and then uses it (called in $(...),
  # so the lock goes with that subshell).
  exec {build_lock}>"$dir.build.lock"
  flock "$build_lock"
  if [ -f "$dir/.edge-lstm-ci-complete" ]; then
    ci_log "userland $suite/$arch: cached at $dir" >&2
    echo "$dir"
    return 0
  fi
  rm -rf "$dir.tmp"
  ci_log "userland $suite/$arch: debootstrap into $dir (first run on this machine)" >&2
  if [ "$arch" = "$(dpkg --print-architecture)" ]; then
    debootstrap --variant=minbase --include="$include" "$suite" "$dir.tmp" "$DEBIAN_MIRROR" \
      >"$CI_CACHE/debootstrap-$suite-$arch.log" 2>&1 || {
      tail -20 "$CI_CACHE/debootstrap-$suite-$arch.log" >&2
      return 1
    }
  else
    # A foreign architecture: the second stage would run every maintainer script under qemu
    # (~5 min). Unpacking the downloaded packages and running ldconfig gives the same files a
    # Python venv needs in seconds; what the skipped scripts would make (CA bundle, hosts) is
    # copied from the host when the userland is entered.
    debootstrap --arch="$arch" --foreign --variant=minbase --include="$include" \
      "$suite" "$dir.tmp" "$DEBIAN_MIRROR" >"$CI_CACHE/debootstrap-$suite-$arch.log" 2>&1 || {
      tail -20 "$CI_CACHE/debootstrap-$suite-$arch.log" >&2
      return 1
    }
    local deb
    for deb in "$dir.tmp"/var/cache/apt/archives/*.deb; do
      dpkg-deb -x "$deb" "$dir.tmp"
    done
    rm -f "$dir.tmp"/var/cache/apt/archives/*.deb
    chroot "$dir.tmp" /sbin/ldconfig
  fi
  touch "$dir.tmp/.edge-lstm-ci-complete"
  mv "$dir.tmp" "$dir"
  ci_log "userland $suite/$arch: built ($(du -sh "$dir" | cut -f1))" >&2
  echo "$dir"
}

ci_lock() {  # ci_lock ROOT: hold ROOT for this script until it exits (call once, before ci_enter)
  # A second CI run on the machine waits here rather than sharing (or unmounting) the first
  # one's /tmp, wheel and logs.
  exec {CI_LOCK_FD}>"$1.lock"
  flock "$CI_LOCK_FD"
}

_ci_mount() {  # _ci_mount TARGET MOUNT-ARGS...: mount and remember it for ci_leave
  [ -e "$1" ] || mkdir -p "$1"
  local target="$1"
  shift
  mount "$@" "$target"
  CI_MOUNTS+=("$target")
}

# ci_enter ROOT [CPUINFO] (the caller traps EXIT to ci_leave): /proc, /dev, a tmpfs /tmp, the host's DNS, CA bundle and a /etc/hosts.
# No /sys: LiteRT reads /sys and /proc/cpuinfo to pick kernels, and under qemu the host's x86
# view of both crashes it. CPUINFO, when given, is bound over /proc/cpuinfo.
ci_enter() {
  local root="$1" cpuinfo="${2:-}" stale
  # a run killed before its cleanup (a CI timeout) leaves its mounts: never stack on them
  for stale in $(awk -v r="$root/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$stale" 2>/dev/null || true
  done
  _ci_mount "$root/proc" -t proc proc
  [ -n "$cpuinfo" ] && _ci_mount "$root/proc/cpuinfo" --bind "$cpuinfo"
  _ci_mount "$root/dev" --rbind /dev
  mount --make-rslave "$root/dev"
  _ci_mount "$root/tmp" -t tmpfs -o size=6g,mode=1777 tmpfs
  # minbase has no /etc/hosts; the host's resolver and CA bundle (the registries may be reached
  # through a TLS proxy whose CA only the host knows)
  printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' >"$root/etc/hosts"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  mkdir -p "$root/etc/ssl/certs"
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
}

ci_leave() {  # unmount in reverse order; safe to call twice
  local i
  for ((i = ${#CI_MOUNTS[@]} - 1; i >= 0; i--)); do
    umount -l "${CI_MOUNTS[$i]}" 2>/dev/null || true
  done
  CI_MOUNTS=()
}

# ci_run ROOT COMMAND...: run COMMAND inside the userland with a clean environment.
ci_run() {
  local root="$1"
  shift
  env -i HOME=/tmp/home PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CACHE_DIR=/var/cache/pip PIP_DEFAULT_TIMEOUT=180 \
    ${QEMU_CPU:+QEMU_CPU=$QEMU_CPU} \
    chroot "$root" "$@"
}
