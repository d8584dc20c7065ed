"""AER-DAT 2.0 reader/writer: real jAER files, the DVS128 address mapping, and every bad form."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from ckdsnn_events.errors import UserError
from ckdsnn_events.events.aedat2 import (
    decode_dvs128,
    encode_dvs128,
    read_aedat2,
    read_aedat2_raw,
    write_aedat2,
    write_aedat2_raw,
)
from ckdsnn_events.events.npz import read_npz
from conftest import REAL_FIXTURES, random_events, real_fixture


def _independent_parse(path):
    """Parse records with struct, line by line, as a second opinion on the numpy reader."""
    data = path.read_bytes()
    pos = 0
    while data[pos : pos + 1] == b"#":
        pos = data.index(b"\n", pos) + 1
    body = data[pos:]
    return [struct.unpack(">II", body[i : i + 8]) for i in range(0, len(body), 8)]


@pytest.mark.parametrize(
    "name, n_events, t_first, t_last",
    [
        ("alex_walking_again.aedat", 19182, 41306606, 48193156),
        ("neal_walking.aedat", 70304, 135707767, 144951371),
    ],
)
def test_real_jaer_dvs128_files(name, n_events, t_first, t_last):
    path = real_fixture(name)
    address, timestamp = read_aedat2_raw(path)
    expected = _independent_parse(path)
    assert len(address) == len(expected) == n_events
    assert [(int(a), int(t)) for a, t in zip(address[:500], timestamp[:500])] == expected[:500]
    events = read_aedat2(path)
    assert len(events) == n_events  # no external events in these recordings
    assert int(events["t"][0]) == t_first and int(events["t"][-1]) == t_last
    assert events["x"].max() <= 127 and events["y"].max() <= 127
    # the documented mapping, applied by hand
    a = address.astype(np.int64)
    np.testing.assert_array_equal(events["x"], 127 - ((a >> 8) & 0x7F))
    np.testing.assert_array_equal(events["y"], 127 - ((a >> 1) & 0x7F))
    np.testing.assert_array_equal(events["p"], 1 - (a & 1))
    assert events.dtype.names == ("t", "x", "y", "p")


def test_real_file_header_only_has_no_events():
    with pytest.raises(UserError, match="no events"):
        read_aedat2(real_fixture("tonic_sample_header_only.aedat"))


def test_write_read_round_trip(tmp_path):
    events = random_events(5000, seed=1)
    path = tmp_path / "r.aedat"
    write_aedat2(path, events)
    back = read_aedat2(path)
    np.testing.assert_array_equal(back, events)
    # jAER-style header: CRLF lines, version first, no date (same events -> same bytes)
    data = path.read_bytes()
    assert data.startswith(b"#!AER-DAT2.0\r\n")
    write_aedat2(tmp_path / "again.aedat", events)
    assert (tmp_path / "again.aedat").read_bytes() == data


def test_lf_and_crlf_headers_and_any_number_of_lines(tmp_path):
    events = random_events(100, seed=2)
    address = encode_dvs128(events["x"], events["y"], events["p"])
    for i, header in enumerate(
        [b"#!AER-DAT2.0\n", b"#!AER-DAT2.0\r\n# one\r\n# two\r\n# three\r\n# four\r\n# five\r\n# six\r\n"]
    ):
        path = tmp_path / f"h{i}.aedat"
        write_aedat2_raw(path, address, events["t"], header)
        np.testing.assert_array_equal(read_aedat2(path), events)


def test_address_mapping_is_spikingjelly_s(tmp_path):
    """An .aedat file and SpikingJelly's .npz conversion of it read back as the same events."""
    rng = np.random.default_rng(3)
    n = 2000
    raw_address = ((rng.integers(0, 128, n) << 8) | (rng.integers(0, 128, n) << 1) | rng.integers(0, 2, n)).astype(np.uint32)
    t = np.sort(rng.integers(0, 10**6, n)).astype(np.uint32)
    write_aedat2_raw(tmp_path / "a.aedat", raw_address, t)
    # SpikingJelly's CIFAR10DVS.load_origin_data: x_mask 0xFE >> 1, y_mask 0x7F00 >> 8, polarity_mask 1,
    # then {'t': t, 'x': 127 - y, 'y': 127 - x, 'p': 1 - p}; saved with np.savez
    sj_x = (raw_address & 0xFE) >> 1
    sj_y = (raw_address & 0x7F00) >> 8
    sj_p = raw_address & 1
    np.savez(tmp_path / "a.npz", t=t, x=127 - sj_y.astype(np.int64), y=127 - sj_x.astype(np.int64), p=1 - sj_p.astype(int))
    np.testing.assert_array_equal(read_aedat2(tmp_path / "a.aedat"), read_npz(tmp_path / "a.npz"))


