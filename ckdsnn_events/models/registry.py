"""Architectures by name, argument checks, and the two constructors the rest of the code calls.

Five ResNets, each as an ANN teacher (:mod:`.resnet`) and a spiking student
(:mod:`.spiking_resnet`) of the same topology (specs in :mod:`.arch`):

================  ============  ===============  ==========  ==========================================
name              blocks        widths           strides     source
================  ============  ===============  ==========  ==========================================
resnet18          2, 2, 2, 2    w, 2w, 4w, 8w    1, 2, 2, 2  torchvision ResNet-18, 3x3 stride-1 stem,
                  (w = 64)                                   no max-pool (the usual CIFAR adaptation)
resnet19          3, 3, 2       w, 2w, 4w        1, 2, 2     ResNet-19 of the SNN literature (tdBN,
                  (w = 128)                                  Zheng et al. 2021; TET; CKDSNN's code)
resnet20          3, 3, 3       w, 2w, 4w        1, 2, 2     ``resnet20_cifar`` of Guo et al.'s code
                  (w = 128)                                  (yfguo91/MPBN, yfguo91/Ternary-Spike,
                                                             ``models/resnet.py``): CIFAR10-DVS
resnet20m         2, 2, 2, 2    w, 2w, 4w, 8w    1, 2, 2, 2  ``resnet20_cifar_modified`` of the same
                  (w = 64)                                   code: stem of three 64-channel 3x3 convs
                                                             + AvgPool2d(2), AvgPool shortcut
resnet20-cifar16  3, 3, 3       w, 2w, 4w        1, 2, 2     He et al.'s CIFAR ResNet-20 (2016, Sec.
                  (w = 16)                                   4.2), ``resnet20`` (width_mult=1) of
                                                             CKDSNN's code; the embedded demo's
================  ============  ===============  ==========  ==========================================

All: 3x3 stride-1 stem convolution to ``w`` channels + BN + nonlinearity (resnet20m: three, then
a 2x2 average pool), stages of BasicBlocks (two 3x3 convolutions), projection shortcut where the
shape changes, global average pooling, a linear classifier ``fc`` on the last stage's channels.
``width`` sets ``w``. The block options (``last_block``, ``head``, ``downsample``) are described
in :mod:`.arch`; the defaults are the plain forms above (strided 1x1-conv shortcut, except
resnet20m's own AvgPool shortcut; LIF last block; one linear classifier), the ``reference``
preset switches to the released CKDSNN code's.

Which ResNet-20 is which: the papers CKDSNN compares with on CIFAR10-DVS (Guo et al.'s EnOF,
MPBN, Ternary-Spike) train their ``resnet20_cifar`` (128/256/512 channels, 3 x 3 blocks) and
``resnet20_cifar_modified`` (here ``resnet20``, ``resnet20m``). He et al.'s 16/32/64-channel
ResNet-20 (0.27 M parameters) is what CKDSNN's code calls ``resnet20``; it is kept as
``resnet20-cifar16``, the size that trains on a CPU in minutes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Optional, Union

from torch import nn

from ckdsnn_events.errors import UserError
from ckdsnn_events.models.arch import ARCHS, STUDENTS, TEACHERS, ArchOptions, ArchSpec, get_arch
from ckdsnn_events.models.neurons import LIFParameters
from ckdsnn_events.models.resnet import build_resnet_teacher
from ckdsnn_events.models.spiking_resnet import SpikingResNet

__all__ = ["ArchSpec", "ARCHS", "TEACHERS", "STUDENTS", "get_arch", "build_teacher", "build_student",
           "parameter_count"]


def _positive_int(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{name} must be a positive integer (got {value!r}).")


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


def build_teacher(name: str, num_classes: int = 10, in_channels: int = 3, width: Optional[int] = None, *,
                  downsample: Optional[str] = None) -> nn.Module:
    """An ANN teacher: (B, C, H, W) -> logits (B, K); see :class:`.resnet.ResNetTeacher`.

    Args:
        name: one of :data:`TEACHERS`.
        num_classes: K.
        in_channels: C of the input (2 for event frames, 3 for RGB images).
        width: channels of the first stage (None: the architecture's own, see the table above).
        downsample: "conv", "avgpool" or None (the architecture's own); see :mod:`.arch`.
    """
    spec = get_arch(name, "teacher", TEACHERS)
    _check_common(num_classes, in_channels, width)
    return build_resnet_teacher(spec, num_classes, in_channels, width, ArchOptions(downsample=downsample))


def build_student(
    name: str,
    num_classes: int = 10,
    in_channels: int = 3,
    width: Optional[int] = None,
    neuron: Union[LIFParameters, Mapping] = LIFParameters(),
    *,
    last_block: str = "lif",
    head: str = "linear",
    downsample: Optional[str] = None,
) -> nn.Module:
    """A spiking student: (T, B, C, H, W) -> logits (B, K); see :class:`.spiking_resnet.SpikingResNet`.

    Args:
        name: one of :data:`STUDENTS`.
        num_classes, in_channels, width: as for :func:`build_teacher`.
        neuron: parameters of every LIF layer (or their ``dataclasses.asdict``).
        last_block: "lif" or "relu" (the released CKDSNN code's); see :mod:`.arch`.
        head: "linear" or "projector" (the released code's fc2 -> fc1).
        downsample: "conv", "avgpool" or None (the architecture's own).
    """
    spec = get_arch(name, "student", STUDENTS)
    _check_common(num_classes, in_channels, width)
    options = ArchOptions(last_block=last_block, head=head, downsample=downsample)
    return SpikingResNet(spec, num_classes, in_channels, width, _neuron(neuron), options)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters (BN's running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters())
