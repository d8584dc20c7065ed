"""The fuzzers at a small size (``make fuzz`` runs >= 10,000 cases per reader): every mutant of
every target must end in a UserError naming the file or in a success that passes the oracle."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import targets  # noqa: E402
import targets_more  # noqa: E402,F401 - registers store, checkpoint, recipe

CASES = {"aedat": 300, "aedat4": 60, "npz": 300, "store": 60, "checkpoint": 60, "recipe": 200}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzz_small(name, tmp_path):
    if name == "aedat4" and not (targets.REAL / "tonic_sample.aedat4").is_file():
        pytest.skip("the .aedat4 seed (real fixture tonic_sample.aedat4) is not available")
    # seed 1 here, 0 in `make fuzz`: the suite adds cases the full run does not repeat
    result = targets.run_target(name, CASES[name], seed=1, work=tmp_path)
    assert sum(result["counts"][k] for k in targets.FAILURES) == 0, (targets.describe(result), result["failures"])
    assert result["counts"]["clean"] > 0