def test_encode_decode_inverse():
    events = random_events(1000, seed=4)
    x, y, p, keep = decode_dvs128(encode_dvs128(events["x"], events["y"], events["p"]))
    assert keep.all()
    np.testing.assert_array_equal(x, events["x"])
    np.testing.assert_array_equal(y, events["y"])
    np.testing.assert_array_equal(p, events["p"])
    with pytest.raises(ValueError):
        encode_dvs128(np.array([128]), np.array([0]), np.array([1]))


def test_external_events_are_dropped(tmp_path):
    events = random_events(10, seed=5)
    address = encode_dvs128(events["x"], events["y"], events["p"])
    address[3] |= 0x8000
    write_aedat2_raw(tmp_path / "ext.aedat", address, events["t"])
    back = read_aedat2(tmp_path / "ext.aedat")
    np.testing.assert_array_equal(back, np.delete(events, 3))


def test_record_kernel_equals_the_numpy_decoder(tmp_path, monkeypatch):
    """The numba decoder writes raw record bytes; the numpy path (hosts without that byte layout)
    must read every file, real ones included, to the same events, and reject the same ones."""
    events = random_events(5000, seed=6)
    address = encode_dvs128(events["x"], events["y"], events["p"])
    address[[0, 17, 4999]] |= 0x8000  # external events at both ends and inside
    write_aedat2_raw(tmp_path / "ext.aedat", address, events["t"])
    real = [REAL_FIXTURES / name for name in ("alex_walking_again.aedat", "neal_walking.aedat")]
    files = [tmp_path / "ext.aedat"] + [path for path in real if path.is_file()]
    fast = [read_aedat2(p) for p in files]
    import ckdsnn_events.events.aedat2 as aedat2

    monkeypatch.setattr(aedat2, "record_bytes", lambda events: None)
    for path, expected in zip(files, fast):
        np.testing.assert_array_equal(read_aedat2(path), expected)
    (tmp_path / "bad.aedat").write_bytes(b"#!AER-DAT2.0\r\n" + struct.pack(">IIII", 2, 5, 0x10000, 6))
    with pytest.raises(UserError, match="0x00010000 of event 1"):
        read_aedat2(tmp_path / "bad.aedat")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"\x00\x01\x02\x03\x00\x00\x00\x10", "not an AER-DAT file"),
        (b"#!AER-DAT4.0\r\n" + b"\x00" * 16, "AEDAT 4.0 files must carry the .aedat4"),
        (b"#!AER-DAT3.1\r\n" + b"\x00" * 16, "expected '#!AER-DAT2.0'"),
        (b"#!AER-DAT2.0\r\n# header never ends", "truncated"),
        (b"#!AER-DAT2.0\r\n" + b"\x00" * 12, "not a whole number of 8-byte records"),
        (b"#!AER-DAT2.0\r\n" + struct.pack(">II", 0x10000, 5), "bits above 15"),
        (b"#!AER-DAT2.0\r\n" + struct.pack(">IIII", 2, 50, 4, 40), "timestamps decrease at event 1"),
    ],
)
def test_bad_files_give_one_clear_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.aedat"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message) as info:
        read_aedat2(path)
    assert str(path) in str(info.value)


def test_truncated_real_file(tmp_path):
    data = real_fixture("alex_walking_again.aedat").read_bytes()
    path = tmp_path / "cut.aedat"
    path.write_bytes(data[: len(data) - 3])
    with pytest.raises(UserError, match="truncated"):
        read_aedat2(path)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        read_aedat2(tmp_path / "nope.aedat")
