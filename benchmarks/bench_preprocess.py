"""`ckd-events preprocess` throughput on a generated CIFAR10-DVS-sized dataset.

10 classes x 100 recordings of ~200k events (the original .aedat form), 128x128 -> 48x48, T=10.
Prints samples/s and how the time splits between decoding, framing, compression and writing.

    python benchmarks/bench_preprocess.py [--quick] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import cifar10dvs_like  # noqa: E402

from ckdsnn_events.data.event_folders import CIFAR10DVS_CLASSES  # noqa: E402
from ckdsnn_events.events.aedat2 import write_aedat2  # noqa: E402
from ckdsnn_events.pipelines.preprocess import PreprocessConfig, run_preprocess  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 recordings per class instead of 100")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    per_class = 10 if args.quick else 100
    with tempfile.TemporaryDirectory(prefix="ckd-bench-") as tmp:
        root = Path(tmp) / "cifar10dvs"
        start = time.perf_counter()
        recordings = cifar10dvs_like(40)
        for label, name in enumerate(CIFAR10DVS_CLASSES):
            (root / name).mkdir(parents=True)
            for i in range(per_class):
                write_aedat2(root / name / f"cifar10_{name}_{i}.aedat", recordings[(label * per_class + i) % len(recordings)])
        size_mb = sum(f.stat().st_size for f in root.rglob("*.aedat")) / 1e6
        print(f"generated {10 * per_class} recordings ({size_mb:.0f} MB of .aedat) in {time.perf_counter() - start:.1f} s")
        for workers in sorted({1, args.workers}):
            out = Path(tmp) / f"frames-{workers}"
            config = PreprocessConfig(dataset="cifar10dvs", root=str(root), out=str(out), workers=workers)
            result = run_preprocess(config, progress=False)
            busy = result.decode_s + result.frame_s + result.encode_s + result.write_s
            store_mb = sum(f.stat().st_size for f in out.glob("*.h5")) / 1e6
            print(
                f"workers={workers}: {result.recordings_done} recordings in {result.wall_s:.1f} s = "
                f"{result.samples_per_s:.1f} samples/s; stores {store_mb:.0f} MB\n"
                f"  time split (summed over workers): decode {result.decode_s:.1f} s "
                f"({100 * result.decode_s / busy:.0f}%), framing {result.frame_s:.1f} s "
                f"({100 * result.frame_s / busy:.0f}%), compression {result.encode_s:.1f} s "
                f"({100 * result.encode_s / busy:.0f}%), writing {result.write_s:.1f} s "
                f"({100 * result.write_s / busy:.0f}%)"
            )


if __name__ == "__main__":
    main()
