#!/usr/bin/env bash
# Set up hyv for development on a machine with no GPU: a virtual environment in .venv with the CPU build of
# torch installed first (an unpinned torch would pull a CUDA build of several GB), then hyv and its dev tools.
#   HYV_VENV            where the environment goes (default .venv)
#   HYV_TORCH_PIP_ARGS  extra pip arguments for torch, e.g. "--index-url <PyTorch's CPU wheel index>" on
#                       machines whose package index has no CPU build of torch 2.13.0
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${HYV_VENV:-.venv}"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install --quiet "torch==2.13.0" ${HYV_TORCH_PIP_ARGS:-}
"$VENV/bin/python" -m pip install --quiet -e ".[dev,ray]"  # ray: the --ray tests start a local cluster
echo "hyv is installed in $VENV: activate it with  source $VENV/bin/activate"
