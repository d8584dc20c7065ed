"""Training augmentation of event frames: the same random flip and shift for all T frames."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def hflip(frames: torch.Tensor) -> torch.Tensor:
    """Mirror (..., H, W) frames left-right."""
    return frames.flip(-1)


def shift(frames: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Translate (..., H, W) frames by ``dx`` pixels right and ``dy`` down, filling with zeros."""
    height, width = frames.shape[-2:]
    out = torch.zeros_like(frames)
    if abs(dx) >= width or abs(dy) >= height:
        return out
    out[..., max(0, dy) : height + min(0, dy), max(0, dx) : width + min(0, dx)] = frames[
        ..., max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)
    ]
    return out


@dataclass(frozen=True)
class RandomFlipShift:
    """Random horizontal flip (probability ``flip_p``) and shift by up to ``max_shift`` pixels.

    Works on one sample (T, C, H, W); the same flip and shift apply to every time step. Draws from
    torch's global RNG, which DataLoader seeds differently in every worker.
    """

    flip_p: float = 0.5
    max_shift: int = 4

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if self.flip_p > 0 and torch.rand(()) < self.flip_p:
            frames = hflip(frames)
        if self.max_shift > 0:
            dx, dy = torch.randint(-self.max_shift, self.max_shift + 1, (2,)).tolist()
            frames = shift(frames, dx, dy)
        return frames
