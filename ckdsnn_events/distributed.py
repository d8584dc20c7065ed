"""Distributed data parallel helpers: process-group setup, rank-0 logic, batch norm over all ranks.

``torchrun --nproc_per_node N -m ckdsnn_events.cli distill ...`` starts N processes with RANK,
WORLD_SIZE and LOCAL_RANK in the environment; :func:`setup` joins them (gloo on CPU, nccl on CUDA).

Batch norm: a data-parallel run only trains the same model as one process with the global batch
if batch statistics are computed over the global batch. ``torch.nn.SyncBatchNorm`` does that on
CUDA only; :class:`GlobalBatchNorm2d` does it on any device with two all-reduces per layer (sums in
forward, gradient sums in backward), and :func:`convert_batchnorm` picks the right one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes in the environment; single process otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world_size, local_rank)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (in place when distributed); the identity in a single process."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor)
    return tensor


class _GlobalBatchNorm(torch.autograd.Function):
    """Training-mode batch norm over the union of all ranks' batches (per channel, dim 1)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        dims = [0] + list(range(2, x.dim()))
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        stats = torch.cat([x.sum(dims), (x * x).sum(dims), count])
        all_reduce_sum(stats)
        channels = x.shape[1]
        n = stats[-1]
        mean = stats[:channels] / n
        var = (stats[channels : 2 * channels] / n - mean * mean).clamp_min(0)
        invstd = torch.rsqrt(var + eps)
        shape = [1, channels] + [1] * (x.dim() - 2)
        xhat = (x - mean.view(shape)) * invstd.view(shape)
        ctx.save_for_backward(xhat, weight, invstd, n)
        ctx.dims = dims
        y = xhat * weight.view(shape) + bias.view(shape)
        return y, mean, var, n

    @staticmethod
    def backward(ctx, grad_y, _gm, _gv, _gn):
        xhat, weight, invstd, n = ctx.saved_tensors
        dims = ctx.dims
        channels = xhat.shape[1]
        shape = [1, channels] + [1] * (xhat.dim() - 2)
        local = torch.cat([grad_y.sum(dims), (grad_y * xhat).sum(dims)])
        grad_bias_local = local[:channels].clone()
        grad_weight_local = local[channels:].clone()
        all_reduce_sum(local)
        mean_dy = (local[:channels] / n).view(shape)
        mean_dy_xhat = (local[channels:] / n).view(shape)
        grad_x = (weight * invstd).view(shape) * (grad_y - mean_dy - xhat * mean_dy_xhat)
        # parameter gradients stay local: DDP averages them over ranks like every other parameter
        return grad_x, grad_weight_local, grad_bias_local, None


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training statistics span all ranks; works on CPU (gloo) and CUDA.

    In a single process it equals ``nn.BatchNorm2d`` (tested); in eval mode it is ``nn.BatchNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.track_running_stats and not self.training:
            return super().forward(x)
        y, mean, var, n = _GlobalBatchNorm.apply(x, self.weight, self.bias, self.eps)
        with torch.no_grad():
            self.num_batches_tracked += 1
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            unbiased = var * n / (n - 1).clamp_min(1)
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
            self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        return y


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace BatchNorm2d layers by their all-rank versions (SyncBatchNorm on CUDA)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, GlobalBatchNorm2d):
            replacement = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                            child.track_running_stats, device=child.weight.device)
            replacement.load_state_dict(child.state_dict())
            setattr(module, name, replacement)
        else:
            convert_batchnorm(child, device)
    return module
