"""Cost of the frame store's per-sample checksums.

Measures, on a store of N samples of (T, 2, 48, 48) sparse event counts (CIFAR10-DVS-like):
- loading every sample through FrameStoreDataset (checksum checked per sample) vs plain h5py
  reads of the same samples (what the loader did before): the per-sample overhead;
- the "up to date" check (structure + every checksum, ``store_check.bad_samples``) vs reading the
  whole store with h5py once.
Median of repeats; prints ratios.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_seconds  # noqa: E402

from ckdsnn_events.data.frame_store import STATUS_DONE, FrameStoreDataset, ProgressLog, assemble_store, encode_chunk
from ckdsnn_events.data.store_check import bad_samples

N, SHAPE, REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000, (10, 2, 48, 48), 5


def median_time(fn) -> float:
    return median_seconds(fn, repeats=REPEATS, warmup=0)


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        log = ProgressLog(work / "log")
        for i in range(N):
            frames = rng.poisson(0.8, SHAPE).astype(np.uint16)  # ~ a 200k-event recording at 48x48, T=10
            log.append(i, STATUS_DONE, 1, encode_chunk(frames))
        path = work / "train.h5"
        assemble_store(path, log, range(N), np.zeros(N, dtype=np.int64), [f"{i}" for i in range(N)], SHAPE,
                       {"config": {}, "fingerprint": "f", "classes": ["a"]})
        log.close()
        dataset = FrameStoreDataset(path)

        def checked():
            for i in range(N):
                dataset[i]

        def plain():
            with h5py.File(path, "r") as f:
                frames = f["frames"]
                for i in range(N):
                    frames[i].astype(np.float32)

        def whole():
            with h5py.File(path, "r") as f:
                f["frames"][:]

        t_checked, t_plain = median_time(checked), median_time(plain)
        t_verify, t_whole = median_time(lambda: bad_samples(path)), median_time(whole)
        size = path.stat().st_size / 2**20
        print(f"store: {N} samples of {SHAPE}, {size:.1f} MiB")
        print(f"load every sample: checked {1e6 * t_checked / N:.0f} us/sample, plain h5py {1e6 * t_plain / N:.0f} "
              f"us/sample: checksum overhead {100 * (t_checked / t_plain - 1):.1f} %")
        print(f"'up to date' check of the whole store: {1e3 * t_verify:.0f} ms ({1e6 * t_verify / N:.0f} us/sample), "
              f"{t_verify / t_whole:.2f}x one full h5py read ({1e3 * t_whole:.0f} ms)")


if __name__ == "__main__":
    main()
