"""Shared fixtures: real recordings from ../shared/fixtures/real and tiny generated datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ckdsnn_events.events.types import make_events

REAL_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real"


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
