"""Framing speed: our numba kernel vs tonic.transforms.ToFrame, vs a plain streaming read, batched.

CIFAR10-DVS-sized recordings (200k events, 128x128 -> 48x48, T=10, equal-count bins).

    python benchmarks/bench_framing.py [--quick]

Targets (issue 2): >= 30x tonic on one thread; >= 0.5x a plain streaming read of the same x/y/p
fields (the memory-bound limit, measured cold: each recording touched once, more data than the
caches hold); batched framing on 2 cores >= 1.7x one core.
"""

from __future__ import annotations

import argparse
import os
import sys

import numba
import numpy as np
import tonic.transforms as tt

sys.path.insert(0, os.path.dirname(__file__))
from common import cifar10dvs_like, median_seconds  # noqa: E402

from ckdsnn_events.events.framing import to_count_frames, to_count_frames_batch  # noqa: E402


@numba.njit(nogil=True, cache=True)
def streaming_read(x, y, p):  # pragma: no cover - compiled
    """Touch every x, y, p once (the least any framing kernel must do)."""
    total = np.uint64(0)
    for i in range(x.shape[0]):
        total += np.uint64(x[i]) + np.uint64(y[i]) + np.uint64(p[i])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer recordings and repeats")
    args = parser.parse_args()
    n_cold = 16 if args.quick else 48
    repeats = 3 if args.quick else 7
    recordings = cifar10dvs_like(n_cold)
    n = len(recordings[0])
    one = recordings[0]
    print(f"{n_cold} recordings of {n} events, 128x128 -> 48x48, T=10, count bins; "
          f"median of {repeats}; {numba.config.NUMBA_NUM_THREADS} numba threads available")

    tonic_transform = tt.Compose([tt.Downsample(spatial_factor=48 / 128), tt.ToFrame(sensor_size=(48, 48, 2), n_event_bins=10)])
    assert np.array_equal(tonic_transform(one[: n - n % 10]), to_count_frames(one[: n - n % 10]))
    tonic_eps = n / median_seconds(lambda: tonic_transform(one), repeats=max(3, repeats // 2))
    ours_eps = n / median_seconds(lambda: to_count_frames(one), repeats=repeats * 4)
    x, y, p = one["x"], one["y"], one["p"].view(np.uint8)
    stream_hot_eps = n / median_seconds(lambda: streaming_read(x, y, p), repeats=repeats * 4)

    total = n * n_cold
    fields = [(r["x"], r["y"], r["p"].view(np.uint8)) for r in recordings]
    ours_cold_eps = total / median_seconds(lambda: [to_count_frames(r) for r in recordings], repeats=repeats)
    stream_cold_eps = total / median_seconds(lambda: [streaming_read(*f) for f in fields], repeats=repeats)

    concatenated = np.concatenate(recordings)
    offsets = np.arange(n_cold + 1) * n
    batch_1 = median_seconds(lambda: to_count_frames_batch(concatenated, offsets, num_threads=1), repeats=repeats)
    batch_2 = median_seconds(lambda: to_count_frames_batch(concatenated, offsets, num_threads=2), repeats=repeats)

    rows = [
        ("tonic ToFrame (Downsample + n_event_bins)", tonic_eps),
        ("ours, one recording repeatedly (hot cache)", ours_eps),
        ("ours, each recording once (cold)", ours_cold_eps),
        ("streaming read of x/y/p, hot", stream_hot_eps),
        ("streaming read of x/y/p, cold", stream_cold_eps),
        ("ours batched, 1 thread", total / batch_1),
        ("ours batched, 2 threads", total / batch_2),
    ]
    for name, eps in rows:
        print(f"  {name:<46} {eps / 1e6:8.1f} M events/s")
    checks = [
        ("ours / tonic (one thread)", ours_eps / tonic_eps, 30.0),
        ("ours / streaming read, cold", ours_cold_eps / stream_cold_eps, 0.5),
        ("ours / streaming read, hot (for reference)", ours_eps / stream_hot_eps, None),
        ("batched 2 threads / 1 thread", batch_1 / batch_2, 1.7),
    ]
    for name, ratio, target in checks:
        verdict = "" if target is None else (f"  target >= {target}: " + ("ok" if ratio >= target else "MISSED"))
        print(f"  {name:<46} {ratio:8.2f}x{verdict}")


if __name__ == "__main__":
    main()
