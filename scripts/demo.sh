#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv (once) and run `edge-lstm demo`.
# Arguments pass through and paths in them are the caller's: bash scripts/demo.sh --data my.csv
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
# setup.sh reinstalls every time it runs (~10 s); the install is editable, so only a change of
# pyproject.toml (dependencies) needs it again.
stamp="$repo/.venv/.demo-setup-done"
if [ ! -x "$repo/.venv/bin/edge-lstm" ] || [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ]; then
  bash "$repo/scripts/setup.sh" demo
  touch "$stamp"
fi
exec "$repo/.venv/bin/edge-lstm" demo "$@"
