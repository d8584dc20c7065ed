"""Pure counting functions: exact SOPs and MACs of one Conv/Linear call, and binary checks.

These are the arithmetic the counter (:mod:`ckdsnn_events.energy.counting`, whose docstring says
what is counted and why) applies per call; they hold no state. On CPU the binary check and the
per-position spike sums run as numba kernels over the input, elsewhere as torch reductions that
do not synchronise with the host.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# float32 sums of 0/1 values are exact while every partial sum stays below 2**24.
_EXACT_F32 = 1 << 24


def is_binary(x: torch.Tensor) -> torch.Tensor:
    """0-d bool tensor on ``x``'s device: True when every element of ``x`` is exactly 0 or 1.

    NaN, inf, 0.5, -1, 2 are not binary; -0.0 counts as 0. On CUDA this does not synchronise.
    """
    flat = _flat(x)
    if _numba_reads(flat):
        return torch.tensor(bool(_all_binary(flat.detach().numpy())))
    return torch.logical_and(flat != 0, flat != 1).any().logical_not()


def spike_map(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` (N, C, *S) over batch and channels: float64 (*S), exact for 0/1 inputs."""
    acc = torch.float64 if x.dtype == torch.float64 or x.shape[0] * x.shape[1] >= _EXACT_F32 else torch.float32
    return x.sum(dim=(0, 1), dtype=acc).to(torch.float64)



def is_spike_count(x: torch.Tensor) -> torch.Tensor:
    """0-d bool tensor: True when every element of ``x`` is a non-negative integer below 2**53.

    The values a sum of spike tensors takes (SEW ADD blocks, a transformer's residual stream):
    each unit is one spike arriving. NaN, inf, 0.5 and -1 are not counts.
    """
    flat = _flat(x)
    if _numba_reads(flat):
        return torch.tensor(bool(_all_counts(flat.detach().numpy())))
    return torch.logical_and(flat >= 0, flat == torch.floor(flat)).logical_and(flat < _MAX_COUNT).all()


