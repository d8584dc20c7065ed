"""Checks of a frame store: its structure when it is opened, every sample's checksum when asked.

Each store holds ``checksums`` (N,) uint32: the CRC-32 of every sample's chunk exactly as stored
(compressed). :func:`open_store` checks the structure (datasets present with the right shapes
and dtypes, labels in range and as many as the frames, config JSON valid) and is what every
reader of a store calls first; :func:`bad_samples` reads every chunk's raw bytes and compares its
CRC (``preprocess`` does it before calling a store "up to date", ``ckd-events verify`` on demand);
:func:`check_chunk` checks one sample as it is loaded. A bit flip, a swapped or a truncated chunk
is found without decompressing anything (cost: ``benchmarks/bench_store_checksum.py``).
"""

from __future__ import annotations

import json
import os
import pickle
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ckdsnn_events.errors import UserError
from ckdsnn_events.events.isolated import IsolatedWorker

CHECKSUMS = "checksums"
# what h5py raises on a damaged file, dataset or attribute
H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError, AttributeError, IndexError)
REBUILD_HINT = ("Rebuild it: ckd-events verify STORE --rebuild (or the preprocess command that made it, "
                "with --overwrite).")


@dataclass
class StoreInfo:
    """What :func:`open_store` found: validated, ready to use."""

    path: Path
    n: int
    frame_shape: tuple[int, ...]
    labels: np.ndarray
    checksums: np.ndarray
    attrs: dict = field(default_factory=dict)

    @property
    def classes(self) -> list:
        return self.attrs.get("classes", [])

    @property
    def config(self) -> dict:
        return self.attrs.get("config", {})


def _bad(path, what: str) -> UserError:
    return UserError(f"{path}: the frame store is damaged ({what}). {REBUILD_HINT}")


def _attrs(path: Path, raw: dict) -> dict:
    out = {}
    for key, value in raw.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if key in ("fingerprint", "tool_version", "source_root", "split_protocol", "compression"):  # plain text
            out[key] = str(value)
            continue
        try:
            out[key] = json.loads(value)
        except (TypeError, ValueError):
            raise _bad(path, f"attribute '{key}' is not valid JSON") from None
    for key, kind in (("config", dict), ("classes", list), ("skipped", list)):
        if key in out and not isinstance(out[key], kind):
            raise _bad(path, f"attribute '{key}' is a {type(out[key]).__name__}, not a {kind.__name__}")
    return out


def open_store(path: str | os.PathLike) -> StoreInfo:
    """Open a store and check its structure; return what a reader needs.

    The checks run in a helper process (:class:`IsolatedWorker`): HDF5 can loop forever on a file
    whose metadata is damaged (found by the fuzzer), which a timeout there turns into an error.

    Raises:
        UserError: naming the file: missing, unreadable (truncated, not HDF5), not a frame store
        (datasets missing), or damaged (shapes, dtypes, labels out of range, bad JSON attributes).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"frame store '{path}' does not exist. Create it with: ckd-events preprocess --dataset ... --out DIR")
    return pickle.loads(_CHECKER.call(str(path), lambda how: _bad(path, f"HDF5 fails on it: {how}")))


def _open_store_here(path: Path) -> StoreInfo:
    try:
        with h5py.File(path, "r") as f:
            attrs = _attrs(path, dict(f.attrs))
            missing = [k for k in ("frames", "labels", CHECKSUMS) if k not in f]
            if missing:
                what = "not a frame store" if "frames" in missing and "labels" in missing else "damaged"
                raise UserError(f"{path}: {what} (missing {', '.join(missing)}). {REBUILD_HINT}")
            frames, labels, checksums = f["frames"], f["labels"][:], f[CHECKSUMS][:]
            shape, dtype, chunks = frames.shape, frames.dtype, frames.chunks
    except UserError:
        raise
    except H5_ERRORS as err:
        raise UserError(f"{path}: not a readable frame store ({str(err)[:200]}). It is truncated or not "
                        f"HDF5. {REBUILD_HINT}") from None
    n = shape[0] if shape else 0
    if len(shape) != 5 or dtype != np.uint16 or (n and chunks != (1, *shape[1:])):
        raise _bad(path, f"frames are {shape} {dtype} in chunks {chunks}, not (N, T, 2, H, W) uint16, one chunk per sample")
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise _bad(path, f"{labels.shape[0] if labels.ndim else 0} labels of dtype {labels.dtype} for {n} samples")
    if checksums.shape != (n,) or checksums.dtype != np.uint32:
        raise _bad(path, f"{checksums.shape} checksums of dtype {checksums.dtype} for {n} samples")
    classes = attrs.get("classes")
    if n and classes is not None and (labels.min() < 0 or labels.max() >= len(classes)):
        raise _bad(path, f"labels reach {labels.min()}..{labels.max()}, the store has {len(classes)} classes")
    config = attrs.get("config", {})
    expected = [config.get("timesteps"), 2, *(config.get("size") or [None, None])]
    if any(e is not None and e != s for e, s in zip(expected, shape[1:])):
        raise _bad(path, f"frames of {shape[1:]} where its config says T={config.get('timesteps')}, size {config.get('size')}")
    return StoreInfo(path, n, tuple(shape[1:]), labels.astype(np.int64), checksums, attrs)


_CHECKER = IsolatedWorker(lambda path: pickle.dumps(_open_store_here(Path(path))), timeout_s=60.0)


def chunk_crc(payload: bytes) -> int:
    return zlib.crc32(payload) & 0xFFFFFFFF


def check_chunk(frames: h5py.Dataset, index: int, expected: int, path) -> tuple[int, bytes]:
    """Sample ``index``'s stored chunk as ``(filter mask, bytes)``; UserError if it does not match
    its checksum."""
    try:
        mask, payload = frames.id.read_direct_chunk((index,) + (0,) * (frames.ndim - 1))
    except H5_ERRORS as err:
        raise _bad(path, f"sample {index} cannot be read: {str(err)[:120]}") from None
    if chunk_crc(payload) != int(expected):
        raise _bad(path, f"sample {index} does not match its checksum")
    return mask, payload


def bad_samples(path: str | os.PathLike) -> list[int]:
    """Indices of the samples whose stored chunk does not match its checksum (after :func:`open_store`)."""
    info = open_store(path)
    bad = []
    try:
        with h5py.File(path, "r") as f:
            frames = f["frames"]
            for i in range(info.n):
                try:
                    check_chunk(frames, i, info.checksums[i], path)
                except UserError:
                    bad.append(i)
    except H5_ERRORS as err:
        raise UserError(f"{path}: not a readable frame store ({str(err)[:200]}). {REBUILD_HINT}") from None
    return bad


def source_files(path: str | os.PathLike, indices: list[int]) -> list[str]:
    """The recordings samples ``indices`` were made from ('?' where the store cannot say)."""
    try:
        with h5py.File(path, "r") as f:
            names = f["source_files"].asstr()[:]
        return [str(names[i]) if i < len(names) else "?" for i in indices]
    except H5_ERRORS:
        return ["?"] * len(indices)
