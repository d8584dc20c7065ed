"""Shared fixtures: real recordings from ../shared/fixtures/real and tiny generated datasets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ckdsnn_events.events.types import make_events

# CKDSNN_REAL_FIXTURES points elsewhere (a git worktree sits one level deeper than the checkout)
REAL_FIXTURES = Path(os.environ.get("CKDSNN_REAL_FIXTURES", Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real"))


def real_fixture(name: str) -> Path:
    """Path of a real recording in ../shared/fixtures/real; skips the test when it is absent."""
    path = REAL_FIXTURES / name
    if not path.is_file():
        pytest.skip(f"real fixture {name} not available (looked in {REAL_FIXTURES})")
    return path


def random_events(n: int, seed: int = 0, width: int = 128, height: int = 128, t_max: int = 10**6) -> np.ndarray:
    """``n`` events with sorted random timestamps, uniform pixels and polarities."""
    rng = np.random.default_rng(seed)
    return make_events(
        np.sort(rng.integers(0, t_max, n)),
        rng.integers(0, width, n),
        rng.integers(0, height, n),
        rng.integers(0, 2, n),
    )


@pytest.fixture(scope="session")
def digits_dvs_root(tmp_path_factory) -> Path:
    """The embedded digits-dvs dataset at 3 recordings per class (30 .aedat files)."""
    from ckdsnn_events.events.simulate import SimulatorConfig
    from ckdsnn_events.pipelines.simulate import SimulateJob, run_simulate

    root = tmp_path_factory.mktemp("digits-dvs")
    run_simulate(SimulateJob(out=str(root), limit=3, workers=0), SimulatorConfig(), progress=False)
    return root


# --- tiny training runs ----------------------------------------------------------------------------

# A resnet20 of width 8 on 16x16 frames, T=3: a whole teacher + student run takes seconds on 2 cores.
TINY_TRAINING = {
    "data.workers": 0, "data.batch_size": 8, "data.val_fraction": 0.34, "device": "cpu",
    "model.teacher_width": 8, "model.student_width": 8,
    "optim.epochs": 2, "optim.warmup_epochs": 0, "optim.lr": 0.05,
    "teacher_optim.epochs": 1, "teacher_optim.warmup_epochs": 0, "teacher_optim.lr": 0.05,
}


def tiny_config(frames_root, runs_root, **options):
    """The digits-dvs recipe shrunk to TINY_TRAINING (plus ``options``, dotted keys as strings)."""
    from ckdsnn_events.pipelines.train import resolve_config

    merged = {**TINY_TRAINING, "data.root": str(frames_root), "runs_root": str(runs_root)}
    merged.update({k.replace("__", "."): v for k, v in options.items()})
    return resolve_config("digits-dvs", options=merged)


@pytest.fixture(scope="session")
def tiny_frames(digits_dvs_root, tmp_path_factory) -> Path:
    """Frame stores of the tiny digits-dvs set: T=3, 16x16 (20 train / 10 test samples)."""
    from ckdsnn_events.pipelines.preprocess import PreprocessConfig, run_preprocess

    out = tmp_path_factory.mktemp("digits-dvs-frames")
    run_preprocess(PreprocessConfig(dataset="digits-dvs", root=str(digits_dvs_root), out=str(out), timesteps=3,
                                    size=16, workers=0), progress=False)
    return out


@pytest.fixture(scope="session")
def trained_student(tiny_frames, tmp_path_factory) -> dict:
    """One distillation run (teacher trained and cached on the way): run_distill's result."""
    from ckdsnn_events.pipelines.train import run_distill

    runs = tmp_path_factory.mktemp("runs")
    config = tiny_config(tiny_frames, runs)
    return run_distill(config, progress=False, run_dir=runs / "student")


def assert_user_error(result, *fragments: str) -> None:
    """A CliRunner result that ended in one ``Error:`` message (exit 2, no traceback) naming ``fragments``."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Error:" in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