def spike_stats(x: torch.Tensor, counts: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(is_binary(x), spike_map(x))`` of ``x`` (N, C, *S); the map is only valid when binary.

    With ``counts``, ``is_spike_count`` replaces ``is_binary`` (and the map is exact in float64).
    On CPU one numba pass does both and stops at the first non-binary row; on other devices
    these are two reductions without host synchronisation.
    """
    if x.numel() and x.is_contiguous() and _numba_reads(x):
        rows = x.shape[0] * x.shape[1]
        per_position = np.zeros(x[0, 0].numel(), dtype=np.float64)
        kernel = _column_sums_if_counts if counts else _column_sums_if_binary
        ok = kernel(x.detach().reshape(rows, -1).numpy(), per_position)
        return torch.tensor(bool(ok)), torch.from_numpy(per_position).reshape(x.shape[2:])
    if counts:
        return is_spike_count(x), x.sum(dim=(0, 1), dtype=torch.float64)
    return is_binary(x), spike_map(x)


def nonzero_products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Terms ``a[..., n, k] * b[..., k, m]`` of ``a @ b`` with both factors non-zero: 0-d float64.

    For binary ``a`` and ``b`` these are the AND-accumulates of the product (each pair of
    coincident spikes adds one); for a spike-count ``a`` and binary ``b`` each term adds the
    integer ``a[n, k]`` once. Computed as ``sum_k (#n: a != 0) * (#m: b != 0)`` per batch entry.
    """
    rows = (a != 0).sum(dim=-2, dtype=torch.float64)  # (..., K)
    cols = (b != 0).sum(dim=-1, dtype=torch.float64)  # (..., K)
    return (rows * cols).sum()


def _numba_reads(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


# Branch-free inner loops (LLVM vectorises them); the early exits only run between blocks/rows.
_BLOCK = 4096


@numba.njit(cache=True, nogil=True)
def _all_binary(flat):  # pragma: no cover - compiled
    n = flat.shape[0]
    for start in range(0, n, _BLOCK):
        bad = False
        for i in range(start, min(start + _BLOCK, n)):
            v = flat[i]
            bad |= (v != 0.0) & (v != 1.0)
        if bad:
            return False
    return True


_MAX_COUNT = float(1 << 53)


@numba.njit(inline="always")
def _not_count(v):  # pragma: no cover - compiled
    return ~((v >= 0.0) & (v < _MAX_COUNT) & (v == np.floor(v)))


@numba.njit(cache=True, nogil=True)
def _all_counts(flat):  # pragma: no cover - compiled
    n = flat.shape[0]
    for start in range(0, n, _BLOCK):
        bad = False
        for i in range(start, min(start + _BLOCK, n)):
            v = flat[i]
            bad |= _not_count(v)
        if bad:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _column_sums_if_counts(x, out):  # pragma: no cover - compiled
    """Adds the column sums of ``x`` (R, P) to ``out`` (P,); False at the first row holding a non-count."""
    rows, cols = x.shape
    for r in range(rows):
        bad = False
        for p in range(cols):
            v = x[r, p]
            bad |= _not_count(v)
            out[p] += v
        if bad:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _column_sums_if_binary(x, out):  # pragma: no cover - compiled
    """Adds the column sums of ``x`` (R, P) to ``out`` (P,); False at the first non-binary row."""
    rows, cols = x.shape
    for r in range(rows):
        bad = False
        for p in range(cols):
            v = x[r, p]
            bad |= (v != 0.0) & (v != 1.0)
            out[p] += v
        if bad:
            return False
    return True


def conv_coverage(conv: nn.Module, spatial_shape: tuple[int, ...], device=None) -> torch.Tensor:
    """For each input position of ``conv``, how many (output position, kernel tap) pairs read it.

    Args:
        conv: an ``nn.Conv1d/2d/3d`` (its kernel size, stride, padding, dilation, padding mode).
        spatial_shape: the input's spatial size, e.g. (H, W).

    Returns:
        float64 tensor of ``spatial_shape`` holding integers: a spike at position ``p`` of any
        input channel reaches ``coverage[p] * out_channels / groups`` synapses.
    """
    conv_fn = (F.conv1d, F.conv2d, F.conv3d)[len(spatial_shape) - 1]
    # Autograd needs to be on even when counting runs under no_grad or inference_mode.
    with torch.inference_mode(False), torch.enable_grad():
        ones = torch.ones((1, 1, *spatial_shape), dtype=torch.float64, device=device, requires_grad=True)
        kernel = torch.ones((1, 1, *conv.kernel_size), dtype=torch.float64, device=device)
        if conv.padding_mode == "zeros":
            out = conv_fn(ones, kernel, None, conv.stride, conv.padding, conv.dilation)
        else:
            padded = F.pad(ones, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
            out = conv_fn(padded, kernel, None, conv.stride, 0, conv.dilation)
        (coverage,) = torch.autograd.grad(out.sum(), ones)
    return coverage[0, 0]


def pool_coverage_mask(pool: nn.Module, spatial_shape: tuple[int, ...], device=None) -> torch.Tensor:
    """float64 0/1 tensor of ``spatial_shape``: 1 where some window of the average ``pool`` reads."""
    with torch.inference_mode(False), torch.enable_grad():
        ones = torch.ones((1, 1, *spatial_shape), dtype=torch.float64, device=device, requires_grad=True)
        # .forward, not __call__: no hooks (the counter's own included)
        (weight,) = torch.autograd.grad(pool.forward(ones).sum(), ones)
    return (weight > 0).to(torch.float64)


def exact_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of all of ``x`` as a 0-d float64 tensor, exact for 0/1 inputs of any size."""
    if x.dtype == torch.float64:
        return x.sum()
    if x.numel() < _EXACT_F32:
        return x.sum(dtype=torch.float32).to(torch.float64)
    chunks = _flat(x).split(_EXACT_F32 // 2)
    return torch.stack([chunk.sum(dtype=torch.float32) for chunk in chunks]).to(torch.float64).sum()


def conv_sops(spikes: torch.Tensor, conv: nn.Module) -> torch.Tensor:
    """Exact accumulates of ``conv`` on binary ``spikes`` (N, C_in, *S): 0-d float64 tensor.

    For non-negative integer inputs (event counts) it counts each unit as one spike.
    """
    coverage = conv_coverage(conv, tuple(spikes.shape[2:]), spikes.device)
    return (spike_map(spikes) * coverage).sum() * (conv.out_channels // conv.groups)


def linear_sops(spikes: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """Exact accumulates of ``linear`` on binary ``spikes`` (..., in_features): 0-d float64."""
    return exact_sum(spikes) * linear.out_features


def conv_macs(conv: nn.Module, output_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one ``conv`` call producing ``output_shape`` (bias adds excluded)."""
    return math.prod(output_shape) * (conv.in_channels // conv.groups) * math.prod(conv.kernel_size)


def linear_macs(linear: nn.Linear, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one ``linear`` call on ``input_shape`` (..., in_features)."""
    return math.prod(input_shape) * linear.out_features


def _flat(x: torch.Tensor) -> torch.Tensor:
    """All elements of ``x`` as a 1-D tensor, a view whenever the memory is dense."""
    if x.is_contiguous():
        return x.view(-1)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1).reshape(-1)
    return x.reshape(-1)


def spike_fed(module: nn.Module) -> bool:
    """False for a layer its model declares real-valued (``module.real_valued_input = True``)."""
    return not getattr(module, "real_valued_input", False)


def reads_counts(module: nn.Module) -> bool:
    """True for layers an architecture marked as reading sums of spikes (``reads_spike_counts``):
    their non-negative integer inputs count as that many spikes each, not as real values."""
    return bool(getattr(module, "reads_spike_counts", False))
