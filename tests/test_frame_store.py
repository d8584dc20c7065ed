"""The frame store's pieces: chunk encoding, the crash-tolerant progress log, the Dataset, batching."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from ckdsnn_events.data.augment import RandomFlipShift, hflip, shift
from ckdsnn_events.data.batch import Batch, collate_event_frames, is_constant_in_time
from ckdsnn_events.data.frame_store import (
    DEFAULT_COMPRESSION,
    STATUS_BAD,
    STATUS_DONE,
    FrameStoreDataset,
    ProgressLog,
    assemble_store,
    decode_chunk,
    encode_chunk,
)
from ckdsnn_events.errors import UserError


def test_chunk_encoding_is_hdf5_shuffle_plus_deflate(tmp_path):
    frames = np.random.default_rng(0).integers(0, 300, (2, 3, 2, 5, 5)).astype(np.uint16)
    for i in range(2):
        np.testing.assert_array_equal(decode_chunk(encode_chunk(frames[i], "gzip"), frames.shape[1:],
                                                   compression="gzip"), frames[i])
    with h5py.File(tmp_path / "x.h5", "w") as f:
        ds = f.create_dataset("x", frames.shape, np.uint16, chunks=(1, 3, 2, 5, 5), compression="gzip", shuffle=True)
        for i in range(2):
            ds.id.write_direct_chunk((i, 0, 0, 0, 0), encode_chunk(frames[i], "gzip"))
    with h5py.File(tmp_path / "x.h5", "r") as f:
        np.testing.assert_array_equal(f["x"][:], frames)


def test_progress_log_survives_a_torn_record(tmp_path):
    path = tmp_path / "log"
    log = ProgressLog(path)
    log.append(3, STATUS_DONE, 100, b"abc")
    log.append(1, STATUS_BAD, 0, b"bad file")
    log.close()
    with open(path, "ab") as f:
        f.write(b"CKDF\x05\x00")  # a record cut short by kill -9
    log = ProgressLog(path)
    assert sorted(log.records) == [1, 3]
    assert log.read_payload(3) == b"abc" and log.records[1].status == STATUS_BAD
    log.append(7, STATUS_DONE, 5, b"z")
    log.close()
    assert sorted(ProgressLog(path).records) == [1, 3, 7]


def make_store(tmp_path, n=6, shape=(4, 2, 8, 8)):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 5, (n, *shape)).astype(np.uint16)
    log = ProgressLog(tmp_path / "log")
    for i in range(n):
        log.append(i, STATUS_DONE, 10 * i, encode_chunk(frames[i]))
    path = tmp_path / "train.h5"
    assemble_store(path, log, range(n), np.arange(n) % 3, [f"c/{i}.aedat" for i in range(n)], shape,
                   {"config": {"timesteps": 4}, "fingerprint": "f", "classes": ["a", "b", "c"]})
    log.close()
    return path, frames


def test_store_dataset_and_time_major_batches(tmp_path):
    path, frames = make_store(tmp_path)
    ds = FrameStoreDataset(path)
    assert len(ds) == 6 and ds.classes == ["a", "b", "c"] and ds.config == {"timesteps": 4}
    x, y = ds[4]
    assert x.dtype == torch.float32 and x.shape == (4, 2, 8, 8) and y == 1
    np.testing.assert_array_equal(x.numpy(), frames[4])
    with h5py.File(path) as f:
        assert f["frames"].chunks == (1, 4, 2, 8, 8)
        assert f["frames"].compression == (None if DEFAULT_COMPRESSION == "none" else DEFAULT_COMPRESSION)
        assert list(f["source_files"].asstr()[:2]) == ["c/0.aedat", "c/1.aedat"]
        assert list(f["n_events"][:3]) == [0, 10, 20]
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate_event_frames)
    batches = list(loader)
    assert all(isinstance(b, Batch) for b in batches)
    first = batches[0]
    assert first.inputs.shape == (4, 3, 2, 8, 8)
    torch.testing.assert_close(first.teacher_inputs, first.inputs.sum(0))
    torch.testing.assert_close(first.inputs[:, 1], torch.from_numpy(frames[1].astype(np.float32)))
    assert first.labels.tolist() == [0, 1, 2]
    subset = FrameStoreDataset(path, indices=[5, 0])
    assert len(subset) == 2 and subset.labels.tolist() == [2, 0]


def test_store_dataset_bad_paths(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        FrameStoreDataset(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(UserError, match="not a readable frame store"):
        FrameStoreDataset(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(UserError, match="not a frame store"):
        FrameStoreDataset(tmp_path / "other.h5")


def test_flip_and_shift():
    frames = torch.arange(2 * 1 * 3 * 4, dtype=torch.float32).reshape(2, 1, 3, 4)
    torch.testing.assert_close(hflip(frames)[..., 0], frames[..., -1])
    moved = shift(frames, dx=1, dy=-1)
    torch.testing.assert_close(moved[..., :2, 1:], frames[..., 1:, :3])
    assert moved[..., :, 0].abs().sum() == 0 and moved[..., -1, :].abs().sum() == 0
    assert shift(frames, 5, 0).abs().sum() == 0
    torch.manual_seed(0)
    augment = RandomFlipShift(flip_p=0.5, max_shift=2)
    out = augment(frames)
    assert out.shape == frames.shape
    assert out.sum() <= frames.sum()
    # every time step moves the same way
    ones = torch.ones(3, 2, 6, 6)
    moved = RandomFlipShift(flip_p=0.0, max_shift=3)(ones)
    assert all(torch.equal(moved[0], moved[t]) for t in range(3))


def test_constant_in_time_detection():
    image = torch.rand(2, 3, 4, 4)
    assert is_constant_in_time(image.unsqueeze(0).expand(5, -1, -1, -1, -1))
    assert not is_constant_in_time(image.unsqueeze(0).repeat(5, 1, 1, 1, 1))
    batch = Batch(image.unsqueeze(0).expand(5, -1, -1, -1, -1), image, torch.zeros(2, dtype=torch.long))
    assert is_constant_in_time(batch.to("cpu").inputs)


@pytest.mark.parametrize("compression", ["gzip", "lzf", "none"])
def test_each_compression_round_trips_and_is_what_h5py_reads(tmp_path, compression):
    rng = np.random.default_rng(3)
    frames = rng.poisson(0.7, (4, 3, 2, 6, 5)).astype(np.uint16)
    frames[1] = 0
    frames[2] = rng.integers(0, 65535, frames.shape[1:])  # incompressible: lzf may skip its filter
    shape = frames.shape[1:]
    log = ProgressLog(tmp_path / "log")
    for i in range(len(frames)):
        payload = encode_chunk(frames[i], compression)
        np.testing.assert_array_equal(decode_chunk(payload, shape, compression=compression), frames[i])
        log.append(i, STATUS_DONE, 1, payload)
    path = tmp_path / f"{compression}.h5"
    assemble_store(path, log, range(len(frames)), np.arange(len(frames)), [f"{i}" for i in range(len(frames))],
                   shape, {"config": {"compression": compression}}, compression)
    log.close()
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["frames"][:], frames)
        assert f["frames"].compression == (None if compression == "none" else compression)
        assert f.attrs["compression"] == compression
