#!/usr/bin/env bash
# Lint, type-check and test (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${HYV_VENV:-.venv}"
"$VENV/bin/ruff" check .
"$VENV/bin/mypy"
"$VENV/bin/python" -m pytest "$@"
