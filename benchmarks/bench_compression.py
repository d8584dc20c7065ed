"""Frame-store compression: preprocess speed, training-loader speed and store size per --compression.

Data: ``bench_preprocess``'s generated CIFAR10-DVS-like set (10 classes x ``--per-class`` recordings
of ~200k events, original ``.aedat`` form), framed 128 -> 48x48, T=10, as the paper's protocol.

For each of gzip (shuffle + deflate level 1, the store's old form), lzf (shuffle + lzf) and none:

(a) ``preprocess`` recordings/s with 1 worker (median of ``--repeats`` fresh runs, compressions in
    alternation so machine-speed drift spreads over all of them);
(b) the training loader (``build_loaders``: train split, random flip + shift augmentation,
    batch 32, time-major Batches) samples/s over one epoch with 0, 1 and 2 DataLoader workers,
    median of the repeats; the store is in the page cache (it was just written), so this is
    decompression + augmentation + collation, not disk;
(c) store size (train.h5 + test.h5) and bytes per sample.

On a shared, loaded machine wall times wander; so the script also prints CPU time (this process,
``time.process_time``): preprocess CPU ms per recording (1 worker runs in this process) and the
CPU ms to read one sample from the store (h5py read + decompression + float32 conversion,
``FrameStoreDataset.__getitem__`` without augmentation, torch on 1 thread), the figures that
decide which layout costs less.

Beside them, the student's training step (ResNet-20, T=10, B=32, 2x48x48, CE, backward, SGD) in
samples/s on this machine: the loader is the bottleneck only where its samples/s are below it.

    python benchmarks/bench_compression.py                 # 300 recordings, 3 repeats (~6 min on 2 cores)
    python benchmarks/bench_compression.py --per-class 10 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import cifar10dvs_like, median_seconds  # noqa: E402

import torch  # noqa: E402

from ckdsnn_events.data.event_datasets import COMPRESSIONS  # noqa: E402
from ckdsnn_events.data.event_folders import CIFAR10DVS_CLASSES  # noqa: E402
from ckdsnn_events.data.loaders import DataConfig, build_loaders  # noqa: E402
from ckdsnn_events.events.aedat2 import write_aedat2  # noqa: E402
from ckdsnn_events.pipelines.preprocess import PreprocessConfig, run_preprocess  # noqa: E402


def write_dataset(root: Path, per_class: int) -> None:
    recordings = cifar10dvs_like(40)
    for label, name in enumerate(CIFAR10DVS_CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            write_aedat2(root / name / f"cifar10_{name}_{i}.aedat", recordings[(label * per_class + i) % len(recordings)])


def loader_samples_per_s(store: Path, workers: int, batch: int) -> float:
    config = DataConfig(dataset="cifar10dvs", root=str(store), batch_size=batch, workers=workers, val_fraction=0.0)
    train = build_loaders(config)[0]
    start = time.perf_counter()
    n = sum(b.labels.shape[0] for b in train)
    return n / (time.perf_counter() - start)


def read_cpu_ms(store: Path) -> float:
    """CPU ms per sample of reading the whole train store in order (no augmentation)."""
    from ckdsnn_events.data.frame_store import FrameStoreDataset

    ds = FrameStoreDataset(store / "train.h5")
    ds[0]
    start = time.process_time()
    for i in range(len(ds)):
        ds[i]
    return 1e3 * (time.process_time() - start) / len(ds)


def student_samples_per_s(batch: int, repeats: int) -> float:
    from ckdsnn_events.models import build_student

    torch.manual_seed(0)
    model = build_student("resnet20", num_classes=10, in_channels=2)
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = (torch.rand(10, batch, 2, 48, 48) < 0.1).float()
    y = torch.randint(0, 10, (batch,))

    def step():
        optim.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optim.step()

    return batch / median_seconds(step, repeats=repeats, warmup=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--loader-workers", default="0,1,2")
    args = parser.parse_args()
    loader_workers = [int(w) for w in args.loader_workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="ckd-bench-") as tmp:
        root = Path(tmp) / "cifar10dvs"
        write_dataset(root, args.per_class)
        n = 10 * args.per_class
        print(f"{n} recordings of ~200k events, 128 -> 48x48, T=10; torch threads {torch.get_num_threads()}")
        rates = {c: [] for c in COMPRESSIONS}
        cpu = {c: [] for c in COMPRESSIONS}
        shares = {c: None for c in COMPRESSIONS}
        sizes = {}
        for repeat in range(args.repeats):
            for compression in COMPRESSIONS:
                out = Path(tmp) / f"frames-{compression}-{repeat}"
                config = PreprocessConfig(dataset="cifar10dvs", root=str(root), out=str(out), workers=1,
                                          compression=compression)
                cpu_start = time.process_time()
                result = run_preprocess(config, progress=False)
                cpu[compression].append(1e3 * (time.process_time() - cpu_start) / result.recordings_done)
                rates[compression].append(result.samples_per_s)
                busy = result.decode_s + result.frame_s + result.encode_s + result.write_s
                shares[compression] = (result.decode_s / busy, result.frame_s / busy, result.encode_s / busy,
                                       result.write_s / busy)
                sizes[compression] = (sum(f.stat().st_size for f in out.glob("*.h5")), out)
        loader = {c: {w: [] for w in loader_workers} for c in COMPRESSIONS}
        reads = {c: [] for c in COMPRESSIONS}
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        for _ in range(args.repeats):
            for compression in COMPRESSIONS:
                reads[compression].append(read_cpu_ms(sizes[compression][1]))
        torch.set_num_threads(threads)
        for _ in range(args.repeats):
            for compression in COMPRESSIONS:
                for w in loader_workers:
                    loader[compression][w].append(loader_samples_per_s(sizes[compression][1], w, args.batch))
        student = student_samples_per_s(args.batch, max(3, args.repeats))
        print(f"\nstudent training step (ResNet-20, T=10, B={args.batch}, 2x48x48): {student:.0f} samples/s")
        head = " | ".join(f"loader {w} workers" for w in loader_workers)
        print(f"\n| compression | preprocess rec/s (1 worker) | preprocess CPU ms/rec | decode / framing / compress / write "
              f"| read CPU ms/sample | {head} | store MB | KB/sample |")
        print("|---|---|---|---|---|" + "---|" * len(loader_workers) + "---|---|")
        for c in COMPRESSIONS:
            d, f, e, w = shares[c]
            size = sizes[c][0]
            cells = " | ".join(f"{statistics.median(loader[c][k]):.0f}" for k in loader_workers)
            print(f"| {c} | {statistics.median(rates[c]):.0f} (runs {', '.join(f'{r:.0f}' for r in rates[c])}) | "
                  f"{statistics.median(cpu[c]):.2f} | {100 * d:.0f} / {100 * f:.0f} / {100 * e:.0f} / {100 * w:.0f} % | "
                  f"{statistics.median(reads[c]):.3f} | {cells} | {size / 1e6:.1f} | "
                  f"{size / n / 1e3:.1f} |")


if __name__ == "__main__":
    main()
