"""Architectures by name, argument checks, and the two constructors the rest of the code calls.

Three ResNets, each as an ANN teacher (:mod:`.resnet`) and a spiking student
(:mod:`.spiking_resnet`) of the same topology:

==========  ============  =============  ===========  ==============================================
name        blocks        widths         strides      source
==========  ============  =============  ===========  ==============================================
resnet18    2, 2, 2, 2    w, 2w, 4w, 8w  1, 2, 2, 2   torchvision ResNet-18, 3x3 stride-1 stem, no
            (w = 64)                                  max-pool (the usual CIFAR adaptation)
resnet19    3, 3, 2       w, 2w, 4w      1, 2, 2      ResNet-19 of the SNN literature (tdBN, Zheng
            (w = 128)                                 et al. 2021; TET; CKDSNN), one classifier
resnet20    3, 3, 3       w, 2w, 4w      1, 2, 2      CIFAR ResNet-20 (He et al. 2016, Sec. 4.2)
            (w = 16)                                  as CKDSNN's code builds it
==========  ============  =============  ===========  ==============================================

All three: 3x3 stride-1 stem convolution to ``w`` channels + BN + nonlinearity, stages of
BasicBlocks (two 3x3 convolutions), projection shortcut (1x1 convolution with the block's stride
+ BN, torchvision's ``downsample``) where the shape changes, global average pooling, one linear
classifier ``fc`` on ``4w`` (``8w`` for resnet18) channels. ``width`` sets ``w``.

ResNet-20: He et al.'s CIFAR ResNet-20 (16/32/64 channels, 3 stages of 3 BasicBlocks: 1 + 18
convolutions + 1 linear = 20 weight layers) is the ResNet-20 that SNN distillation papers train
on CIFAR10-DVS; CKDSNN's public code builds exactly these stages (``resnet20`` in
``ann_models/resnet.py`` and ``snn_models/resnet_models.py``). Shortcuts here are projections (He
et al.'s option B, as torchvision) instead of He et al.'s parameter-free zero-padding (option A)
or the CKDSNN code's AvgPool -> 1x1 conv -> BN: one shortcut form for every architecture, and in
a student a strided 1x1 convolution reads spikes (accumulates only), where an average pool would
feed it real values. Not reproduced from the CKDSNN student code: its extra 256-unit hidden
linear layer and the ReLU in place of the last LIF (the last stage here spikes, as SAMD assumes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Optional, Union

from torch import nn

from ckdsnn_events.errors import UserError
from ckdsnn_events.models.neurons import LIFParameters

__all__ = ["ArchSpec", "ARCHS", "TEACHERS", "STUDENTS", "get_arch", "build_teacher", "build_student"]


@dataclass(frozen=True)
class ArchSpec:
    """A ResNet as stages of BasicBlocks."""

    name: str
    blocks: tuple[int, ...]  # BasicBlocks per stage
    strides: tuple[int, ...]  # stride of each stage's first block
    base_width: int  # channels of the stem and the first stage (``width`` overrides it)

    def widths(self, width: Optional[int] = None) -> tuple[int, ...]:
        """Channels of each stage: ``w * 2**i``."""
        w = self.base_width if width is None else width
        return tuple(w * 2**i for i in range(len(self.blocks)))


ARCHS: dict[str, ArchSpec] = {
    "resnet18": ArchSpec("resnet18", (2, 2, 2, 2), (1, 2, 2, 2), 64),
    "resnet19": ArchSpec("resnet19", (3, 3, 2), (1, 2, 2), 128),
    "resnet20": ArchSpec("resnet20", (3, 3, 3), (1, 2, 2), 16),
}
TEACHERS: tuple[str, ...] = tuple(ARCHS)
STUDENTS: tuple[str, ...] = tuple(ARCHS)


def _positive_int(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{name} must be a positive integer (got {value!r}).")


def get_arch(name: str, kind: str, names: tuple[str, ...]) -> ArchSpec:
    """The spec of architecture ``name``; UserError naming the valid choices otherwise."""
    if name not in names:
        raise UserError(f"unknown {kind} architecture {name!r}; choose one of: {', '.join(names)}.")
    return ARCHS[name]


def _check_common(num_classes: int, in_channels: int, width: Optional[int]) -> None:
    _positive_int("num_classes", num_classes)
    _positive_int("in_channels", in_channels)
    _positive_int("width", width, allow_none=True)


def _neuron(neuron: Union[LIFParameters, Mapping]) -> LIFParameters:
    """LIFParameters from themselves or from their ``asdict`` (as checkpoints store them)."""
    if isinstance(neuron, LIFParameters):
        return neuron
    if isinstance(neuron, Mapping):
        valid = [f.name for f in fields(LIFParameters)]
        unknown = sorted(set(neuron) - set(valid))
        if unknown:
            raise UserError(f"unknown LIF parameter(s) {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}.")
        return LIFParameters(**neuron)
    raise UserError(f"neuron must be LIFParameters (or a dict of them), got {type(neuron).__name__}.")


def build_teacher(name: str, num_classes: int = 10, in_channels: int = 3, width: Optional[int] = None) -> nn.Module:
    """An ANN teacher: (B, C, H, W) -> logits (B, K); see :class:`.resnet.ResNetTeacher`.

    Args:
        name: one of :data:`TEACHERS`.
        num_classes: K.
        in_channels: C of the input (2 for event frames, 3 for RGB images).
        width: channels of the first stage (None: the architecture's own, see the table above).
    """
    from ckdsnn_events.models.resnet import build_resnet_teacher

    spec = get_arch(name, "teacher", TEACHERS)
    _check_common(num_classes, in_channels, width)
    return build_resnet_teacher(spec, num_classes, in_channels, width)


def build_student(
    name: str,
    num_classes: int = 10,
    in_channels: int = 3,
    width: Optional[int] = None,
    neuron: Union[LIFParameters, Mapping] = LIFParameters(),
    neuron_backend: str = "fused",
) -> nn.Module:
    """A spiking student: (T, B, C, H, W) -> logits (B, K); see :class:`.spiking_resnet.SpikingResNet`.

    Args:
        name: one of :data:`STUDENTS`.
        num_classes, in_channels, width: as for :func:`build_teacher`.
        neuron: parameters of every LIF layer (or their ``dataclasses.asdict``).
        neuron_backend: "fused" or "norse", the code that runs the neurons (:mod:`.backends`).
    """
    from ckdsnn_events.models.backends import check_backend, use_neuron_backend
    from ckdsnn_events.models.spiking_resnet import SpikingResNet

    spec = get_arch(name, "student", STUDENTS)
    _check_common(num_classes, in_channels, width)
    check_backend(neuron_backend)
    return use_neuron_backend(SpikingResNet(spec, num_classes, in_channels, width, _neuron(neuron)), neuron_backend)
