# Sourced by the CI phases that run pytest outside scripts/test.sh.

# ci_pytest LOG ALLOWED CMD...: run CMD (a pytest), its output also to LOG; non-zero when it
# failed or when it skipped a test for a reason that does not match ALLOWED (a regex): a suite
# that skipped what it should have run is not a pass.
ci_pytest() {
  local log="$1" allowed="$2" code
  shift 2
  set +e
  "$@" | tee "$log"
  code=${PIPESTATUS[0]}
  set -e
  if grep -E "^SKIPPED" "$log" | grep -v -E "$allowed" >&2; then
    echo "unexpected skips (above)" >&2
    code=1
  fi
  return "$code"
}
