"""The paper's non-ResNet-19/20 networks by name: Spikformer-4-384, SEW-ResNets and their teachers.

==================  ==========================================================  =====================
name                what                                                        paper row
==================  ==========================================================  =====================
spikformer-4-384    :class:`.spikformer.Spikformer`, 4 blocks, D = 384, 12 heads  CIFAR-100, T = 1
sew-resnet18/34/50  :class:`.sew_resnet.SEWResNet`, ImageNet stem (224 x 224)      ImageNet-1K, T = 4
sew-resnet18/34-cifar  the same with a 3x3 stride-1 stem, no max-pool (32 x 32)    CPU-scale variant
tv-resnet18/34/50   ``torchvision.models.resnet{18,34,50}`` unchanged (teachers)   ImageNet teachers
==================  ==========================================================  =====================

``width`` is D for Spikformer (heads stay 12 unless D is not divisible: then the largest divisor
of D up to 12) and the first stage's channels for SEW-ResNets; torchvision teachers have no width.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from torch import nn

from ckdsnn_events.errors import UserError
from ckdsnn_events.models.neurons import LIFParameters
from ckdsnn_events.models.resnet import torchvision_teacher
from ckdsnn_events.models.sew_resnet import CONNECTS, SEW_NEURON, SEWResNet
from ckdsnn_events.models.spikformer import SPIKFORMER_NEURON, Spikformer

__all__ = ["ZOO_STUDENTS", "ZOO_TEACHERS", "ZooOptions", "build_zoo_student", "build_zoo_teacher", "zoo_map_size"]

ZOO_STUDENTS: tuple[str, ...] = (
    "spikformer-4-384", "sew-resnet18", "sew-resnet34", "sew-resnet50", "sew-resnet18-cifar", "sew-resnet34-cifar",
)
ZOO_TEACHERS: tuple[str, ...] = ("tv-resnet18", "tv-resnet34", "tv-resnet50")


@dataclass(frozen=True)
class ZooOptions:
    """What a zoo model records in its checkpoint (as :class:`.arch.ArchOptions` do for the ResNets)."""

    connect: Optional[str] = None  # SEW-ResNets only

    def recorded(self, kind: str) -> dict:
        return {} if self.connect is None else {"connect": self.connect}


def zoo_map_size(name: str, input_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the last map of zoo model ``name`` (the SAM source, or the teacher's CAM input)."""

    def halve(side: int) -> int:  # a stride-2 3x3 conv or max-pool with padding 1, or the 7x7/2 stem
        return (side - 1) // 2 + 1

    size = []
    for side in input_size:
        if name == "spikformer-4-384":
            side = halve(halve(side))
        else:
            if not name.endswith("-cifar"):
                side = halve(halve(side))  # ImageNet stem: 7x7 stride 2, then max-pool 3/2
            side = halve(halve(halve(side)))  # stages 2-4 stride 2
        size.append(side)
    return tuple(size)


def _heads(dim: int, wanted: int = 12) -> int:
    return max(h for h in range(1, wanted + 1) if dim % h == 0)


def build_zoo_student(name: str, num_classes: int, in_channels: int, width: Optional[int], neuron: Optional[LIFParameters],
                      make_neuron: Callable[[LIFParameters], nn.Module], connect: str = "ADD") -> nn.Module:
    """The student ``name`` of :data:`ZOO_STUDENTS` (arguments checked by the registry; ``neuron``
    None: the architecture's own, :data:`.spikformer.SPIKFORMER_NEURON` or :data:`.sew_resnet.SEW_NEURON`)."""
    if connect not in CONNECTS:
        raise UserError(f"unknown SEW connect function model.connect={connect!r}; choose one of: {', '.join(CONNECTS)}.")
    if name == "spikformer-4-384":
        dim = 384 if width is None else width
        if dim % 8:
            raise UserError(f"a Spikformer's width (embedding D) must be divisible by 8, got {dim}.")
        if connect != "ADD":
            raise UserError("model.connect applies to SEW-ResNets only; leave it at ADD for spikformer-4-384.")
        model = Spikformer(num_classes, in_channels, dim=dim, depth=4, heads=_heads(dim), neuron=neuron or SPIKFORMER_NEURON,
                           make_neuron=make_neuron)
        model.options = ZooOptions()
        return model
    depth = int(name.removeprefix("sew-resnet").removesuffix("-cifar"))
    model = SEWResNet(depth, num_classes, in_channels, connect=connect, neuron=neuron or SEW_NEURON, make_neuron=make_neuron,
                      cifar_stem=name.endswith("-cifar"), width=64 if width is None else width)
    model.options = ZooOptions(connect)
    return model


def build_zoo_teacher(name: str, num_classes: int, in_channels: int, width: Optional[int]) -> nn.Module:
    """The teacher ``name`` of :data:`ZOO_TEACHERS`."""
    if width is not None:
        raise UserError(f"teacher {name!r} is torchvision's own network and has no width option; "
                        "leave model.teacher_width unset.")
    model = torchvision_teacher(int(name.removeprefix("tv-resnet")), num_classes, in_channels)
    model.options = ZooOptions()
    return model
