"""The one batch form both worlds (events and images) leave their loaders in."""

from __future__ import annotations

from typing import NamedTuple

import torch

from ckdsnn_events.models.time_major import is_constant_in_time

__all__ = ["Batch", "collate_event_frames", "is_constant_in_time"]


class Batch(NamedTuple):
    """A training/evaluation batch.

    Attributes:
        inputs: float32 (T, B, C, H, W), time-major, for the spiking student.
        teacher_inputs: float32 (B, C, H, W) for the ANN teacher: the accumulated frame (sum over
            T) for events, the image itself for static inputs.
        labels: int64 (B,).

    Constant-in-time inputs (direct encoding of images) are an ``expand`` of one (B, C, H, W)
    tensor, stride 0 along T: the student sees ``inputs.stride(0) == 0`` and computes its first
    convolution once instead of T times. :meth:`to` keeps that property across devices.
    """

    inputs: torch.Tensor
    teacher_inputs: torch.Tensor
    labels: torch.Tensor

    def to(self, device, non_blocking: bool = False) -> "Batch":
        inputs = self.inputs
        if is_constant_in_time(inputs):
            inputs = inputs[0].to(device, non_blocking=non_blocking).expand_as(inputs)
        else:
            inputs = inputs.to(device, non_blocking=non_blocking)
        return Batch(
            inputs,
            self.teacher_inputs.to(device, non_blocking=non_blocking),
            self.labels.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> "Batch":
        """Page-locked copies (DataLoader's pin-memory thread calls this), keeping stride-0 inputs.

        ``Tensor.pin_memory()`` of an expanded tensor fails (it would copy into overlapping
        elements), so a constant-in-time input is pinned as its one step, or shares the pinned
        teacher view when it is the same tensor (direct encoding), and expanded again.
        """
        teacher = self.teacher_inputs.pin_memory()
        if is_constant_in_time(self.inputs):
            step = self.inputs[0]
            same = step.data_ptr() == self.teacher_inputs.data_ptr() and step.stride() == self.teacher_inputs.stride()
            inputs = (teacher if same else step.pin_memory()).expand_as(self.inputs)
        else:
            inputs = self.inputs.pin_memory()
        return Batch(inputs, teacher, self.labels.pin_memory())



def collate_event_frames(samples: list[tuple[torch.Tensor, int]]) -> Batch:
    """Stack ``(frames (T, C, H, W), label)`` samples into a time-major :class:`Batch`."""
    frames = torch.stack([s[0] for s in samples], dim=1)  # (T, B, C, H, W)
    labels = torch.as_tensor([s[1] for s in samples], dtype=torch.int64)
    return Batch(frames, frames.sum(dim=0), labels)
