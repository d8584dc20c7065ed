"""benchmarks/gpu_check.sh and bench_lif.py where no GPU is: a clear refusal, and the dry run of the LIF bench."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the scripts measure for minutes")


def _run(*cmd: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(list(cmd), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_gpu_check_script_is_valid_bash():
    assert _run("bash", "-n", "benchmarks/gpu_check.sh").returncode == 0


@no_cuda
def test_gpu_check_without_cuda_says_so_and_fails():
    out = _run("bash", "benchmarks/gpu_check.sh")
    assert out.returncode == 1, out.stderr
    assert "no CUDA device" in out.stdout and "nothing was measured" in out.stdout


@no_cuda
def test_lif_bench_dry_run_runs_both_backends():
    pytest.importorskip("triton")
    out = _run(sys.executable, "benchmarks/bench_lif.py", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "DRY RUN" in out.stdout and "triton" in out.stdout and "torch loop" in out.stdout
    assert _run(sys.executable, "benchmarks/bench_lif.py").returncode == 1  # no GPU: no measurement
