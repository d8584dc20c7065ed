"""Fuzz targets beyond the readers: frame stores, checkpoints, recipes (registered into TARGETS)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from mutate import mutate
from targets import Outcome, Target, register, run_case

# --- frame stores ----------------------------------------------------------------------------------


def make_store(work: Path, n: int = 6, shape=(3, 2, 8, 8)):
    """A small store made the way preprocess makes one; returns (path bytes, frames, labels)."""
    from ckdsnn_events.data.frame_store import STATUS_DONE, ProgressLog, assemble_store, encode_chunk

    rng = np.random.default_rng(3)
    frames = rng.integers(0, 9, (n, *shape)).astype(np.uint16)
    labels = np.arange(n) % 3
    log = ProgressLog(work / "seed.log")
    for i in range(n):
        log.append(i, STATUS_DONE, 10 + i, encode_chunk(frames[i]))
    config = {"timesteps": shape[0], "size": [shape[2], shape[3]], "split": "train"}
    assemble_store(work / "seed.h5", log, range(n), labels, [f"c/{i}.aedat" for i in range(n)], shape,
                   {"config": config, "fingerprint": "f", "classes": ["a", "b", "c"]})
    log.close()
    return (work / "seed.h5").read_bytes(), frames, labels


def _h5_edit(path: Path, rng: random.Random) -> None:
    """One structural edit of the kind a crash, a script or a hand made to a store."""
    import h5py

    with h5py.File(path, "r+") as f:
        edit = rng.randrange(8)
        n = f["frames"].shape[0]
        if edit == 0:
            f["labels"][rng.randrange(n)] = rng.choice([99, -1, 3, 2**40])
        elif edit == 1:
            del f[rng.choice(["frames", "labels", "checksums", "source_files"])]
        elif edit == 2:
            labels = f["labels"][:]
            del f["labels"]
            f["labels"] = labels[: rng.randrange(n)]
        elif edit == 3:
            f.attrs[rng.choice(["config", "classes", "skipped"])] = rng.choice(["{bad json", "3", "[]", '"x"', "null"])
        elif edit == 4:  # two chunks swapped
            i, j = rng.sample(range(n), 2)
            a, b = f["frames"].id.read_direct_chunk((i, 0, 0, 0, 0))[1], f["frames"].id.read_direct_chunk((j, 0, 0, 0, 0))[1]
            f["frames"].id.write_direct_chunk((i, 0, 0, 0, 0), b)
            f["frames"].id.write_direct_chunk((j, 0, 0, 0, 0), a)
        elif edit == 5:  # a chunk replaced by another valid chunk of other frames
            from ckdsnn_events.data.frame_store import encode_chunk

            other = np.full(f["frames"].shape[1:], rng.randrange(5), dtype=np.uint16)
            f["frames"].id.write_direct_chunk((rng.randrange(n), 0, 0, 0, 0), encode_chunk(other))
        elif edit == 6:
            f["checksums"][rng.randrange(n)] = rng.randrange(2**32)
        else:
            f.attrs["classes"] = '["a"]'


class StoreTarget(Target):
    name, suffix, cost = "store", ".h5", 5

    def setup(self, work: Path) -> None:
        self.data, self.frames, self.labels = make_store(work)

    def case(self, rng: random.Random, path: Path) -> Outcome:
        from ckdsnn_events.data.frame_store import FrameStoreDataset

        path.write_bytes(self.data)
        if rng.random() < 0.5:
            _h5_edit(path, rng)
        else:
            path.write_bytes(mutate(self.data, rng))

        def load(p):
            ds = FrameStoreDataset(p)
            return ds, [ds[i] for i in range(len(ds))]

        def oracle(result):
            ds, items = result
            if len(items) != len(self.frames):
                return f"{len(items)} samples loaded of {len(self.frames)}"
            for i, (x, y) in enumerate(items):
                if y != self.labels[i] or not np.array_equal(x.numpy(), self.frames[i]):
                    return f"sample {i} loaded with other frames or label"
            return ""

        return run_case(load, path, oracle)


register(StoreTarget)
