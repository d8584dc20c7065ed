"""Framing speed: our numba kernel vs tonic.transforms.ToFrame, vs a plain streaming read, batched.

CIFAR10-DVS-sized recordings (200k events, 128x128 -> 48x48, T=10, equal-count bins).

    python benchmarks/bench_framing.py [--quick]

Targets (issue 2): >= 30x tonic on one thread; >= 0.5x a plain streaming read of the same x/y/p
fields (the memory-bound limit, measured cold: each recording touched once, more data than the
caches hold); batched framing on 2 cores >= 1.7x one core. The streaming read on 2 threads is
printed too: it bounds what batched framing can reach once the cores share memory bandwidth.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import numba
import numpy as np
import tonic.transforms as tt

sys.path.insert(0, os.path.dirname(__file__))
from common import cifar10dvs_like, interleaved_seconds, median_ratio  # noqa: E402

from ckdsnn_events.events.framing import to_count_frames, to_count_frames_batch  # noqa: E402


@numba.njit(nogil=True, cache=True)
def streaming_read(x, y, p):  # pragma: no cover - compiled
    """Touch every x, y, p once (the least any framing kernel must do)."""
    total = np.uint64(0)
    for i in range(x.shape[0]):
        total += np.uint64(x[i]) + np.uint64(y[i]) + np.uint64(p[i])
    return total


@numba.njit(nogil=True, cache=True, parallel=True)
def streaming_read_many(x, y, p, offsets):  # pragma: no cover - compiled
    """:func:`streaming_read` of each recording ``offsets[n]:offsets[n+1]``, in parallel."""
    totals = np.zeros(offsets.shape[0] - 1, dtype=np.uint64)
    for n in numba.prange(offsets.shape[0] - 1):
        totals[n] = streaming_read(x[offsets[n]:offsets[n + 1]], y[offsets[n]:offsets[n + 1]], p[offsets[n]:offsets[n + 1]])
    return totals.sum()


def on_threads(threads: int, fn):
    """``fn`` run with numba limited to ``threads`` threads."""
    def run():
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            return fn()
        finally:
            numba.set_num_threads(previous)
    return run


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
    x, y, p = one["x"], one["y"], one["p"].view(np.uint8)
    fields = [(r["x"], r["y"], r["p"].view(np.uint8)) for r in recordings]
    concatenated = np.concatenate(recordings)
    offsets = np.arange(n_cold + 1) * n

    # every measurement alternates with its comparison, so ratios come from the same moments
    hot = interleaved_seconds({
        "tonic": lambda: tonic_transform(one),
        "ours": lambda: [to_count_frames(one) for _ in range(10)],
        "stream": lambda: [streaming_read(x, y, p) for _ in range(10)],
    }, repeats=repeats)
    cold = interleaved_seconds({
        "ours": lambda: [to_count_frames(r) for r in recordings],
        "stream": lambda: [streaming_read(*f) for f in fields],
    }, repeats=repeats)
    cx, cy, cp = concatenated["x"], concatenated["y"], concatenated["p"].view(np.uint8)
    batched = interleaved_seconds({
        "1": lambda: to_count_frames_batch(concatenated, offsets, num_threads=1),
        "2": lambda: to_count_frames_batch(concatenated, offsets, num_threads=2),
        "stream 2": on_threads(2, lambda: streaming_read_many(cx, cy, cp, offsets)),
    }, repeats=repeats)
    total = n * n_cold
    med = statistics.median
    rows = [
        ("tonic ToFrame (Downsample + n_event_bins)", n / med(hot["tonic"])),
        ("ours, one recording repeatedly (hot cache)", 10 * n / med(hot["ours"])),
        ("ours, each recording once (cold)", total / med(cold["ours"])),
        ("streaming read of x/y/p, hot", 10 * n / med(hot["stream"])),
        ("streaming read of x/y/p, cold", total / med(cold["stream"])),
        ("ours batched, 1 thread", total / med(batched["1"])),
        ("ours batched, 2 threads", total / med(batched["2"])),
        ("streaming read of x/y/p, 2 threads, cold", total / med(batched["stream 2"])),
    ]
    for name, eps in rows:
        print(f"  {name:<46} {eps / 1e6:8.1f} M events/s")
    checks = [
        ("ours / tonic (one thread)", median_ratio(hot["tonic"], [t / 10 for t in hot["ours"]]), 30.0),
        ("ours / streaming read, cold", median_ratio(cold["stream"], cold["ours"]), 0.5),
        ("ours / streaming read, hot (for reference)", median_ratio(hot["stream"], hot["ours"]), None),
        ("batched 2 threads / 1 thread", median_ratio(batched["1"], batched["2"]), 1.7),
        ("batched 2 threads / streaming read 2 threads", median_ratio(batched["stream 2"], batched["2"]), None),
    ]
    for name, ratio, target in checks:
        verdict = "" if target is None else (f"  target >= {target}: " + ("ok" if ratio >= target else "MISSED"))
        print(f"  {name:<46} {ratio:8.2f}x{verdict}")
    print("  (ratios: median over repeats of per-repeat ratios, each pair timed back to back)")


if __name__ == "__main__":
    main()
