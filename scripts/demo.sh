#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv (idempotent) and run `edge-lstm demo`.
# Arguments pass through: bash scripts/demo.sh --duration 20 --plot demo.png
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo
exec .venv/bin/edge-lstm demo "$@"
