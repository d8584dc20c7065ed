"""Spiking students: the teachers' ResNets with LIF neurons, on time-major (T, B, C, H, W) input.

Layout (names as in the teachers, so conv/BN parameters line up with them)::

    conv1 -> bn1 -> lif                                    stem
    layer{i}.{j}: SpikingBasicBlock                        stages
    avgpool (nn.AdaptiveAvgPool2d(1)) -> flatten -> fc     classifier, per time step
    logits = mean over T of the per-step fc outputs

Residual block: the spiking ResNet of tdBN (Zheng et al., AAAI 2021), as TET and CKDSNN's code
build it (currents are added before the output neuron, unlike SEW-ResNet's sum of spikes)::

    s_in (T, B, C, H, W) spikes
    out  = lif1(bn1(conv1(s_in)))
    out  = bn2(conv2(out)) + shortcut(s_in)      shortcut: identity, or downsample = 1x1 conv + BN
    s_out = lif2(out)                            the sum of two currents fires the block's output

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
from torchvision.models.resnet import conv1x1, conv3x3

from ckdsnn_events.data.batch import is_constant_in_time
from ckdsnn_events.models.neurons import LIF, LIFParameters
from ckdsnn_events.models.registry import ArchSpec
from ckdsnn_events.models.resnet import init_resnet_, stem_conv

__all__ = ["SpikingBasicBlock", "SpikingResNet"]

SpikeRecord = Optional["OrderedDict[str, torch.Tensor]"]


def _fire(lif: LIF, current: torch.Tensor, record: SpikeRecord) -> torch.Tensor:
    """Spikes of ``lif`` for (T, B, ...) ``current``; kept in ``record`` under the module's name."""
    spikes = lif(current)
    if record is not None:
        record[lif.spike_key] = spikes
    return spikes


class SpikingBasicBlock(nn.Module):
    """conv-BN-LIF-conv-BN (+ shortcut) -> LIF on (T, B, C, H, W) spikes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, neuron: LIFParameters):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.lif1 = LIF(neuron)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
        self.lif2 = LIF(neuron)

    def forward(self, spikes: torch.Tensor, record: SpikeRecord = None) -> torch.Tensor:
        """spikes (T, B, C_in, H, W) -> spikes (T, B, C_out, H', W')."""
        steps, batch = spikes.shape[:2]
        flat = spikes.flatten(0, 1)
        out = _fire(self.lif1, self.bn1(self.conv1(flat)).unflatten(0, (steps, batch)), record)
        out = self.bn2(self.conv2(out.flatten(0, 1)))
        out += flat if self.downsample is None else self.downsample(flat)  # BN keeps no output for backward
        return _fire(self.lif2, out.unflatten(0, (steps, batch)), record)


class SpikingResNet(nn.Module):
    """A spiking ResNet student (see the module docstring for the layout).

    Attributes:
        fc: the classifier ``nn.Linear(C_last, K)``, applied at every time step.
        spike_keys: names of the LIF modules in forward order (the keys of the spike record):
            ``"lif"`` (stem), then ``"layer{i}.{j}.lif1"``, ``"layer{i}.{j}.lif2"`` per block.
        stage_names: ``("layer1", ..., "layerN")``.
    """

    def __init__(self, spec: ArchSpec, num_classes: int, in_channels: int, width: Optional[int],
                 neuron: LIFParameters):
        super().__init__()
        widths = spec.widths(width)
        self.arch = spec.name
        self.neuron = neuron
        self.conv1 = stem_conv(in_channels, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.lif = LIF(neuron)
        self.stage_names = tuple(f"layer{i}" for i in range(1, len(widths) + 1))
        previous = widths[0]
        for name, channels, blocks, stride in zip(self.stage_names, widths, spec.blocks, spec.strides):
            stage = [SpikingBasicBlock(previous, channels, stride, neuron)]
            stage += [SpikingBasicBlock(channels, channels, 1, neuron) for _ in range(1, blocks)]
            self.add_module(name, nn.Sequential(*stage))
            previous = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        init_resnet_(self)
        keys = []
        for name, module in self.named_modules():
            if isinstance(module, LIF):
                module.spike_key = name  # plain attribute: not part of the state_dict
                keys.append(name)
        self.spike_keys = tuple(keys)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        """(T, B, C, H, W) input -> (T, B, C', H, W) stem currents (conv + BN)."""
        steps, batch = x.shape[:2]
        if is_constant_in_time(x):
            once = self.bn1(self.conv1(x[0]))
            return once.expand(steps, *once.shape)
        return self.bn1(self.conv1(x.flatten(0, 1))).unflatten(0, (steps, batch))

    def forward(
        self, x: torch.Tensor, return_spikes: bool = False
    ) -> Union[torch.Tensor, tuple[torch.Tensor, "OrderedDict[str, torch.Tensor]"]]:
        """Logits, and optionally the spikes of every LIF layer.

        Args:
            x: (T, B, C, H, W) float input, time-major (constant in time for direct encoding).
            return_spikes: also return the spikes.

        Returns:
            logits (B, K), the mean over T of the per-step classifier outputs; with
            ``return_spikes``, ``(logits, spikes)`` where ``spikes`` maps every name of
            :attr:`spike_keys` to its (T, B, C, H, W) binary spikes, in forward order: the last
            entry is the last block's output, the map SAMD reads.
        """
        if x.dim() != 5:
            raise ValueError(f"a student takes time-major (T, B, C, H, W) input, got shape {tuple(x.shape)}")
        steps, batch = x.shape[:2]
        record: SpikeRecord = OrderedDict() if return_spikes else None
        spikes = _fire(self.lif, self._stem(x), record)
        for name in self.stage_names:
            for block in getattr(self, name):
                spikes = block(spikes, record)
        # AvgPool as a module feeding the Linear through a view: the energy counter folds the pair
        pooled = self.avgpool(spikes.flatten(0, 1))
        logits = self.fc(torch.flatten(pooled, 1)).unflatten(0, (steps, batch)).mean(0)
        return (logits, record) if return_spikes else logits
