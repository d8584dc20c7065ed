"""The one batch form both worlds (events and images) leave their loaders in."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Batch(NamedTuple):
    """A training/evaluation batch.

    Attributes:
        inputs: float32 (T, B, C, H, W), time-major, for the spiking student.
        teacher_inputs: float32 (B, C, H, W) for the ANN teacher: the accumulated frame (sum over
            T) for events, the image itself for static inputs.
        labels: int64 (B,).
    """

    inputs: torch.Tensor
    teacher_inputs: torch.Tensor
    labels: torch.Tensor

    def to(self, device, non_blocking: bool = False) -> "Batch":
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in self))


def collate_event_frames(samples: list[tuple[torch.Tensor, int]]) -> Batch:
    """Stack ``(frames (T, C, H, W), label)`` samples into a time-major :class:`Batch`."""
    frames = torch.stack([s[0] for s in samples], dim=1)  # (T, B, C, H, W)
    labels = torch.as_tensor([s[1] for s in samples], dtype=torch.int64)
    return Batch(frames, frames.sum(dim=0), labels)
