"""The HDF5 frame store: one file per split, written resumably, read lazily.

File layout (``train.h5`` / ``test.h5``)::

    frames        (N, T, 2, H, W) uint16, one chunk per sample; --compression gzip (shuffle +
                  deflate level 1), lzf (shuffle + lzf) or none
    labels        (N,) int64
    source_files  (N,) utf-8 str, relative to the dataset folder
    n_events      (N,) int64, events in each source recording
    checksums     (N,) uint32, CRC-32 of each sample's chunk as stored (see ``store_check``)
    attrs: config (JSON: the full framing config), fingerprint (of the source files),
           classes (JSON list), skipped (JSON list of {file, error}), tool_version

Writing goes through a progress log beside the store (``.<split>.partial.log``): an append-only
file of finished samples, each already compressed exactly as the HDF5 chunk will hold it and
guarded by a CRC. A kill -9 can at worst tear the last record, which the next run drops; so an
interrupted run resumes where it stopped. When every sample is done, the store is assembled from
the log into a temporary file (compressed chunks are copied, not recompressed) and renamed onto
its final name, so nothing partial ever stands there and a resumed run gives the same bytes as an
uninterrupted one.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from ckdsnn_events import __version__
from ckdsnn_events.atomic import atomic_path
from ckdsnn_events.data.event_datasets import COMPRESSIONS, DEFAULT_COMPRESSION  # noqa: F401  (re-exported)
from ckdsnn_events.data.store_check import CHECKSUMS, chunk_crc, check_chunk, open_store
from ckdsnn_events.errors import UserError

GZIP_LEVEL = 1  # level 1 compresses count frames to within a few % of level 9, several times faster

STATUS_DONE = 1
STATUS_BAD = 2
_RECORD = struct.Struct("<4sIBqII")  # magic, index, status, n_events, payload length, crc32
_MAGIC = b"CKDF"


_LZF_MASK = struct.Struct("<I")  # HDF5 filter mask of an lzf chunk, stored before its bytes in the log
_LZF_SCRATCH: dict[tuple, h5py.Dataset] = {}


def _lzf_scratch(shape: tuple[int, ...]) -> h5py.Dataset:
    """An in-memory one-chunk dataset with HDF5's shuffle + lzf filters, reused per process and shape.

    No Python package writes HDF5's lzf chunks, so h5py's own filter makes them: frames written
    here and read back with ``read_direct_chunk`` are exactly the bytes a store's chunk holds.
    """
    key = (os.getpid(), shape)  # never use a forked parent's HDF5 handles
    if key not in _LZF_SCRATCH:
        f = h5py.File(f"lzf-scratch-{os.getpid()}-{len(_LZF_SCRATCH)}", "w", driver="core", backing_store=False)
        _LZF_SCRATCH[key] = f.create_dataset("frames", shape=shape, dtype=np.uint16, chunks=shape,
                                               compression="lzf", shuffle=True)
    return _LZF_SCRATCH[key]


def encode_chunk(frames: np.ndarray, compression: str = DEFAULT_COMPRESSION) -> bytes:
    """Bytes of one sample's HDF5 chunk, as a worker hands it to the progress log.

    ``gzip``: HDF5's shuffle filter then its deflate filter (a zlib stream). ``lzf``: a 4-byte
    filter mask, then the shuffle + lzf chunk made by h5py's filter. ``none``: the raw frames.
    The store copies these chunks unchanged (no recompression at assembly).
    """
    raw = np.ascontiguousarray(frames)
    if compression == "none":
        return raw.tobytes()
    if compression == "lzf":
        scratch = _lzf_scratch(raw.shape)
        scratch[...] = raw
        mask, chunk = scratch.id.read_direct_chunk((0,) * raw.ndim)
        return _LZF_MASK.pack(mask) + chunk
    shuffled = raw.view(np.uint8).reshape(-1, raw.itemsize).T.tobytes()
    return zlib.compress(shuffled, GZIP_LEVEL)


def decode_chunk(payload: bytes, shape: tuple[int, ...], dtype=np.uint16, compression: str = DEFAULT_COMPRESSION) -> np.ndarray:
    """Inverse of :func:`encode_chunk`."""
    if compression == "none":
        return np.frombuffer(payload, dtype=dtype).reshape(shape).copy()
    if compression == "lzf":
        scratch = _lzf_scratch(tuple(shape))
        (mask,) = _LZF_MASK.unpack_from(payload)
        scratch.id.write_direct_chunk((0,) * len(shape), payload[_LZF_MASK.size:], filter_mask=mask)
        return scratch[...]
    itemsize = np.dtype(dtype).itemsize
    shuffled = np.frombuffer(zlib.decompress(payload), dtype=np.uint8).reshape(itemsize, -1)
    if np.dtype(dtype) == np.dtype("<u2"):  # the frames' case: two contiguous byte planes, 3x faster than .T
        return ((shuffled[1].astype(np.uint16) << 8) | shuffled[0]).reshape(shape)
    return np.ascontiguousarray(shuffled.T).view(dtype).reshape(shape)


@dataclass
class LogRecord:
    index: int
    status: int
    n_events: int
    offset: int  # of the payload in the log file
    length: int


class ProgressLog:
    """Append-only, crash-tolerant log of finished samples (see the module docstring)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: dict[int, LogRecord] = {}
        if self.path.exists():
            self._scan()
        self._file = open(self.path, "ab", buffering=0)

    def _scan(self) -> None:
        valid_end = 0
        with open(self.path, "rb") as f:
            data = f.read()
        pos = 0
        while pos + _RECORD.size <= len(data):
            magic, index, status, n_events, length, crc = _RECORD.unpack_from(data, pos)
            start = pos + _RECORD.size
            payload = data[start : start + length]
            if magic != _MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
                break  # a torn record from a killed run: everything before it is good
            self.records[index] = LogRecord(index, status, n_events, start, length)
            pos = valid_end = start + length
        if valid_end != len(data):
            with open(self.path, "r+b") as f:
                f.truncate(valid_end)

    def append(self, index: int, status: int, n_events: int, payload: bytes) -> None:
        header = _RECORD.pack(_MAGIC, index, status, n_events, len(payload), zlib.crc32(payload))
        offset = self._file.tell() + _RECORD.size
        self._file.write(header + payload)  # one write: a Ctrl-C cannot split it
        self.records[index] = LogRecord(index, status, n_events, offset, len(payload))

    def read_payload(self, index: int) -> bytes:
        rec = self.records[index]
        with open(self.path, "rb") as f:
            f.seek(rec.offset)
            return f.read(rec.length)

    def close(self) -> None:
        self._file.close()


