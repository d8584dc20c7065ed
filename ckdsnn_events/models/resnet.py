"""ANN teachers: ResNet-18 (torchvision's, adapted to small inputs), ResNet-19, the ResNet-20s.

Every teacher is a :class:`ResNetTeacher` whose parts are torchvision's: ResNet-18 at its own
width is ``torchvision.models.resnet18(num_classes=K)`` with the 7x7 stride-2 stem replaced by a
3x3 stride-1 convolution and the max-pool dropped (the CIFAR adaptation; both would shrink a
32x32 or 48x48 input 4x before the first block); the other architectures (and ResNet-18 at other
widths) are stages of ``torchvision.models.resnet.BasicBlock`` assembled the way torchvision's
``ResNet._make_layer`` does it. Parameter names are torchvision's (``conv1``, ``bn1``,
``layer1.0.conv1``, ``...downsample.0``, ``fc``), so an adapted torchvision ResNet-18's
``state_dict`` loads into the ResNet-18 teacher and back. ``downsample="avgpool"`` swaps the
shortcut for :func:`.blocks.shortcut`'s AvgPool -> 1x1 conv -> BN (the released CKDSNN teacher's,
``ann_models/resnet.py``); the ``triple`` stem of ``resnet20m`` adds ``conv2/bn2``, ``conv3/bn3``
(each followed by a ReLU) and ``stem_pool = AvgPool2d(2)`` after ``conv1/bn1``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Optional, Union

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock

from ckdsnn_events.models.arch import ArchOptions, ArchSpec
from ckdsnn_events.models.blocks import init_resnet_, shortcut, stem_conv

__all__ = ["ResNetTeacher", "build_resnet_teacher", "torchvision_teacher"]


class ResNetTeacher(nn.Module):
    """stem (conv1, bn1, relu [, conv2, bn2, relu, conv3, bn3, relu, stem_pool]) -> layer1..layerN
    -> avgpool -> fc.

    Attributes:
        fc: the classifier, ``nn.Linear(C_last, K)``; ``fc.weight`` (K, C_last) gives the CAM.
        stage_names: ``("layer1", ..., "layerN")``.
    """

    def __init__(self, conv1: nn.Conv2d, bn1: nn.BatchNorm2d, stages: Sequence[nn.Sequential], fc: nn.Linear,
                 triple_stem: bool = False, maxpool: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = conv1
        self.bn1 = bn1
        self.relu = nn.ReLU(inplace=True)
        self.triple_stem = triple_stem
        if triple_stem:  # Guo et al.'s resnet20_cifar_modified: two more conv-BN-ReLU, then a 2x2 pool
            width = conv1.out_channels
            self.conv2, self.bn2 = stem_conv(width, width), nn.BatchNorm2d(width)
            self.conv3, self.bn3 = stem_conv(width, width), nn.BatchNorm2d(width)
            self.stem_pool = nn.AvgPool2d(2)
        self.maxpool = maxpool  # torchvision's ImageNet stem only
        self.stage_names = tuple(f"layer{i}" for i in range(1, len(stages) + 1))
        for name, stage in zip(self.stage_names, stages):
            self.add_module(name, stage)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = fc

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> Union[torch.Tensor, tuple[torch.Tensor, "OrderedDict[str, torch.Tensor]"]]:
        """Logits, and optionally every stage's output.

        Args:
            x: (B, C, H, W) images or accumulated event frames.
            return_features: also return the stage outputs.

        Returns:
            logits (B, K); with ``return_features``, ``(logits, features)`` where ``features``
            maps ``"layer1"``, ..., ``"layerN"`` to (B, C_i, H_i, W_i), in order: the last entry
            is the final feature map before global average pooling (the CAM's input).
        """
        features: OrderedDict[str, torch.Tensor] = OrderedDict()
        x = self.relu(self.bn1(self.conv1(x)))
        if self.triple_stem:
            x = self.relu(self.bn2(self.conv2(x)))
            x = self.stem_pool(self.relu(self.bn3(self.conv3(x))))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if return_features:
                features[name] = x
        logits = self.fc(torch.flatten(self.avgpool(x), 1))
        return (logits, features) if return_features else logits


def make_stage(in_channels: int, out_channels: int, blocks: int, stride: int, downsample_kind: str = "conv") -> nn.Sequential:
    """``blocks`` torchvision BasicBlocks, as ``torchvision.models.ResNet._make_layer`` builds them."""
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = shortcut(in_channels, out_channels, stride, downsample_kind)
    layers = [BasicBlock(in_channels, out_channels, stride, downsample)]
    layers += [BasicBlock(out_channels, out_channels) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _torchvision_resnet18(num_classes: int, in_channels: int) -> ResNetTeacher:
    """``torchvision.models.resnet18`` with a 3x3 stride-1 stem and no max-pool."""
    tv = torchvision.models.resnet18(num_classes=num_classes)
    conv1 = stem_conv(in_channels, tv.conv1.out_channels)
    nn.init.kaiming_normal_(conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision's stem
    return ResNetTeacher(conv1, tv.bn1, [tv.layer1, tv.layer2, tv.layer3, tv.layer4], tv.fc)


def build_resnet_teacher(spec: ArchSpec, num_classes: int, in_channels: int, width: Optional[int],
                         options: ArchOptions = ArchOptions()) -> ResNetTeacher:
    """The teacher of ``spec`` (arguments already checked by :func:`~.registry.build_teacher`).

    Of ``options`` only ``downsample`` applies (a teacher has ReLUs and the linear head throughout).
    """
    options = ArchOptions(downsample=options.resolved(spec).downsample)  # the rest are the student's
    downsample = options.downsample
    if spec.name == "resnet18" and width in (None, spec.base_width) and downsample == "conv":
        model = _torchvision_resnet18(num_classes, in_channels)
    else:
        widths = spec.widths(width)
        stages, previous = [], widths[0]
        for channels, blocks, stride in zip(widths, spec.blocks, spec.strides):
            stages.append(make_stage(previous, channels, blocks, stride, downsample))
            previous = channels
        model = ResNetTeacher(stem_conv(in_channels, widths[0]), nn.BatchNorm2d(widths[0]), stages,
                              nn.Linear(widths[-1], num_classes), triple_stem=spec.stem == "triple")
        init_resnet_(model)
    model.options = options  # plain attribute (not in the state_dict), recorded in checkpoints
    return model


def torchvision_teacher(depth: int, num_classes: int, in_channels: int) -> ResNetTeacher:
    """``torchvision.models.resnet{depth}(num_classes=K)`` unchanged (7x7 stride-2 stem, max-pool),
    as a :class:`ResNetTeacher`; its ``state_dict`` keys are torchvision's, so torchvision weights
    load as they are. ``in_channels != 3`` replaces the stem convolution by one of that many inputs."""
    tv = getattr(torchvision.models, f"resnet{depth}")(num_classes=num_classes)
    conv1 = tv.conv1
    if in_channels != 3:
        conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(conv1.weight, mode="fan_out", nonlinearity="relu")
    return ResNetTeacher(conv1, tv.bn1, [tv.layer1, tv.layer2, tv.layer3, tv.layer4], tv.fc, maxpool=tv.maxpool)
