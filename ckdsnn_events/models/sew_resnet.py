"""SEW-ResNet (Fang et al., NeurIPS 2021), CKDSNN's ImageNet student: ``sew-resnet18/34/50``.

The layout of SpikingJelly's ``activation_based/model/sew_resnet.py`` (itself torchvision's ResNet
with spiking neurons), time-major, names as torchvision's so a torchvision ResNet's conv/BN/fc
weights load into it (the neurons hold no parameters)::

    conv1 -> bn1 -> sn1 -> maxpool          ImageNet stem: 7x7 stride 2, max-pool 3/2 (224 -> 56)
    layer1..layer4                          BasicBlocks [2,2,2,2] (18), [3,4,6,3] (34); Bottlenecks
                                            [3,4,6,3] (50), widths 64..512 (x4 for Bottlenecks)
    avgpool -> fc                           per time step, then the mean over T

SEW block (BasicBlock; Bottleneck alike with three convolutions)::

    out = sn2(bn2(conv2(sn1(bn1(conv1(s))))))
    identity = s, or downsample_sn(downsample(s)) where the shape changes (1x1 conv + BN + neuron)
    s_out = g(identity, out):  ADD  identity + out        integers 0, 1, 2, ... (not spikes)
                               AND  identity * out
                               IAND identity * (1 - out)

which is SpikingJelly's ``sew_function(identity, out, cnf)`` for BasicBlock (its Bottleneck passes
``(out, identity)``: the same for ADD and AND, and for IAND ``out * (1 - identity)``; kept here).

Neurons: SEW-ResNet's ImageNet runs use IF neurons (``IFNode``: no leak, threshold 1, hard reset to
0) with the ATan surrogate and ``detach_reset=True``: :data:`SEW_NEURON`, the default of
``SEWResNet`` and of the imagefolder recipe. ``cifar_stem=True`` replaces the stem by a 3x3 stride-1
convolution without max-pool (32 x 32 inputs), for tests and CPU runs.

Parameters: equal to torchvision's ResNet of the same depth (21,797,672 for SEW-ResNet-34 with
1000 classes): the neurons add none.

Energy: with ADD, the blocks' outputs are integers, and the next convolution accumulates each
input value ``k`` as ``k`` additions (counted so by the energy counter, never as MACs).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Optional, Union

import torch
from torch import nn
from torchvision.models.resnet import conv1x1, conv3x3

from ckdsnn_events.models.time_major import is_constant_in_time
from ckdsnn_events.models.neuron_tracking import SpikeRecord, fire, name_neurons, tracking
from ckdsnn_events.models.neurons import LIF, LIFParameters

__all__ = ["SEWResNet", "SEW_DEPTHS", "CONNECTS", "SEW_NEURON", "sew_connect"]

NeuronFactory = Callable[[LIFParameters], nn.Module]

CONNECTS = ("ADD", "AND", "IAND")
# IFNode(surrogate.ATan(), detach_reset=True): no leak, threshold 1, hard reset to 0
SEW_NEURON = LIFParameters(neuron="if", v_th=1.0, v_reset=0.0, reset="hard", surrogate="atan", detach_reset=True)
# depth -> (bottleneck?, blocks per stage)
SEW_DEPTHS: dict[int, tuple[bool, tuple[int, ...]]] = {
    18: (False, (2, 2, 2, 2)),
    34: (False, (3, 4, 6, 3)),
    50: (True, (3, 4, 6, 3)),
}


def sew_connect(identity: torch.Tensor, out: torch.Tensor, connect: str) -> torch.Tensor:
    """The element-wise connect function ``g`` of SEW blocks (see the module docstring)."""
    if connect == "ADD":
        return identity + out
    if connect == "AND":
        return identity * out
    return identity * (1.0 - out)


def _per_step(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a frame-wise module to (T, B, ...) by flattening time into the batch."""
    return module(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def _conv_bn(conv: nn.Module, bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``bn(conv(x))`` on (T, B, C, H, W), one call over all T*B frames."""
    return bn(conv(x.flatten(0, 1))).unflatten(0, x.shape[:2])


class SEWBlock(nn.Module):
    """A SEW BasicBlock (two 3x3 convolutions) or Bottleneck (1x1, 3x3, 1x1; expansion 4)."""

    def __init__(self, in_channels: int, planes: int, stride: int, bottleneck: bool, connect: str,
                 neuron: LIFParameters, make_neuron: NeuronFactory):
        super().__init__()
        self.bottleneck, self.connect = bottleneck, connect
        out_channels = planes * (4 if bottleneck else 1)
        if bottleneck:
            convs = [conv1x1(in_channels, planes), conv3x3(planes, planes, stride), conv1x1(planes, out_channels)]
        else:
            convs = [conv3x3(in_channels, planes, stride), conv3x3(planes, planes)]
        for i, conv in enumerate(convs, 1):
            self.add_module(f"conv{i}", conv)
            self.add_module(f"bn{i}", nn.BatchNorm2d(conv.out_channels))
            self.add_module(f"sn{i}", make_neuron(neuron))
        self.n_convs = len(convs)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
            self.downsample_sn = make_neuron(neuron)

    def forward(self, s: torch.Tensor, record: SpikeRecord = None) -> torch.Tensor:
        """s (T, B, C_in, H, W) spikes or spike counts -> (T, B, C_out, H', W')."""
        out = s
        for i in range(1, self.n_convs + 1):
            out = _conv_bn(getattr(self, f"conv{i}"), getattr(self, f"bn{i}"), out)
            out = fire(getattr(self, f"sn{i}"), out, record)
        identity = s if self.downsample is None else fire(self.downsample_sn, _per_step(self.downsample, s), record)
        if self.bottleneck:  # SpikingJelly's Bottleneck calls g(out, identity)
            return sew_connect(out, identity, self.connect)
        return sew_connect(identity, out, self.connect)


class SEWResNet(nn.Module):
    """A SEW-ResNet student: (T, B, C, H, W) -> logits (B, K).

    Args:
        depth: 18, 34 or 50.
        num_classes: K.
        in_channels: C.
        connect: "ADD" (default, as CKDSNN's SEW-ResNet-34), "AND" or "IAND".
        neuron: parameters of every neuron (IF by default).
        make_neuron: builds a neuron module from parameters (the backend).
        cifar_stem: 3x3 stride-1 stem without max-pool instead of the ImageNet stem.
        width: channels of the stem and the first stage (64; stages ``w, 2w, 4w, 8w``).

    Attributes:
        spike_keys: the neuron modules in forward order, then ``"layer4"``: the last stage's output
            (the record's last entry, the SAM source; integers with ADD).
        stage_names: ``("layer1", ..., "layer4")``.
    """

    def __init__(self, depth: int = 34, num_classes: int = 1000, in_channels: int = 3, connect: str = "ADD",
                 neuron: LIFParameters = SEW_NEURON, make_neuron: NeuronFactory = LIF, cifar_stem: bool = False,
                 width: int = 64):
        super().__init__()
        if depth not in SEW_DEPTHS:
            raise ValueError(f"SEW-ResNet depth must be one of {sorted(SEW_DEPTHS)}, got {depth}")
        if connect not in CONNECTS:
            raise ValueError(f"connect must be one of {CONNECTS}, got {connect!r}")
        make_neuron, built = tracking(make_neuron)
        bottleneck, blocks = SEW_DEPTHS[depth]
        self.arch, self.connect, self.neuron = f"sew-resnet{depth}", connect, neuron
        if cifar_stem:
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = None
        else:
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.sn1 = make_neuron(neuron)
        self.stage_names = ("layer1", "layer2", "layer3", "layer4")
        previous = width
        for name, planes, n, stride in zip(self.stage_names, [width * 2**i for i in range(4)], blocks, (1, 2, 2, 2)):
            stage = []
            for j in range(n):
                stage.append(SEWBlock(previous, planes, stride if j == 0 else 1, bottleneck, connect, neuron, make_neuron))
                previous = planes * (4 if bottleneck else 1)
            self.add_module(name, nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(previous, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for name, m in self.named_modules():
            # every layer after the stem may read an ADD sum (0, 1, 2, ...): counted as that many spikes
            if name != "conv1" and isinstance(m, (nn.Conv2d, nn.Linear, nn.AdaptiveAvgPool2d)):
                m.reads_spike_counts = True
        self.spike_keys = name_neurons(self, built) + ("layer4",)

    def _stem(self, x: torch.Tensor, record: SpikeRecord) -> torch.Tensor:
        steps = x.shape[0]
        if is_constant_in_time(x):  # direct encoding: the stem convolution once
            once = self.bn1(self.conv1(x[0]))
            current = once.expand(steps, *once.shape)
        else:
            current = _conv_bn(self.conv1, self.bn1, x)
        spikes = fire(self.sn1, current, record)
        return spikes if self.maxpool is None else _per_step(self.maxpool, spikes)

    def forward(
        self, x: torch.Tensor, return_spikes: bool = False
    ) -> Union[torch.Tensor, tuple[torch.Tensor, "OrderedDict[str, torch.Tensor]"]]:
        """Logits (B, K) = mean over T of ``fc(avgpool(last stage))``; with ``return_spikes`` the record.

        Args:
            x: (T, B, C, H, W) float input (224 x 224 for the ImageNet stem, 32 x 32 for the CIFAR one).
        """
        if x.dim() != 5:
            raise ValueError(f"a student takes time-major (T, B, C, H, W) input, got shape {tuple(x.shape)}")
        steps, batch = x.shape[:2]
        record: SpikeRecord = OrderedDict() if return_spikes else None
        s = self._stem(x, record)
        for name in self.stage_names:
            for block in getattr(self, name):
                s = block(s, record)
        if record is not None:
            record["layer4"] = s
        pooled = self.avgpool(s.flatten(0, 1))  # a pool module feeding the Linear: the counter folds the pair
        logits = self.fc(torch.flatten(pooled, 1)).unflatten(0, (steps, batch)).mean(0)
        return (logits, record) if return_spikes else logits