def assemble_store(
    final_path: Path,
    log: ProgressLog,
    indices: Iterable[int],
    labels: np.ndarray,
    source_files: list[str],
    frame_shape: tuple[int, ...],
    attrs: dict,
    compression: str = DEFAULT_COMPRESSION,
) -> int:
    """Write the store for ``indices`` (global sample indices, in order) from ``log``; atomic.

    ``labels`` and ``source_files`` are indexed by global index. Bad samples are left out and
    listed in the ``skipped`` attribute; ``compression`` must be the one the log's payloads were
    encoded with (:func:`encode_chunk`). Returns the number of samples written.
    """
    indices = list(indices)
    good = [i for i in indices if log.records[i].status == STATUS_DONE]
    skipped = [
        {"file": source_files[i], "error": log.read_payload(i).decode("utf-8", errors="replace")}
        for i in indices
        if log.records[i].status == STATUS_BAD
    ]
    with atomic_path(final_path) as tmp:
        with h5py.File(tmp, "w", track_order=True) as f:
            frames = f.create_dataset(
                "frames",
                shape=(len(good), *frame_shape),
                dtype=np.uint16,
                chunks=(1, *frame_shape) if good else None,
                compression=compression if good and compression != "none" else None,
                compression_opts=GZIP_LEVEL if good and compression == "gzip" else None,
                shuffle=bool(good) and compression != "none",
                track_times=False,
            )
            checksums = np.zeros(len(good), dtype=np.uint32)
            with open(log.path, "rb") as src:
                for j, i in enumerate(good):
                    rec = log.records[i]
                    src.seek(rec.offset)
                    payload, mask = src.read(rec.length), 0
                    if compression == "lzf":
                        (mask,) = _LZF_MASK.unpack_from(payload)
                        payload = payload[_LZF_MASK.size:]
                    checksums[j] = chunk_crc(payload)  # of the bytes as stored, which load reads back
                    frames.id.write_direct_chunk((j,) + (0,) * len(frame_shape), payload, filter_mask=mask)
            f.create_dataset(CHECKSUMS, data=checksums, track_times=False)
            f.create_dataset("labels", data=np.asarray(labels, dtype=np.int64)[good], track_times=False)
            f.create_dataset(
                "source_files",
                data=np.asarray([source_files[i] for i in good], dtype=object),
                dtype=h5py.string_dtype("utf-8"),
                track_times=False,
            )
            f.create_dataset(
                "n_events",
                data=np.asarray([log.records[i].n_events for i in good], dtype=np.int64),
                track_times=False,
            )
            for key, value in attrs.items():
                f.attrs[key] = value if isinstance(value, str) else json.dumps(value)
            f.attrs["skipped"] = json.dumps(skipped)
            f.attrs["compression"] = compression
            f.attrs["tool_version"] = __version__
    return len(good)


