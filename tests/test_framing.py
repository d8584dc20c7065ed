"""Numba framing against tonic.transforms.ToFrame on random and real events, and our own rules."""

from __future__ import annotations

import numpy as np
import pytest
import tonic.transforms as tt

from ckdsnn_events.events.aedat2 import read_aedat2
from ckdsnn_events.events.aedat4 import read_aedat4
from ckdsnn_events.events.framing import bin_boundaries, to_count_frames, to_count_frames_batch
from ckdsnn_events.events.transforms import ToCountFrames
from ckdsnn_events.events.types import EVENT_DTYPE, make_events
from conftest import random_events, real_fixture


def tonic_frames(events, sensor_size, size, **to_frame):
    """tonic's Downsample + ToFrame, the reference our kernel must equal."""
    height, width = size
    transform = tt.Compose(
        [
            tt.Downsample(spatial_factor=(width / sensor_size[0], height / sensor_size[1])),
            tt.ToFrame(sensor_size=(width, height, 2), **to_frame),
        ]
    )
    return transform(events.copy())


@pytest.mark.parametrize("size", [(48, 48), (128, 128), (32, 32)])
@pytest.mark.parametrize("timesteps", [1, 10, 16])
def test_count_bins_equal_tonic_when_n_divisible(size, timesteps):
    events = random_events(timesteps * 1234, seed=timesteps)
    ours = to_count_frames(events, (128, 128, 2), size, timesteps, "count")
    np.testing.assert_array_equal(ours, tonic_frames(events, (128, 128, 2), size, n_event_bins=timesteps))
    assert ours.dtype == np.uint16 and ours.shape == (timesteps, 2, *size)


def test_count_bins_on_real_dvs128_recording():
    events = read_aedat2(real_fixture("alex_walking_again.aedat"))
    n = len(events) - len(events) % 10
    ours = to_count_frames(events[:n], (128, 128, 2), (48, 48), 10, "count")
    np.testing.assert_array_equal(ours, tonic_frames(events[:n], (128, 128, 2), (48, 48), n_event_bins=10))


def test_non_square_real_sensor_equals_tonic():
    events = read_aedat4(real_fixture("tonic_sample.aedat4"))  # 320 x 240
    n = len(events) - len(events) % 8
    ours = to_count_frames(events[:n], (320, 240, 2), (60, 80), 8, "count")
    np.testing.assert_array_equal(ours, tonic_frames(events[:n], (320, 240, 2), (60, 80), n_event_bins=8))


