"""Shared pieces of the benchmark scripts: timing and CIFAR10-DVS-sized test recordings."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from ckdsnn_events.events.simulate import SimulatorConfig, simulate_recording
from ckdsnn_events.events.types import make_events


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_seconds(fns: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1) -> dict[str, list[float]]:
    """Time several functions in alternation (A, B, C, A, B, C, ...): per-repeat times of each.

    Machine speed drifts (other tenants, clock changes); alternating keeps every ratio of two
    functions from the same moments, so ratios stay meaningful when absolute times wander.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over repeats of numerator[i] / denominator[i]."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def textured_image(seed: int, size: int = 32) -> np.ndarray:
    """A CIFAR-sized (32x32) smooth random texture in [0, 1]: edges everywhere, like natural images."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((size // 4, size // 4))
    return np.kron(coarse, np.ones((4, 4))) * 0.8 + 0.1 * rng.random((size, size))


def cifar10dvs_like(n_recordings: int, target_events: int = 200_000, seed: int = 0) -> list[np.ndarray]:
    """Recordings of ~``target_events`` events on a 128x128 sensor, like CIFAR10-DVS's (~1.3 s each).

    A few are simulated (a textured image moving in saccades, with background noise); the rest are
    mirrored/shifted copies of those with jittered timestamps, so every recording is distinct.
    """
    from ckdsnn_events.events.simulate import fit_image

    config = SimulatorConfig(image_px=96, saccades=8, saccade_ms=160, amplitude_px=4.0, threshold=0.12,
                             noise_hz=5.0, seed=seed)
    base = []
    for i in range(min(4, n_recordings)):
        events = simulate_recording(fit_image(textured_image(seed + i), 96), config, i)
        while len(events) < target_events:  # repeat the eye path until the recording is long enough
            later = events.copy()
            later["t"] += events["t"][-1] + 1
            events = np.concatenate([events, later])
        base.append(events[:target_events])
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_recordings):
        src = base[k % len(base)]
        dx = int(rng.integers(-6, 7))
        x = np.clip(src["x"].astype(np.int64) + dx, 0, 127)
        x = 127 - x if (k // len(base)) % 2 else x
        t = np.sort(src["t"] + rng.integers(0, 50, len(src)).astype(np.uint64))
        out.append(make_events(t, x, src["y"], src["p"] ^ bool(k % 3 == 2)))
    return out