def read_store_attrs(path: str | os.PathLike) -> dict:
    """The attributes of a store, JSON values decoded, after :func:`store_check.open_store`'s checks."""
    return open_store(path).attrs


class FrameStoreDataset(torch.utils.data.Dataset):
    """A torch Dataset over one store file.

    Each item is ``(frames, label)``: float32 tensor (T, 2, H, W) of event counts and an int. The
    HDF5 file is opened lazily in whichever process reads (DataLoader workers included) and never
    shared across a fork.

    Args:
        path: the store file (``train.h5`` / ``test.h5``).
        indices: optional subset of sample indices (e.g. a validation split carved from train).
        transform: optional callable on the (T, 2, H, W) float tensor (training augmentation).
    """

    def __init__(self, path: str | os.PathLike, indices=None, transform=None):
        self.path = Path(path)
        info = open_store(self.path)  # structure checked once; each sample's checksum as it is read
        self.labels_all, self.frame_shape, self.checksums = info.labels, info.frame_shape, info.checksums
        self.classes = info.classes
        self.config = info.config
        self.indices = np.arange(len(self.labels_all)) if indices is None else np.asarray(indices)
        self.transform = transform
        self._file = None
        self._pid = None

    @property
    def labels(self) -> np.ndarray:
        return self.labels_all[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def _frames(self):
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
            frames = self._file["frames"]
            # chunks as encode_chunk writes them (gzip: shuffle + deflate; none: raw) are decoded by decode_chunk
            self._compression = str(self._file.attrs.get("compression", "gzip"))
            filters = {"gzip": ("gzip", True), "none": (None, False)}.get(self._compression)  # lzf: h5py decodes
            self._own_decoder = (filters == (frames.compression, frames.shuffle) and not frames.fletcher32
                                 and frames.scaleoffset is None and frames.dtype == np.uint16)
        return self._file["frames"]

    def __getitem__(self, item: int):
        index = int(self.indices[item])
        dataset = self._frames()
        mask, payload = check_chunk(dataset, index, self.checksums[index], self.path)
        if mask == 0 and self._own_decoder:  # the checked bytes decoded here: one read, not two
            counts = decode_chunk(payload, self.frame_shape, compression=self._compression)
        else:
            counts = dataset[index]
        frames = torch.from_numpy(counts.astype(np.float32))
        if self.transform is not None:
            frames = self.transform(frames)
        return frames, int(self.labels_all[index])

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state
