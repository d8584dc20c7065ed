"""Spikformer (Zhou et al., ICLR 2023) as the CIFAR student of CKDSNN: ``spikformer-4-384``.

Built as the CIFAR model of the authors' code (github.com/ZK-Zhou/spikformer, ``cifar10/model.py``),
time-major throughout; names follow that code so its parameters map one to one::

    x (T, B, C, 32, 32)
    SPS tokenizer   proj_conv -> proj_bn -> proj_lif            C    -> D/8   32 x 32
                    proj_conv1 -> proj_bn1 -> proj_lif1         D/8  -> D/4   32 x 32
                    proj_conv2 -> proj_bn2 -> proj_lif2 -> maxpool2  D/4 -> D/2  -> 16 x 16
                    proj_conv3 -> proj_bn3 -> proj_lif3 -> maxpool3  D/2 -> D    ->  8 x 8
                    x = x + rpe_lif(rpe_bn(rpe_conv(x)))        relative position embedding
    tokens (T, B, N = 64, D)
    block x depth   x = x + SSA(x);  x = x + MLP(x)
    SSA             q, k, v = LIF(BN1d(Linear(x))) each, split into ``heads`` heads of D / heads
                    y = attn_lif((q k^T) v * 0.125)             no softmax; attn_lif threshold 0.5
                    out = proj_lif(proj_bn(proj_linear(y)))
    MLP             fc2_lif(fc2_bn(fc2_linear(fc1_lif(fc1_bn(fc1_linear(x))))))   D -> ratio*D -> D
    head            logits = mean over T of fc(mean over tokens of x)  (the original: its ``head`` of the
                    mean over T; the same, head being linear)

``MaxPool2d(3, 2, 1)`` after the third and fourth convolutions turns 32 x 32 into 8 x 8 = 64 tokens.

Neurons: every LIF is SpikingJelly's ``MultiStepLIFNode(tau=2.0, detach_reset=True)`` in the
original (hard reset to 0, threshold 1, the attention LIF 0.5, sigmoid surrogate with alpha 4).
That node charges ``H = V + (X - V) / tau`` (``decay_input=True``): our LIF, ``u = decay*v + x``
with ``decay = 1 - 1/tau``, fed ``X / tau``; :attr:`Spikformer.input_scale` (``1 - decay``) applies
that factor to every current so the dynamics are the original's, not only its look-alike.

Parameters (``spikformer-4-384``, CIFAR-100): 9,359,380. The paper and Spikformer's table give
9.32 M, which is the CIFAR-10 model without the two LayerNorms per block that the original code
creates but never calls: 9,324,730 here for 10 classes. Those unused LayerNorms (1,536 parameters
per block) are not built.

Saliency (SAMD): the student map is the last block's output ``x`` (the sum of the residual stream,
non-negative integers, what the head reads) reshaped to the 8 x 8 token grid, summed over T and
channels like every spike map; the record's last entry holds it as (T, B, D, 8, 8).

Energy: every Linear reads a sum of spike tensors (integers >= 0: the residual stream), counted as
accumulations weighted by the value; the two attention products are :class:`SpikeMatMul` modules
that the counter counts as AND-accumulates (see :mod:`ckdsnn_events.energy`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Optional, Union

import torch
from torch import nn

from ckdsnn_events.models.neurons import LIF, LIFParameters
from ckdsnn_events.models.neuron_tracking import SpikeRecord, fire, name_neurons, tracking
from ckdsnn_events.models.time_major import is_constant_in_time

__all__ = ["Spikformer", "SpikeMatMul", "SPIKFORMER_NEURON"]

NeuronFactory = Callable[[LIFParameters], nn.Module]

# MultiStepLIFNode(tau=2.0, detach_reset=True): decay 1 - 1/tau, hard reset to 0, threshold 1,
# SpikingJelly's default surrogate Sigmoid(alpha=4)
SPIKFORMER_NEURON = LIFParameters(decay=0.5, v_th=1.0, v_reset=0.0, reset="hard", surrogate="sigmoid",
                                  detach_reset=True)


class SpikeMatMul(nn.Module):
    """``a @ b`` of spike (or spike-count) matrices, a module so the energy counter sees its inputs."""

    synaptic_matmul = True  # the energy counter counts its non-zero products as accumulates

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b


def _fire(lif: nn.Module, current: torch.Tensor, scale: float, record: SpikeRecord) -> torch.Tensor:
    """:func:`fire` of the current scaled by ``scale`` (SpikingJelly's decay_input)."""
    return fire(lif, current * scale if scale != 1.0 else current, record)


class _LinearBN(nn.Module):
    """Linear then BatchNorm1d over the feature axis, on (T*B, N, C) tokens."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.bn = nn.BatchNorm1d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.linear(x).transpose(1, 2)).transpose(1, 2)


class SpikingSelfAttention(nn.Module):
    """SSA: spike q, k, v; ``(q k^T) v * scale`` without softmax; spiking projection."""

    def __init__(self, dim: int, heads: int, neuron: LIFParameters, make_neuron: NeuronFactory,
                 scale: float = 0.125, attn_threshold: float = 0.5):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.scale = heads, scale
        self.q, self.k, self.v = _LinearBN(dim, dim), _LinearBN(dim, dim), _LinearBN(dim, dim)
        self.q_lif, self.k_lif, self.v_lif = make_neuron(neuron), make_neuron(neuron), make_neuron(neuron)
        self.qk = SpikeMatMul()
        self.av = SpikeMatMul()
        attn_neuron = replace(neuron, v_th=attn_threshold)
        self.attn_lif = make_neuron(attn_neuron)
        self.proj = _LinearBN(dim, dim)
        self.proj_lif = make_neuron(neuron)

    def forward(self, x: torch.Tensor, input_scale: float, record: SpikeRecord) -> torch.Tensor:
        """x (T, B, N, D) -> spikes (T, B, N, D)."""
        steps, batch, n, dim = x.shape
        flat = x.flatten(0, 1)

        def heads(linear: nn.Module, lif: nn.Module) -> torch.Tensor:
            s = _fire(lif, linear(flat).unflatten(0, (steps, batch)), input_scale, record)
            return s.unflatten(-1, (self.heads, dim // self.heads)).transpose(2, 3)  # (T, B, h, N, d)

        q, k, v = heads(self.q, self.q_lif), heads(self.k, self.k_lif), heads(self.v, self.v_lif)
        y = self.av(self.qk(q, k.transpose(-2, -1)), v) * self.scale  # (T, B, h, N, d)
        y = _fire(self.attn_lif, y.transpose(2, 3).reshape(steps, batch, n, dim), input_scale, record)
        return _fire(self.proj_lif, self.proj(y.flatten(0, 1)).unflatten(0, (steps, batch)), input_scale, record)


class SpikingMLP(nn.Module):
    """Linear-BN-LIF twice, ``D -> hidden -> D``, on (T, B, N, D) tokens."""

    def __init__(self, dim: int, hidden: int, neuron: LIFParameters, make_neuron: NeuronFactory):
        super().__init__()
        self.fc1, self.fc1_lif = _LinearBN(dim, hidden), make_neuron(neuron)
        self.fc2, self.fc2_lif = _LinearBN(hidden, dim), make_neuron(neuron)

    def forward(self, x: torch.Tensor, input_scale: float, record: SpikeRecord) -> torch.Tensor:
        steps, batch = x.shape[:2]
        h = _fire(self.fc1_lif, self.fc1(x.flatten(0, 1)).unflatten(0, (steps, batch)), input_scale, record)
        return _fire(self.fc2_lif, self.fc2(h.flatten(0, 1)).unflatten(0, (steps, batch)), input_scale, record)


class SpikformerBlock(nn.Module):
    """``x + SSA(x)``, then ``+ MLP``: (T, B, N, D) -> (T, B, N, D), integer-valued (sums of spikes)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, neuron: LIFParameters, make_neuron: NeuronFactory):
        super().__init__()
        self.attn = SpikingSelfAttention(dim, heads, neuron, make_neuron)
        self.mlp = SpikingMLP(dim, int(dim * mlp_ratio), neuron, make_neuron)

    def forward(self, x: torch.Tensor, input_scale: float, record: SpikeRecord) -> torch.Tensor:
        x = x + self.attn(x, input_scale, record)
        return x + self.mlp(x, input_scale, record)


