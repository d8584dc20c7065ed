"""AEDAT 4.0 through tonic's reader: real DV files, validation and bad forms."""

from __future__ import annotations

import numpy as np
import pytest

from ckdsnn_events.errors import UserError
from ckdsnn_events.events.aedat4 import aedat4_sensor_size, read_aedat4
from ckdsnn_events.events.types import EVENT_DTYPE
from conftest import real_fixture


def test_real_file_equals_tonic():
    import tonic.io

    path = real_fixture("tonic_sample.aedat4")
    events = read_aedat4(path)
    reference = tonic.io.read_aedat4(str(path))
    assert events.dtype == EVENT_DTYPE
    assert len(events) == len(reference) == 111954
    for ours, theirs in (("t", "t"), ("x", "x"), ("y", "y"), ("p", "on")):
        np.testing.assert_array_equal(events[ours], reference[theirs])
    assert aedat4_sensor_size(path) == (320, 240, 2)


def test_real_davis_file_skips_other_streams():
    path = real_fixture("davis.aedat4")
    events = read_aedat4(path)
    assert len(events) == 117667
    assert events["x"].max() < 346 and events["y"].max() < 260


def test_coordinates_outside_the_dataset_sensor(tmp_path):
    path = real_fixture("tonic_sample.aedat4")
    with pytest.raises(UserError, match="outside the 128x128 sensor"):
        read_aedat4(path, sensor_size=(128, 128, 2))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda data: b"", "empty"),
        (lambda data: b"#!AER-DAT2.0\r\n" + b"\x00" * 64, "not an AEDAT 4.0 file"),
        (lambda data: data[:5000], "cannot decode"),
        (lambda data: data[:20], "cannot decode"),
    ],
)
def test_bad_files(tmp_path, make, message):
    data = real_fixture("tonic_sample.aedat4").read_bytes()
    path = tmp_path / "bad.aedat4"
    path.write_bytes(make(data))
    with pytest.raises(UserError, match=message) as info:
        read_aedat4(path, sensor_size=(320, 240, 2))
    assert str(path) in str(info.value)
