"""SpikingJelly .npz reader: round trip and bad forms."""

from __future__ import annotations

import numpy as np
import pytest

from ckdsnn_events.errors import UserError
from ckdsnn_events.events.npz import read_npz, write_npz
from conftest import random_events


def test_round_trip(tmp_path):
    events = random_events(3000, seed=7)
    write_npz(tmp_path / "e.npz", events)
    np.testing.assert_array_equal(read_npz(tmp_path / "e.npz", (128, 128, 2)), events)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"t": [1, 2], "x": [1, 2], "y": [1, 2]}, "missing array"),
        ({"t": [1, 2], "x": [1], "y": [1, 2], "p": [0, 1]}, "differ in length"),
        ({"t": [1, 2], "x": [-1, 2], "y": [1, 2], "p": [0, 1]}, "negative"),
        ({"t": [1, 2], "x": [1, 2], "y": [1, 2], "p": [0, 3]}, "polarity"),
        ({"t": [], "x": [], "y": [], "p": []}, "no events"),
        ({"t": [5, 2], "x": [1, 2], "y": [1, 2], "p": [0, 1]}, "timestamps decrease"),
        ({"t": [1, 2], "x": [1, 200], "y": [1, 2], "p": [0, 1]}, "outside the 128x128 sensor"),
    ],
)
def test_bad_contents(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    with pytest.raises(UserError, match=message) as info:
        read_npz(path, (128, 128, 2))
    assert str(path) in str(info.value)


def test_corrupt_and_truncated_files(tmp_path):
    events = random_events(1000, seed=8)
    write_npz(tmp_path / "ok.npz", events)
    data = (tmp_path / "ok.npz").read_bytes()
    for name, content in (("trunc.npz", data[: len(data) // 2]), ("junk.npz", b"junk" * 10), ("empty.npz", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UserError, match="cannot read the .npz file"):
            read_npz(tmp_path / name)
