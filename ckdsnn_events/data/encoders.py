"""Spike encoders: static images (B, C, H, W) -> time-major inputs (T, B, C, H, W) float32.

Three encodings, chosen with ``data.encoder``:

- ``direct``: the (normalised) image itself at every step, as the CKDSNN paper does for CIFAR. The
  output is an ``expand`` of the input (stride 0 along T), so it costs no memory and the student
  can run its first convolution once (:func:`ckdsnn_events.data.batch.is_constant_in_time`).
- ``rate``: Bernoulli spikes, at each step a pixel fires with probability equal to its intensity.
- ``latency``: time-to-first-spike, one spike per lit pixel, brighter pixels earlier.

``rate`` and ``latency`` take intensities in [0, 1], i.e. the image *before* mean/std
normalisation (a normalised pixel is no probability); ``direct`` takes the normalised image that
the teacher sees too. Each encoder says which it wants in its ``unit_interval`` attribute, and the
loaders' collate function hands it the right one. The loaders run the encoders inside DataLoader
workers (in the collate function), so encoding overlaps with training.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ckdsnn_events.errors import UserError

ENCODERS = ("direct", "rate", "latency")


def _check_timesteps(timesteps: int) -> int:
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise UserError(f"timesteps must be a whole number of at least 1, got {timesteps!r} (set data.timesteps / -T).")
    return timesteps


class SpikeEncoder(nn.Module):
    """Base class: ``encoder(images (B, C, H, W), generator=None) -> (T, B, C, H, W) float32``.

    Attributes:
        timesteps: T, the number of steps produced.
        unit_interval: True if the encoder reads intensities in [0, 1] (unnormalised images);
            False if it takes the normalised image the teacher sees.
    """

    unit_interval: bool = False

    def __init__(self, timesteps: int):
        super().__init__()
        self.timesteps = _check_timesteps(timesteps)

    def extra_repr(self) -> str:
        return f"timesteps={self.timesteps}"


class DirectEncoder(SpikeEncoder):
    """Direct (analog) input: the same image at every time step.

    Input: images (B, C, H, W), normally the mean/std-normalised image.
    Output: (T, B, C, H, W) float32, ``images.unsqueeze(0).expand(T, ...)``: a view with stride 0
    along T (no copy), so ``is_constant_in_time(output)`` holds and the student computes its stem
    convolution once. Do not write into it in place.
    """

    unit_interval = False

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        images = images.to(torch.float32)
        return images.unsqueeze(0).expand(self.timesteps, *images.shape)


# Rate coding draws 16-bit uniform integers and compares them with round(x * 2**16): P(spike) is x
# up to 2**-17 (exactly 0 and 1 at the ends). A 64-bit generator yields four 16-bit draws per call,
# which makes this ~4x cheaper on the CPU than comparing float32 torch.rand (the DataLoader workers
# that run it are busy with augmentation already).
_RATE_LEVELS = 1 << 16


class RateEncoder(SpikeEncoder):
    """Rate (Bernoulli) coding: at each step a pixel spikes with probability = its intensity.

    Input: images (B, C, H, W), intensities in [0, 1] (the image before normalisation; values
    outside are clamped).
    Output: (T, B, C, H, W) float32 of 0/1; steps are independent, so the expected spike count of a
    pixel over T steps is ``T * x``. P(spike) is ``round(x * 65536) / 65536`` (16-bit resolution:
    exactly 0 for black, 1 for white).

    Randomness: from ``generator`` (a CPU ``torch.Generator``) if given, else from torch's global
    RNG, so ``torch.manual_seed`` makes it reproducible (DataLoader seeds every worker's RNG). On
    CPU one 63-bit seed is drawn from it and expanded by numpy's SFC64 generator (fast 16-bit
    uniforms); CUDA inputs use ``torch.rand`` on their device (pass a generator of that device).
    """

    unit_interval = True

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = images.detach().to(torch.float32).clamp(0.0, 1.0)
        shape = (self.timesteps, *x.shape)
        if x.device.type != "cpu":
            uniform = torch.rand(shape, device=x.device, generator=generator)
            return (uniform < x).to(torch.float32)
        seed = int(torch.randint(0, 2**63 - 1, (), generator=generator))
        count = int(np.prod(shape))
        words = np.random.SFC64(seed).random_raw((count + 3) // 4)  # 4 x 16 bits per 64-bit word
        uniform = words.view(np.uint16)[:count].reshape(shape)
        threshold = (x * _RATE_LEVELS).round_().to(torch.int32).numpy()  # 0 .. 65536
        out = torch.empty(shape, dtype=torch.float32)
        np.less(uniform, threshold, out=out.numpy())  # broadcast over T; bool -> 0.0/1.0
        return out


class LatencyEncoder(SpikeEncoder):
    """Latency (time-to-first-spike) coding: one spike per lit pixel, brighter = earlier.

    Input: images (B, C, H, W), intensities in [0, 1] (unnormalised; values outside are clamped).
    Output: (T, B, C, H, W) float32 of 0/1. A pixel with intensity ``x > threshold`` spikes once,
    at step ``round((1 - x) * (T - 1))`` (``torch.round``, ties to even): x = 1 fires at step 0,
    x -> 0 at step T - 1; pixels at or below ``threshold`` (default 0: black) never fire. With
    T = 1 every lit pixel fires at step 0. Deterministic; ``generator`` is accepted and unused.
    """

    unit_interval = True

    def __init__(self, timesteps: int, threshold: float = 0.0):
        super().__init__(timesteps)
        self.threshold = float(threshold)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = images.detach().to(torch.float32).clamp(0.0, 1.0)
        step = ((1.0 - x) * (self.timesteps - 1)).round_()
        step.masked_fill_(x <= self.threshold, -1.0)  # never equal to a step index: no spike
        out = torch.empty((self.timesteps, *x.shape), dtype=torch.float32, device=x.device)
        if x.device.type == "cpu":  # one pass per step straight into float32: ~2x faster than a broadcast eq
            step_np, out_np = step.numpy(), out.numpy()
            for t in range(self.timesteps):
                np.equal(step_np, t, out=out_np[t])
            return out
        steps = torch.arange(self.timesteps, dtype=torch.float32, device=x.device).view(-1, *([1] * x.dim()))
        return torch.eq(steps, step, out=out)

    def extra_repr(self) -> str:
        return f"timesteps={self.timesteps}, threshold={self.threshold}"


def build_encoder(name: str, timesteps: int) -> SpikeEncoder:
    """The encoder called ``name`` (``direct``, ``rate`` or ``latency``) for ``timesteps`` steps.

    Raises:
        UserError: an unknown name or ``timesteps < 1``.
    """
    classes = {"direct": DirectEncoder, "rate": RateEncoder, "latency": LatencyEncoder}
    if name not in classes:
        raise UserError(f"data.encoder '{name}' is not a spike encoder; choose one of {', '.join(ENCODERS)}.")
    return classes[name](timesteps)
