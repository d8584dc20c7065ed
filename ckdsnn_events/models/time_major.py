"""The one test of "this time-major tensor is one step repeated", used by the models and the data.

It lives at the bottom of :mod:`ckdsnn_events.models` (which depends on nothing else of the
library but :mod:`ckdsnn_events.errors`), so that :mod:`ckdsnn_events.data` can use it without
the models importing the data package.
"""

from __future__ import annotations

import torch

__all__ = ["is_constant_in_time"]


def is_constant_in_time(inputs: torch.Tensor) -> bool:
    """True for (T, ...) tensors made by expanding one time step (stride 0 along T, T > 1).

    Direct encoding expands one (B, C, H, W) image over T without copying; a student then runs
    its stem once and a LIF layer reads the step once (no T-fold copy).
    """
    return inputs.dim() > 1 and inputs.shape[0] > 1 and inputs.stride(0) == 0