class Spikformer(nn.Module):
    """Spikformer on time-major images or frames: (T, B, C, H, W) -> logits (B, K).

    Args:
        num_classes: K.
        in_channels: C (3 for images, 2 for event frames).
        dim: embedding width D (384 for Spikformer-4-384); must be divisible by 8 and ``heads``.
        depth: encoder blocks (4).
        heads: attention heads (12).
        mlp_ratio: hidden width of the MLP over D (4).
        neuron: LIF parameters of every neuron but the attention LIF, whose threshold is 0.5.
        make_neuron: builds a neuron module from parameters (the backend).
        decay_input: SpikingJelly's ``decay_input`` (currents scaled by ``1 - decay``).

    Attributes:
        spike_keys: names of the neuron modules in forward order, then ``"blocks.<depth-1>"``, the
            last block's output as (T, B, D, H/4, W/4): the record's last entry, the SAM source.
        stage_names: ``("patch_embed", "blocks.0", ...)``.
    """

    def __init__(self, num_classes: int = 100, in_channels: int = 3, dim: int = 384, depth: int = 4,
                 heads: int = 12, mlp_ratio: float = 4.0, neuron: LIFParameters = SPIKFORMER_NEURON,
                 make_neuron: NeuronFactory = LIF, decay_input: bool = True):
        super().__init__()
        if dim % 8:
            raise ValueError(f"dim must be divisible by 8, got {dim}")
        make_neuron, created = tracking(make_neuron)
        self.neuron = neuron
        self.input_scale = (1.0 - neuron.decay) if decay_input and neuron.decay < 1 else 1.0
        widths = (dim // 8, dim // 4, dim // 2, dim)
        previous = in_channels
        for i, width in enumerate(widths):
            suffix = "" if i == 0 else str(i)
            self.add_module(f"proj_conv{suffix}", nn.Conv2d(previous, width, 3, 1, 1, bias=False))
            self.add_module(f"proj_bn{suffix}", nn.BatchNorm2d(width))
            self.add_module(f"proj_lif{suffix}", make_neuron(neuron))
            previous = width
        self.maxpool2 = nn.MaxPool2d(3, 2, 1)
        self.maxpool3 = nn.MaxPool2d(3, 2, 1)
        self.rpe_conv = nn.Conv2d(dim, dim, 3, 1, 1, bias=False)
        self.rpe_bn = nn.BatchNorm2d(dim)
        self.rpe_lif = make_neuron(neuron)
        self.blocks = nn.ModuleList(SpikformerBlock(dim, heads, mlp_ratio, neuron, make_neuron) for _ in range(depth))
        self.token_pool = nn.AdaptiveAvgPool1d(1)  # mean over tokens, a module the energy counter folds
        self.fc = nn.Linear(dim, num_classes)  # the original's ``head``; ``fc`` like every student here
        self._init_weights()
        for name, m in self.named_modules():
            # the residual stream is a sum of spike tensors (0, 1, 2, ...): counted as that many spikes
            if name != "proj_conv" and isinstance(m, (nn.Conv2d, nn.Linear, nn.AdaptiveAvgPool1d)):
                m.reads_spike_counts = True
        self.spike_keys = name_neurons(self, created) + (f"blocks.{depth - 1}",)
        self.stage_names = ("patch_embed",) + tuple(f"blocks.{i}" for i in range(depth))

    def _init_weights(self) -> None:
        # as the original: truncated-normal Linear weights (std 0.02), zero biases; convolutions and
        # BN keep PyTorch's defaults there, and so here
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def _conv(self, i: int, x: torch.Tensor, record: SpikeRecord) -> torch.Tensor:
        """Tokenizer stage ``i``: (T, B, C, H, W) -> spikes (T, B, C', H, W)."""
        suffix = "" if i == 0 else str(i)
        conv, bn = getattr(self, f"proj_conv{suffix}"), getattr(self, f"proj_bn{suffix}")
        steps, batch = x.shape[:2]
        if i == 0 and is_constant_in_time(x):  # direct encoding: the first conv once
            once = bn(conv(x[0]))
            current = once.expand(steps, *once.shape)
        else:
            current = bn(conv(x.flatten(0, 1))).unflatten(0, (steps, batch))
        return _fire(getattr(self, f"proj_lif{suffix}"), current, self.input_scale, record)

    def _pool(self, pool: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return pool(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def tokens(self, x: torch.Tensor, record: SpikeRecord = None) -> torch.Tensor:
        """SPS: (T, B, C, H, W) -> (T, B, D, H/4, W/4), the sum of the features and their position embedding."""
        x = self._conv(0, x, record)
        x = self._conv(1, x, record)
        x = self._pool(self.maxpool2, self._conv(2, x, record))
        feat = self._pool(self.maxpool3, self._conv(3, x, record))
        steps, batch = feat.shape[:2]
        rpe = self.rpe_bn(self.rpe_conv(feat.flatten(0, 1))).unflatten(0, (steps, batch))
        return feat + _fire(self.rpe_lif, rpe, self.input_scale, record)

    def forward(
        self, x: torch.Tensor, return_spikes: bool = False
    ) -> Union[torch.Tensor, tuple[torch.Tensor, "OrderedDict[str, torch.Tensor]"]]:
        """Logits (B, K), and with ``return_spikes`` the record (see :attr:`spike_keys`).

        Args:
            x: (T, B, C, H, W) float input, H and W divisible by 4 (32 x 32 gives 64 tokens).
        """
        if x.dim() != 5:
            raise ValueError(f"a student takes time-major (T, B, C, H, W) input, got shape {tuple(x.shape)}")
        record: SpikeRecord = OrderedDict() if return_spikes else None
        grid = self.tokens(x, record)  # (T, B, D, h, w)
        steps, batch, dim, h, w = grid.shape
        tokens = grid.flatten(3).transpose(2, 3)  # (T, B, N, D)
        for block in self.blocks:
            tokens = block(tokens, self.input_scale, record)
        if record is not None:
            record[self.spike_keys[-1]] = tokens.transpose(2, 3).reshape(steps, batch, dim, h, w)
        pooled = self.token_pool(tokens.flatten(0, 1).transpose(1, 2))  # (T*B, D, 1)
        logits = self.fc(torch.flatten(pooled, 1)).unflatten(0, (steps, batch)).mean(0)
        return (logits, record) if return_spikes else logits
