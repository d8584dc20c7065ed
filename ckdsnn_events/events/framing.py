"""Events -> (T, 2, H, W) count frames: numba kernels, one pass over the events.

Binning rules (``bins``):

- ``"count"`` (default): T bins of (nearly) equal event count. Bin ``b`` holds events
  ``floor(b*N/T) .. floor((b+1)*N/T) - 1``: every event is used. tonic's ``n_event_bins`` gives
  every bin ``N // T`` events and drops the remaining ``N % T``; when ``N % T == 0`` both agree.
- ``"time"``: T bins of equal duration over ``[t_first, t_last]``; an event at time ``t`` goes to
  bin ``min(T-1, floor((t - t_first) * T / D))`` with ``D = t_last - t_first``: every event is
  used. tonic's ``n_time_bins`` uses windows of ``D // T`` us and drops events at or after
  ``t_first + T * (D // T)``, always including the last event; elsewhere both agree.
- ``"window"``: T windows of ``window_us`` each, starting at the first event; events after the
  last window are dropped, windows after the end of the recording stay empty. This equals tonic's
  ``ToFrame(time_window=window_us, start_time=t_first, end_time=t_first + T*window_us)``.

Spatial downsampling from the sensor ``(W_in, H_in)`` to ``(W, H)`` maps ``x -> x * W // W_in``
(and likewise ``y``), which is what ``tonic.transforms.Downsample`` does followed by truncation to
integer pixels. Counts saturate at 65535 (uint16).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import Literal

import numba
import numpy as np

from ckdsnn_events.events.types import EVENT_DTYPE

Bins = Literal["count", "time", "window"]
BIN_MODES = ("count", "time", "window")
_UINT16_MAX = 65535


def bin_boundaries(
    t: np.ndarray, timesteps: int, bins: Bins = "count", window_us: int | None = None
) -> np.ndarray:
    """Event index where each bin starts, plus the end: int64 array of shape (timesteps + 1,).

    Bin ``b`` holds events ``[starts[b], starts[b+1])``. ``t`` must be sorted (microseconds).
    """
    n = int(t.shape[0])
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    b = np.arange(timesteps + 1, dtype=np.int64)
    if bins == "count":
        return b * n // timesteps
    if n == 0:
        return np.zeros(timesteps + 1, dtype=np.int64)
    t0 = int(t[0])
    if bins == "time":
        duration = int(t[-1]) - t0
        if duration == 0:
            starts = np.full(timesteps + 1, n, dtype=np.int64)
            starts[0] = 0
            return starts
        # first event of bin b: smallest t with (t - t0) * T >= b * D
        thresholds = t0 + (b * duration + timesteps - 1) // timesteps
        starts = np.searchsorted(t, thresholds.astype(t.dtype), side="left").astype(np.int64)
        starts[-1] = n
        return starts
    if bins == "window":
        if window_us is None or window_us <= 0:
            raise ValueError("bins='window' needs window_us > 0")
        thresholds = t0 + b * int(window_us)
        return np.searchsorted(t, thresholds.astype(t.dtype), side="left").astype(np.int64)
    raise ValueError(f"unknown bins {bins!r}; choose one of {', '.join(BIN_MODES)}")


def downsample_lut(sensor_extent: int, out_extent: int) -> np.ndarray:
    """Lookup table (int64, shape (sensor_extent,)) from sensor coordinate to frame coordinate."""
    return np.arange(sensor_extent, dtype=np.int64) * out_extent // sensor_extent


@functools.lru_cache(maxsize=16)
def pixel_lut(sensor_size: tuple[int, int], size: tuple[int, int]) -> tuple[np.ndarray, int]:
    """One lookup table from a sensor pixel to its downsampled frame pixel.

    Returns:
        ``(lut, x_bits)``: ``lut[(y << x_bits) | x] = y_out * W + x_out`` (uint32, read-only),
        where ``x_bits`` is the number of bits a sensor x coordinate needs.
    """
    width_in, height_in = sensor_size
    height, width = size
    x_bits = max(1, int(width_in - 1).bit_length())
    lut = np.zeros((height_in, 1 << x_bits), dtype=np.uint32)
    lut[:, :width_in] = (
        downsample_lut(height_in, height)[:, None] * width + downsample_lut(width_in, width)[None, :]
    )
    lut = lut.reshape(-1)
    lut.flags.writeable = False
    return lut, x_bits


# Events are handled in blocks: first the frame index of every event of the block (a streaming
# pass over the strided x/y/p fields), then the increments. Splitting the two passes doubled the
# throughput on the strided fields of a structured array compared with one fused loop.
_BLOCK = 2048


@numba.njit(cache=True, nogil=True, inline="always")
def _increment(flat, scratch, m, saturate):  # pragma: no cover - compiled
    if saturate:
        for j in range(m):
            if flat[scratch[j]] != _UINT16_MAX:
                flat[scratch[j]] += 1
    else:
        for j in range(m):
            flat[scratch[j]] += 1


@numba.njit(cache=True, nogil=True)
def _accumulate(x, y, p, starts, lut, x_bits, width_in, height_in, out):  # pragma: no cover
    """Add events into ``out`` (T, 2, H, W) uint16, bin b taking events [starts[b], starts[b+1]).

    ``p`` must be uint8 (a view of the bool field): loading bools costs a third of the speed.
    Returns False (leaving ``out`` partly filled) if an event lies outside the sensor or has a
    polarity above 1; the check rides along in the streaming pass instead of costing two more.
    """
    timesteps = out.shape[0]
    plane = np.uint64(out.shape[2] * out.shape[3])
    flat = out.reshape(-1)
    shift = np.uint64(x_bits)
    scratch = np.empty(_BLOCK, dtype=np.uint32)
    for b in range(timesteps):
        base = np.uint64(b) * np.uint64(2) * plane
        lo = np.uint64(starts[b])
        hi = np.uint64(starts[b + 1])
        # a pixel can only overflow uint16 when its bin holds >= 65535 events
        saturate = hi - lo >= np.uint64(_UINT16_MAX)
        while lo < hi:
            m = min(np.uint64(_BLOCK), hi - lo)
            for j in range(m):
                i = lo + j
                if x[i] >= width_in or y[i] >= height_in or p[i] > 1:
                    return False
                scratch[j] = (
                    base
                    + np.uint64(p[i]) * plane
                    + np.uint64(lut[(np.uint64(y[i]) << shift) | np.uint64(x[i])])
                )
            _increment(flat, scratch, m, saturate)
            lo += m
    return True


@numba.njit(cache=True, nogil=True)
def _accumulate_words(words, starts, lut, x_bits, width_in, height_in, out):  # pragma: no cover
    """:func:`_accumulate` for ``EVENT_DTYPE`` arrays read as one unaligned uint64 per event.

    ``words[i]`` holds bytes 5..12 of event i (t's top 3 bytes, x, y, p; little-endian): one
    load per event instead of three strided ones, ~12% faster on CIFAR10-DVS-like recordings.
    """
    timesteps = out.shape[0]
    plane = np.uint64(out.shape[2] * out.shape[3])
    flat = out.reshape(-1)
    shift = np.uint64(x_bits)
    scratch = np.empty(_BLOCK, dtype=np.uint32)
    for b in range(timesteps):
        base = np.uint64(b) * np.uint64(2) * plane
        lo = np.uint64(starts[b])
        hi = np.uint64(starts[b + 1])
        saturate = hi - lo >= np.uint64(_UINT16_MAX)
        while lo < hi:
            m = min(np.uint64(_BLOCK), hi - lo)
            for j in range(m):
                w = np.uint64(words[lo + j])
                xi = (w >> np.uint64(24)) & np.uint64(0xFFFF)
                yi = (w >> np.uint64(40)) & np.uint64(0xFFFF)
                pi = w >> np.uint64(56)
                if xi >= np.uint64(width_in) or yi >= np.uint64(height_in) or pi > np.uint64(1):
                    return False
                scratch[j] = base + pi * plane + np.uint64(lut[(yi << shift) | xi])
            _increment(flat, scratch, m, saturate)
            lo += m
    return True


@numba.njit(cache=True, parallel=True)
def _accumulate_many(x, y, p, starts, lut, x_bits, width_in, height_in, out):  # pragma: no cover
    """Batched :func:`_accumulate`: sample n uses ``starts[n]`` (absolute indices) and ``out[n]``."""
    ok = np.ones(out.shape[0], dtype=np.bool_)
    for n in numba.prange(out.shape[0]):
        ok[n] = _accumulate(x, y, p, starts[n], lut, x_bits, width_in, height_in, out[n])
    return ok.all()


@numba.njit(cache=True, parallel=True)
def _accumulate_many_words(words, starts, lut, x_bits, width_in, height_in, out):  # pragma: no cover
    """Batched :func:`_accumulate_words`."""
    ok = np.ones(out.shape[0], dtype=np.bool_)
    for n in numba.prange(out.shape[0]):
        ok[n] = _accumulate_words(words, starts[n], lut, x_bits, width_in, height_in, out[n])
    return ok.all()


def _event_words(events: np.ndarray) -> np.ndarray | None:
    """A uint64 view of bytes 5..12 of each event, if ``events`` is a plain 1-D EVENT_DTYPE array."""
    if (
        events.dtype != EVENT_DTYPE
        or events.ndim != 1
        or events.shape[0] == 0
        or events.strides[0] != EVENT_DTYPE.itemsize
        or sys.byteorder != "little"
    ):
        return None
    return np.ndarray(
        shape=events.shape, dtype="<u8", buffer=events, offset=5, strides=(EVENT_DTYPE.itemsize,)
    )


def _as_uint8(p: np.ndarray) -> np.ndarray:
    """Polarity as uint8 without a copy where possible (bool fields are viewed, not converted)."""
    if p.dtype == np.bool_ or p.dtype == np.uint8:
        return p.view(np.uint8)
    if p.size and (int(p.min()) < 0 or int(p.max()) > 1):
        raise ValueError("polarity must be 0 or 1")
    return p.astype(np.uint8)


def _outside_sensor(sensor_size: Sequence[int]) -> ValueError:
    return ValueError(
        f"event coordinates exceed the sensor size {tuple(sensor_size)} (or polarity > 1); "
        "pass the sensor size of the recording"
    )


def to_count_frames(
    events: np.ndarray,
    sensor_size: Sequence[int] = (128, 128, 2),
    size: tuple[int, int] = (48, 48),
    timesteps: int = 10,
    bins: Bins = "count",
    window_us: int | None = None,
) -> np.ndarray:
    """Count events per (bin, polarity, pixel).

    Args:
        events: structured array with fields ``t`` (sorted, us), ``x``, ``y``, ``p``; shape (N,).
        sensor_size: ``(W_in, H_in, 2)`` of the recording.
        size: ``(H, W)`` of the output frames.
        timesteps: number of bins T.
        bins: ``"count"``, ``"time"`` or ``"window"`` (see the module docstring).
        window_us: window length in microseconds for ``bins="window"``.

    Returns:
        uint16 array of shape (T, 2, H, W).
    """
    height, width = size
    width_in, height_in = int(sensor_size[0]), int(sensor_size[1])
    starts = bin_boundaries(events["t"], timesteps, bins, window_us)
    out = np.zeros((timesteps, 2, height, width), dtype=np.uint16)
    lut, x_bits = pixel_lut((width_in, height_in), (height, width))
    words = _event_words(events)
    if words is not None:
        ok = _accumulate_words(words, starts, lut, x_bits, width_in, height_in, out)
    else:
        p = _as_uint8(events["p"])
        ok = _accumulate(events["x"], events["y"], p, starts, lut, x_bits, width_in, height_in, out)
    if not ok:
        raise _outside_sensor(sensor_size)
    return out


def to_count_frames_batch(
    events: np.ndarray | Sequence[np.ndarray],
    offsets: np.ndarray | None = None,
    sensor_size: Sequence[int] = (128, 128, 2),
    size: tuple[int, int] = (48, 48),
    timesteps: int = 10,
    bins: Bins = "count",
    window_us: int | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """Frame many recordings in parallel (numba threads, one sample per task).

    Args:
        events: either one structured array holding all recordings back to back, with
            ``offsets`` (int, shape (N+1,)) marking where recording n starts and ends, or a
            sequence of N structured arrays (concatenated here, which costs one copy).
        num_threads: numba threads to use (default: numba's default, usually all cores).

    Returns:
        uint16 array of shape (N, T, 2, H, W), equal to stacking :func:`to_count_frames` of each.
    """
    if offsets is None:
        if isinstance(events, np.ndarray):
            raise ValueError("pass offsets with a concatenated events array")
        offsets = np.cumsum([0] + [len(e) for e in events])
        events = np.concatenate(events) if len(events) else np.empty(0, dtype=events.dtype)
    offsets = np.asarray(offsets, dtype=np.int64)
    height, width = size
    width_in, height_in = int(sensor_size[0]), int(sensor_size[1])
    n = offsets.shape[0] - 1
    t = events["t"]
    starts = np.empty((n, timesteps + 1), dtype=np.int64)
    for i in range(n):
        lo, hi = offsets[i], offsets[i + 1]
        starts[i] = lo + bin_boundaries(t[lo:hi], timesteps, bins, window_us)
    out = np.zeros((n, timesteps, 2, height, width), dtype=np.uint16)
    previous = numba.get_num_threads()
    if num_threads is not None:
        numba.set_num_threads(num_threads)
    try:
        lut, x_bits = pixel_lut((width_in, height_in), (height, width))
        words = _event_words(events)
        if words is not None:
            ok = _accumulate_many_words(words, starts, lut, x_bits, width_in, height_in, out)
        else:
            ok = _accumulate_many(
                events["x"], events["y"], _as_uint8(events["p"]), starts, lut, x_bits,
                width_in, height_in, out,
            )
    finally:
        numba.set_num_threads(previous)
    if not ok:
        raise _outside_sensor(sensor_size)
    return out
