"""Spiking students: the teachers' ResNets with LIF neurons, on time-major (T, B, C, H, W) input.

Layout (names as in the teachers, so conv/BN parameters line up with them)::

    conv1 -> bn1 -> lif                                    stem
    layer{i}.{j}: SpikingBasicBlock                        stages
    avgpool (nn.AdaptiveAvgPool2d(1)) -> flatten -> fc     head="linear": classifier per time step,
    logits = mean over T of the per-step fc outputs          then the mean over T
    avgpool -> flatten -> mean over T -> fc.fc2 -> fc.fc1  head="projector" (the released CKDSNN head)

``resnet20m`` (stem ``"triple"``) continues the stem with ``conv2 -> bn2 -> lif2 -> conv3 -> bn3 ->
lif3 -> stem_pool`` (``AvgPool2d(2)``: the first stage reads pooled spikes, real values).

Residual block: the spiking ResNet of tdBN (Zheng et al., AAAI 2021), as TET and CKDSNN's code
build it (currents are added before the output neuron, unlike SEW-ResNet's sum of spikes)::

    s_in (T, B, C, H, W) spikes
    out  = lif1(bn1(conv1(s_in)))
    out  = bn2(conv2(out)) + shortcut(s_in)      shortcut: identity, or downsample = 1x1 conv + BN
    s_out = lif2(out)                            the sum of two currents fires the block's output
                                                 (last_block="relu": relu2(out) in the very last
                                                 block, real-valued, as the released code)

How time is handled: convolutions and batch norms run once on the flattened (T*B, C, H, W)
batch (one big call instead of T small ones; BN statistics are taken over time and batch, as
tdBN does); only the LIF neurons step through time, each :class:`~.neurons.LIF` module called
once per forward on the whole (T, B, C, H, W) tensor. For an input that is constant in time
(stride 0 along T, an ``expand`` of one frame: direct encoding) the stem convolution and BN run
once on the (B, C, H, W) frame and are expanded over T, which gives the same values and gradients
as T identical copies (BN's batch mean and biased variance are the same over T copies). One
difference: BN's running variance uses the unbiased estimate over B*H*W instead of T*B*H*W
values, a relative difference below 1/(B*H*W).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Union

import torch
from torch import nn
from torchvision.models.resnet import conv3x3

from ckdsnn_events.models.arch import ArchOptions, ArchSpec
from ckdsnn_events.models.blocks import ProjectorHead, declare_real_valued_input, init_resnet_, shortcut, stem_conv
from ckdsnn_events.models.neuron_tracking import SpikeRecord, fire
from ckdsnn_events.models.neurons import LIF, LIFParameters
from ckdsnn_events.models.time_major import is_constant_in_time

__all__ = ["SpikingBasicBlock", "SpikingResNet"]

class SpikingBasicBlock(nn.Module):
    """conv-BN-LIF-conv-BN (+ shortcut) -> LIF (``relu=True``: ReLU) on (T, B, C, H, W) spikes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, neuron: LIFParameters,
                 downsample: str = "conv", relu: bool = False):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.lif1 = LIF(neuron)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = shortcut(in_channels, out_channels, stride, downsample)
        if relu:  # the released code's PreActBasicBlock(is_last=True)
            self.relu2 = nn.ReLU()
        else:
            self.lif2 = LIF(neuron)

    def forward(self, spikes: torch.Tensor, record: SpikeRecord = None) -> torch.Tensor:
        """spikes (T, B, C_in, H, W) -> spikes (T, B, C_out, H', W')."""
        steps, batch = spikes.shape[:2]
        flat = spikes.flatten(0, 1)
        out = fire(self.lif1, self.bn1(self.conv1(flat)).unflatten(0, (steps, batch)), record)
        out = self.bn2(self.conv2(out.flatten(0, 1)))
        out += flat if self.downsample is None else self.downsample(flat)  # BN keeps no output for backward
        return fire(self.relu2 if hasattr(self, "relu2") else self.lif2, out.unflatten(0, (steps, batch)), record)


