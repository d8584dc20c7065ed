#!/usr/bin/env bash
# One GPU check of the CUDA path (see benchmarks/gpu_check.py for what it measures), one table.
# Needs only `make install`. On a machine without CUDA it prints "no CUDA device" and exits 1
# (nothing measured must not read as a pass); --dry-run checks the script itself on the CPU.
#
#   benchmarks/gpu_check.sh              # one CUDA GPU: about 8 minutes at most (not run on a GPU yet)
#   benchmarks/gpu_check.sh --dry-run    # CPU, toy sizes, numbers mean nothing
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning}"
exec timeout 480 "$PY" benchmarks/gpu_check.py "$@"