def test_count_bins_use_every_event_and_spread_the_remainder():
    """Our rule where tonic drops N % T events: bin b holds events floor(bN/T) .. floor((b+1)N/T)-1."""
    events = random_events(1003, seed=11)
    frames = to_count_frames(events, (128, 128, 2), (16, 16), 10, "count")
    assert frames.sum() == 1003
    per_bin = frames.reshape(10, -1).sum(1)
    np.testing.assert_array_equal(per_bin, np.diff(np.arange(11) * 1003 // 10))
    expected = np.zeros_like(frames, dtype=np.int64)
    bins = np.searchsorted(np.arange(11) * 1003 // 10, np.arange(1003), side="right") - 1
    np.add.at(expected, (bins, events["p"].astype(int), events["y"] * 16 // 128, events["x"] * 16 // 128), 1)
    np.testing.assert_array_equal(frames, expected)
    # tonic agrees on the first N // T events of every bin it keeps
    reference = tonic_frames(events, (128, 128, 2), (16, 16), n_event_bins=10)
    assert reference.sum() == 1000


def test_time_bins_equal_tonic_plus_the_events_tonic_drops():
    events = random_events(5000, seed=12, t_max=10**6)
    events["t"] -= events["t"][0]
    events = events[events["t"] <= 999_990]
    events["t"][-1] = 999_990  # duration divisible by T: tonic's windows are then exactly D / T
    ours = to_count_frames(events, (128, 128, 2), (48, 48), 10, "time")
    reference = tonic_frames(events, (128, 128, 2), (48, 48), n_time_bins=10).astype(np.int64)
    last = events[events["t"] == events["t"][-1]]  # tonic drops t >= t0 + T * (D // T)
    np.add.at(reference, (9, last["p"].astype(int), last["y"] * 48 // 128, last["x"] * 48 // 128), 1)
    np.testing.assert_array_equal(ours, reference)
    assert ours.sum() == len(events)


def test_time_bins_rule_when_duration_not_divisible():
    events = random_events(3000, seed=13, t_max=777_777)
    t = events["t"].astype(np.int64)
    duration = t[-1] - t[0]
    frames = to_count_frames(events, (128, 128, 2), (8, 8), 7, "time")
    bins = np.minimum(6, (t - t[0]) * 7 // duration)
    expected = np.zeros_like(frames, dtype=np.int64)
    np.add.at(expected, (bins, events["p"].astype(int), events["y"] * 8 // 128, events["x"] * 8 // 128), 1)
    np.testing.assert_array_equal(frames, expected)


def test_fixed_windows_equal_tonic_time_window():
    events = random_events(4000, seed=14, t_max=400_000)
    t0 = int(events["t"][0])
    ours = to_count_frames(events, (128, 128, 2), (48, 48), 5, "window", window_us=30_000)
    reference = tonic_frames(
        events, (128, 128, 2), (48, 48), time_window=30_000, start_time=t0, end_time=t0 + 5 * 30_000
    )
    np.testing.assert_array_equal(ours, reference)
    # a recording shorter than T windows ends in empty frames
    short = to_count_frames(events, (128, 128, 2), (48, 48), 20, "window", window_us=30_000)
    assert short[14:].sum() == 0 and short.sum() == len(events)


def test_batched_equals_single_on_any_thread_count():
    recordings = [random_events(n, seed=n) for n in (10, 999, 5000, 0, 77)]
    single = np.stack([to_count_frames(r, (128, 128, 2), (48, 48), 10) for r in recordings])
    for threads in (1, 2):
        np.testing.assert_array_equal(to_count_frames_batch(recordings, num_threads=threads), single)
    offsets = np.cumsum([0] + [len(r) for r in recordings])
    np.testing.assert_array_equal(
        to_count_frames_batch(np.concatenate(recordings), offsets, bins="time"),
        np.stack([to_count_frames(r, bins="time") for r in recordings]),
    )


def test_counts_saturate_at_uint16_max():
    n = 70_000
    events = make_events(np.arange(n), np.full(n, 5), np.full(n, 6), np.ones(n))
    frames = to_count_frames(events, (128, 128, 2), (128, 128), 1)
    assert frames[0, 1, 6, 5] == 65535 and frames.sum() == 65535


def test_events_outside_the_sensor_raise():
    events = random_events(100, seed=15, width=200)
    with pytest.raises(ValueError, match="sensor size"):
        to_count_frames(events, (128, 128, 2))
    with pytest.raises(ValueError, match="sensor size"):
        to_count_frames_batch([events], sensor_size=(128, 128, 2))


def _as_fields(events: np.ndarray, x_dtype=np.int16) -> np.ndarray:
    """The same events in tonic's field order and dtypes: the kernel's x/y/p (fallback) path."""
    other = np.empty(len(events), dtype=[("x", x_dtype), ("y", x_dtype), ("t", np.int64), ("p", bool)])
    for k in "xytp":
        other[k] = events[k]
    return other


def test_raw_byte_and_field_paths_agree_with_a_plain_numpy_count():
    events = random_events(10_003, seed=21, width=346, height=260)  # DAVIS346: not powers of two
    starts = bin_boundaries(events["t"], 7)
    expected = np.zeros((7, 2, 30, 40), dtype=np.uint16)
    b = np.searchsorted(starts, np.arange(len(events)), side="right") - 1
    np.add.at(expected, (b, events["p"].astype(int), events["y"] * 30 // 260, events["x"] * 40 // 346), 1)
    strided = np.zeros(2 * len(events), dtype=events.dtype)
    strided[::2] = events  # a non-contiguous view of the same events takes the x/y/p path
    for form in (events, _as_fields(events), _as_fields(events, np.int64), strided[::2]):
        np.testing.assert_array_equal(to_count_frames(form, (346, 260, 2), (30, 40), 7), expected)
        np.testing.assert_array_equal(to_count_frames_batch([form], sensor_size=(346, 260, 2), size=(30, 40), timesteps=7)[0], expected)


@pytest.mark.parametrize(
    "field, value",
    [("x", 346), ("x", 511), ("y", 260), ("y", 65535), ("x", 1 << 16), ("x", -1), ("x", 1 << 40), ("p", 2)],
)
def test_every_off_sensor_event_is_caught_on_both_paths(field, value):
    # 346 and 511 share the sensor's 9 bits, 65535 is the largest uint16, 2**16, -1 and 2**40 only
    # fit wider or signed fields, and p = 2 can only come from raw bytes or integer fields
    events = random_events(1000, seed=22, width=346, height=260)
    wide = _as_fields(events, np.int64)
    wide["p"] = events["p"]
    forms = [wide]
    if field in ("x", "y") and -(1 << 15) <= value < 1 << 15:
        forms.append(_as_fields(events))  # int16 fields, as tonic stores them
    if field in ("x", "y") and 0 <= value < 1 << 16:
        forms.append(events.copy())
    for form in forms:
        if field == "p":
            form = np.empty(len(events), dtype=[("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.uint8)])
            for k in "xytp":
                form[k] = events[k]
        form[field][617] = value
        with pytest.raises(ValueError, match="sensor size|polarity"):
            to_count_frames(form, (346, 260, 2), (30, 40), 5)
    raw = events.copy()
    raw.view(np.uint8).reshape(-1, EVENT_DTYPE.itemsize)[400, EVENT_DTYPE.fields["p"][1]] = 2  # a bool byte of 2
    with pytest.raises(ValueError, match="sensor size"):
        to_count_frames(raw, (346, 260, 2), (30, 40), 5)


def test_other_field_dtypes_and_empty_input():
    events = random_events(1000, seed=16)
    other = np.empty(len(events), dtype=[("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])
    for k in "xytp":
        other[k] = events[k]
    np.testing.assert_array_equal(to_count_frames(other), to_count_frames(events))
    empty = events[:0]
    for bins in ("count", "time"):
        assert to_count_frames(empty, bins=bins).sum() == 0


def test_bin_boundaries_cover_all_events():
    t = np.sort(np.random.default_rng(0).integers(0, 1000, 101)).astype(np.uint64)
    for bins in ("count", "time"):
        b = bin_boundaries(t, 7, bins)
        assert b[0] == 0 and b[-1] == 101 and (np.diff(b) >= 0).all()
    same = np.full(10, 5, dtype=np.uint64)
    assert list(bin_boundaries(same, 3, "time")) == [0, 10, 10, 10]


def test_transform_inside_tonic_compose():
    events = random_events(2000, seed=17)
    transform = tt.Compose([ToCountFrames(sensor_size=(128, 128, 2), size=(48, 48), timesteps=10)])
    np.testing.assert_array_equal(transform(events), tonic_frames(events, (128, 128, 2), (48, 48), n_event_bins=10))


@pytest.mark.parametrize(
    "kwargs", [{"timesteps": 0}, {"size": (0, 48)}, {"bins": "nope"}, {"bins": "window"}]
)
def test_transform_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        ToCountFrames(**kwargs)


def test_offset_tables_reject_sizes_the_kernel_cannot_index():
    from ckdsnn_events.events.framing import offset_tables

    with pytest.raises(ValueError, match="65536 pixels"):
        offset_tables((70_000, 128), (48, 48))
    with pytest.raises(ValueError, match="too large"):
        offset_tables((128, 128), (50_000, 50_000))
    x_table, y_table = offset_tables((346, 260), (30, 40))
    assert x_table[345] == 345 * 40 // 346 and x_table[346] >= 1 << 32
    assert y_table[(1 << 16) | 259] == 30 * 40 + (259 * 30 // 260) * 40 and y_table[260] >= 1 << 32
