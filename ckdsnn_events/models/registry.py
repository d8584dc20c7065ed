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
from ckdsnn_events.models.arch import ARCHS, ArchOptions, ArchSpec, get_arch, resnet_map_size
from ckdsnn_events.models.arch import STUDENTS as RESNET_STUDENTS
from ckdsnn_events.models.arch import TEACHERS as RESNET_TEACHERS
from ckdsnn_events.models.backends import check_backend, use_neuron_backend
from ckdsnn_events.models.neurons import LIF, LIFParameters
from ckdsnn_events.models.resnet import build_resnet_teacher
from ckdsnn_events.models.spiking_resnet import SpikingResNet
from ckdsnn_events.models.zoo import (
    ZOO_STUDENTS,
    ZOO_TEACHERS,
    ZooOptions,
    build_zoo_student,
    build_zoo_teacher,
    zoo_map_size,
)

__all__ = ["ArchSpec", "ARCHS", "TEACHERS", "STUDENTS", "get_arch", "build_teacher", "build_student",
           "parameter_count", "feature_map_size", "check_alignment", "config_options"]

# every architecture by name: the ResNets of :mod:`.arch`, then the zoo's (:mod:`.zoo`)
TEACHERS: tuple[str, ...] = RESNET_TEACHERS + ZOO_TEACHERS
STUDENTS: tuple[str, ...] = RESNET_STUDENTS + ZOO_STUDENTS


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
    if name in ZOO_TEACHERS:
        _check_common(num_classes, in_channels, width)
        if downsample is not None:
            raise UserError(f"model.downsample applies to the ResNets of models.arch, not to {name!r}; leave it unset.")
        return build_zoo_teacher(name, num_classes, in_channels, width)
    spec = get_arch(name, "teacher", RESNET_TEACHERS + ZOO_TEACHERS)
    _check_common(num_classes, in_channels, width)
    return build_resnet_teacher(spec, num_classes, in_channels, width, ArchOptions(downsample=downsample))


def build_student(
    name: str,
    num_classes: int = 10,
    in_channels: int = 3,
    width: Optional[int] = None,
    neuron: Union[LIFParameters, Mapping, None] = None,
    *,
    last_block: str = "lif",
    head: str = "linear",
    downsample: Optional[str] = None,
    connect: str = "ADD",
    neuron_backend: str = "fused",
) -> nn.Module:
    """A spiking student: (T, B, C, H, W) -> logits (B, K); see :class:`.spiking_resnet.SpikingResNet`.

    Args:
        name: one of :data:`STUDENTS`.
        num_classes, in_channels, width: as for :func:`build_teacher`.
        neuron: parameters of every spiking layer (or their ``dataclasses.asdict``); None: the
            architecture's own (CKDSNN's LIF for the ResNets, SEW-ResNet's IF/ATan, Spikformer's LIF/sigmoid).
        last_block: "lif" or "relu" (the released CKDSNN code's); see :mod:`.arch`.
        head: "linear" or "projector" (the released code's fc2 -> fc1).
        downsample: "conv", "avgpool" or None (the architecture's own).
        connect: SEW-ResNets' connect function, "ADD", "AND" or "IAND" (see :mod:`.sew_resnet`).
        neuron_backend: "fused" or "norse", the code that runs the neurons (:mod:`.backends`).
    """
    check_backend(neuron_backend)
    if name in ZOO_STUDENTS:
        _check_common(num_classes, in_channels, width)
        if (last_block, head, downsample) != ("lif", "linear", None):
            raise UserError(f"model.last_block / head / downsample apply to the ResNets of models.arch, not to "
                            f"{name!r}; leave them at lif / linear / unset.")
        model = build_zoo_student(name, num_classes, in_channels, width, None if neuron is None else _neuron(neuron),
                                  LIF, connect)
        return use_neuron_backend(model, neuron_backend)
    spec = get_arch(name, "student", RESNET_STUDENTS + ZOO_STUDENTS)
    _check_common(num_classes, in_channels, width)
    options = ArchOptions(last_block=last_block, head=head, downsample=downsample)
    neuron = LIFParameters() if neuron is None else _neuron(neuron)
    return use_neuron_backend(SpikingResNet(spec, num_classes, in_channels, width, neuron, options),
                              neuron_backend)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters (BN's running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters())


def feature_map_size(name: str, input_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of architecture ``name``'s last feature map for (H, W) inputs (any teacher or student)."""
    if name in ZOO_TEACHERS + ZOO_STUDENTS:
        return zoo_map_size(name, input_size)
    return resnet_map_size(name, input_size)


def _nested(a: int, b: int) -> bool:
    return a % b == 0 or b % a == 0

def check_alignment(teacher: str, student: str, input_size: tuple[int, int]) -> None:
    """UserError unless the teacher's and the student's last maps can be laid over each other.

    SAMD (and feature KD) resize the teacher's (h, w) map to the student's (H, W); that is a
    resampling of cells only when one side is a whole multiple of the other in each direction
    (one teacher cell covers whole student cells, or the reverse). Otherwise the cells straddle
    each other and the map compares positions that do not correspond.
    """
    t, s = feature_map_size(teacher, input_size), feature_map_size(student, input_size)
    if all(_nested(a, b) for a, b in zip(t, s)):
        return
    fits = [name for name in STUDENTS if all(_nested(a, b) for a, b in zip(t, feature_map_size(name, input_size)))]
    raise UserError(
        f"model.teacher {teacher!r} and model.student {student!r} end in {t[0]}x{t[1]} and {s[0]}x{s[1]} maps on "
        f"{input_size[0]}x{input_size[1]} inputs, which SAMD cannot align (neither side is a whole multiple of the "
        f"other); students that align with this teacher: {', '.join(fits) or 'none'}."
    )


def config_options(config, kind: str) -> dict:
    """What :func:`recorded_options` gives for the model a run config (its ``model`` section:
    ``teacher``/``student``, ``last_block``, ``head``, ``downsample``) would build, without building it."""
    m = config.model
    name = m.teacher if kind == "teacher" else m.student
    if name in ZOO_TEACHERS + ZOO_STUDENTS:
        return ZooOptions(m.connect if name.startswith("sew-") else None).recorded(kind)
    options = ArchOptions(m.last_block, m.head, m.downsample)
    return options.resolved(get_arch(name, kind, tuple(ARCHS))).recorded(kind)
