"""Thin transform classes over :mod:`ckdsnn_events.events.framing`, usable in ``tonic.transforms.Compose``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ckdsnn_events.events.framing import BIN_MODES, Bins, to_count_frames


@dataclass(frozen=True)
class ToCountFrames:
    """Events (N,) -> uint16 count frames (T, 2, H, W), computed by a numba kernel.

    A drop-in for ``tonic.transforms.Downsample`` + ``tonic.transforms.ToFrame(n_event_bins=T)``
    (``bins="count"``) or ``ToFrame(n_time_bins=T)`` (``bins="time"``); see
    :mod:`ckdsnn_events.events.framing` for where and why the results differ.

    Example:
        >>> import tonic
        >>> transform = tonic.transforms.Compose([ToCountFrames(sensor_size=(128, 128, 2), size=(48, 48), timesteps=10)])
    """

    sensor_size: tuple[int, int, int] = (128, 128, 2)
    size: tuple[int, int] = (48, 48)
    timesteps: int = 10
    bins: Bins = "count"
    window_us: int | None = None

    def __post_init__(self) -> None:
        if self.timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {self.timesteps}")
        if min(self.size) < 1:
            raise ValueError(f"size must be positive, got {self.size}")
        if self.bins not in BIN_MODES:
            raise ValueError(f"bins must be one of {BIN_MODES}, got {self.bins!r}")
        if self.bins == "window" and (self.window_us is None or self.window_us <= 0):
            raise ValueError("bins='window' needs window_us > 0")

    def __call__(self, events: np.ndarray) -> np.ndarray:
        # tonic's ASL-DVS reader yields (N, 1) arrays (its .mat columns): frame them as (N,)
        return to_count_frames(
            events.reshape(-1), self.sensor_size, self.size, self.timesteps, self.bins, self.window_us
        )