class SpikingResNet(nn.Module):
    """A spiking ResNet student (see the module docstring for the layout).

    Attributes:
        fc: the head: ``nn.Linear(C_last, K)`` applied at every time step (``head="linear"``), or
            a :class:`~.blocks.ProjectorHead` applied once to the mean over T (``"projector"``);
            both have ``in_features`` (C_last) and ``out_features`` (K).
        spike_keys: names of the output modules in forward order (the keys of the spike record):
            ``"lif"`` (stem; ``"lif2"``, ``"lif3"`` for the triple stem), then
            ``"layer{i}.{j}.lif1"``, ``"layer{i}.{j}.lif2"`` per block; with
            ``last_block="relu"`` the last key is ``"layer{N}.{M}.relu2"``, a real-valued output.
        options: the :class:`~.arch.ArchOptions` it was built with, ``downsample`` resolved.
        stage_names: ``("layer1", ..., "layerN")``.
    """

    def __init__(self, spec: ArchSpec, num_classes: int, in_channels: int, width: Optional[int],
                 neuron: LIFParameters, options: ArchOptions = ArchOptions()):
        super().__init__()
        widths = spec.widths(width)
        self.arch = spec.name
        self.neuron = neuron
        self.options = options.resolved(spec)
        self.conv1 = stem_conv(in_channels, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.lif = LIF(neuron)
        self.triple_stem = spec.stem == "triple"
        if self.triple_stem:  # Guo et al.'s resnet20_cifar_modified stem, neurons for its ReLUs
            self.conv2, self.bn2, self.lif2 = stem_conv(widths[0], widths[0]), nn.BatchNorm2d(widths[0]), LIF(neuron)
            self.conv3, self.bn3, self.lif3 = stem_conv(widths[0], widths[0]), nn.BatchNorm2d(widths[0]), LIF(neuron)
            self.stem_pool = nn.AvgPool2d(2)
        self.stage_names = tuple(f"layer{i}" for i in range(1, len(widths) + 1))
        previous = widths[0]
        for name, channels, blocks, stride in zip(self.stage_names, widths, spec.blocks, spec.strides):
            stage = []
            for j in range(blocks):
                last = name == self.stage_names[-1] and j == blocks - 1
                stage.append(SpikingBasicBlock(previous, channels, stride if j == 0 else 1, neuron,
                                               self.options.downsample, relu=last and self.options.last_block == "relu"))
                previous = channels
            self.add_module(name, nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        if self.options.head == "projector":
            self.fc = ProjectorHead(widths[-1], num_classes)
        else:
            self.fc = nn.Linear(widths[-1], num_classes)
            if self.options.last_block == "relu":
                declare_real_valued_input(self.fc)  # it reads the pooled ReLU output
        if self.triple_stem:
            declare_real_valued_input(self.layer1[0].conv1)  # it reads the stem's pooled spikes
        init_resnet_(self)
        keys = []
        for name, module in self.named_modules():
            if isinstance(module, (LIF, nn.ReLU)):
                module.spike_key = name  # plain attribute: not part of the state_dict
                keys.append(name)
        self.spike_keys = tuple(keys)

    def _stem(self, x: torch.Tensor, record: SpikeRecord) -> torch.Tensor:
        """(T, B, C, H, W) input -> (T, B, C', H', W') stem output (spikes; pooled spikes for the
        triple stem)."""
        steps, batch = x.shape[:2]
        if is_constant_in_time(x):
            once = self.bn1(self.conv1(x[0]))
            current = once.expand(steps, *once.shape)
        else:
            current = self.bn1(self.conv1(x.flatten(0, 1))).unflatten(0, (steps, batch))
        spikes = fire(self.lif, current, record)
        if not self.triple_stem:
            return spikes
        for conv, bn, lif in ((self.conv2, self.bn2, self.lif2), (self.conv3, self.bn3, self.lif3)):
            spikes = fire(lif, bn(conv(spikes.flatten(0, 1))).unflatten(0, (steps, batch)), record)
        return self.stem_pool(spikes.flatten(0, 1)).unflatten(0, (steps, batch))

    def forward(
        self, x: torch.Tensor, return_spikes: bool = False
    ) -> Union[torch.Tensor, tuple[torch.Tensor, "OrderedDict[str, torch.Tensor]"]]:
        """Logits, and optionally the output of every LIF layer (and of a ReLU last block).

        Args:
            x: (T, B, C, H, W) float input, time-major (constant in time for direct encoding).
            return_spikes: also return the spikes.

        Returns:
            logits (B, K): the mean over T of the per-step classifier outputs (``head="linear"``)
            or the projector of the mean over T of the pooled features (``"projector"``); with
            ``return_spikes``, ``(logits, spikes)`` where ``spikes`` maps every name of
            :attr:`spike_keys` to its (T, B, C, H, W) output, in forward order: the last entry
            is the last block's output, the map SAMD reads (binary spikes, or the ReLU's real
            values with ``last_block="relu"``).
        """
        if x.dim() != 5:
            raise ValueError(f"a student takes time-major (T, B, C, H, W) input, got shape {tuple(x.shape)}")
        steps, batch = x.shape[:2]
        record: SpikeRecord = OrderedDict() if return_spikes else None
        spikes = self._stem(x, record)
        for name in self.stage_names:
            for block in getattr(self, name):
                spikes = block(spikes, record)
        # AvgPool as a module feeding the Linear through a view: the energy counter folds the pair
        pooled = torch.flatten(self.avgpool(spikes.flatten(0, 1)), 1)
        if isinstance(self.fc, ProjectorHead):  # mean over T first, as the released code
            logits = self.fc(pooled.unflatten(0, (steps, batch)).mean(0))
        else:
            logits = self.fc(pooled).unflatten(0, (steps, batch)).mean(0)
        return (logits, record) if return_spikes else logits
