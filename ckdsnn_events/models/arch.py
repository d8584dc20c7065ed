"""Architecture specs and the options of their blocks, without any module: what the builders read.

Every architecture is a ResNet of BasicBlocks (:class:`ArchSpec`); the table of them and where each
comes from is in :mod:`.registry`. The options below change parts of any architecture; each is
one key of the ``[model]`` section of a run's config, and each has the value that reproduces a
published code base (``reference`` preset: the released CKDSNN code, github.com/SinoLeu/CKDSNN).

``last_block`` (students): the output neuron of the last block of the last stage.
    ``"lif"``: a LIF neuron like every other block; SAMD reads its binary spikes.
    ``"relu"``: ``nn.ReLU`` instead, as the released code's ``PreActBasicBlock(is_last=True)``
    (``snn_models/resnet_models.py``); SAMD then reads that block's real-valued output, the
    tensor the released ``training_step`` passes to ``getForwardCAM``.
``head`` (students): how the last feature map becomes logits.
    ``"linear"``: global average pooling, one ``fc = nn.Linear(C, K)`` at every time step, mean of
    the step outputs over T.
    ``"projector"``: global average pooling, mean over T, then ``fc2 = nn.Linear(C, 256)`` and
    ``fc1 = nn.Linear(256, K)`` with no nonlinearity between them, the released code's head
    (``ResNet._forward_impl``). Both Linears read real values (a mean over T of pooled spikes).
    Teachers always have the linear head: the CAM reads the weight of one ``nn.Linear(C, K)``.
``downsample`` (teachers and students): the shortcut of a block that changes shape.
    ``"conv"``: strided 1x1 convolution + BN (torchvision's ``downsample``, He et al.'s option B).
    ``"avgpool"``: ``AvgPool2d(stride)`` -> 1x1 convolution (stride 1) -> BN, as the released
    CKDSNN code (teacher and student) and Guo et al.'s ``resnet20_cifar_modified`` ("AvgDown",
    ``ceil_mode=True, count_include_pad=False``, which equals the plain pool on even map sizes).
    In a student the pool turns spikes into fractions, so that 1x1 convolution reads real values.
    ``None``: the architecture's own (:attr:`ArchSpec.downsample`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Optional

from ckdsnn_events.errors import UserError

__all__ = [
    "ArchSpec", "ARCHS", "TEACHERS", "STUDENTS", "LAST_BLOCKS", "HEADS", "DOWNSAMPLES", "PROJECTOR_WIDTH",
    "ArchOptions", "get_arch", "check_choice", "resnet_map_size", "check_same_options", "recorded_options",
]

LAST_BLOCKS = ("lif", "relu")
HEADS = ("linear", "projector")
DOWNSAMPLES = ("conv", "avgpool")
STEMS = ("conv", "triple")
PROJECTOR_WIDTH = 256  # hidden units of the released code's fc2


@dataclass(frozen=True)
class ArchSpec:
    """A ResNet as a stem and stages of BasicBlocks.

    Attributes:
        name: the registry name.
        blocks: BasicBlocks per stage.
        strides: stride of each stage's first block.
        base_width: channels of the stem and the first stage (``width`` overrides it).
        stem: ``"conv"`` (one 3x3 stride-1 conv + BN + nonlinearity) or ``"triple"`` (three of
            them, then ``AvgPool2d(2)``: Guo et al.'s ``resnet20_cifar_modified``).
        downsample: the shortcut form used when ``downsample=None`` is asked for.
    """

    name: str
    blocks: tuple[int, ...]
    strides: tuple[int, ...]
    base_width: int
    stem: str = "conv"
    downsample: str = "conv"

    def widths(self, width: Optional[int] = None) -> tuple[int, ...]:
        """Channels of each stage: ``w * 2**i``."""
        w = self.base_width if width is None else width
        return tuple(w * 2**i for i in range(len(self.blocks)))


ARCHS: dict[str, ArchSpec] = {
    "resnet18": ArchSpec("resnet18", (2, 2, 2, 2), (1, 2, 2, 2), 64),
    "resnet19": ArchSpec("resnet19", (3, 3, 2), (1, 2, 2), 128),
    "resnet20": ArchSpec("resnet20", (3, 3, 3), (1, 2, 2), 128),
    "resnet20m": ArchSpec("resnet20m", (2, 2, 2, 2), (1, 2, 2, 2), 64, stem="triple", downsample="avgpool"),
    "resnet20-cifar16": ArchSpec("resnet20-cifar16", (3, 3, 3), (1, 2, 2), 16),
}
TEACHERS: tuple[str, ...] = tuple(ARCHS)
STUDENTS: tuple[str, ...] = tuple(ARCHS)


def check_choice(key: str, value, choices: tuple) -> None:
    """UserError naming ``key`` and the valid ``choices`` unless ``value`` is one of them."""
    if value not in choices:
        shown = ", ".join(str(c) for c in choices if c is not None)  # None is the default, not typed
        raise UserError(f"{key} {value!r} is not a valid choice; choose one of: {shown}.")


def get_arch(name: str, kind: str, names: tuple[str, ...] = STUDENTS) -> ArchSpec:
    """The spec of architecture ``name``; UserError naming the valid choices otherwise."""
    if name not in names:
        raise UserError(f"unknown {kind} architecture {name!r}; choose one of: {', '.join(names)}.")
    return ARCHS[name]


@dataclass(frozen=True)
class ArchOptions:
    """The block options of one model (see the module docstring); checked on construction."""

    last_block: str = "lif"
    head: str = "linear"
    downsample: Optional[str] = None

    def __post_init__(self) -> None:
        check_choice("model.last_block", self.last_block, LAST_BLOCKS)
        check_choice("model.head", self.head, HEADS)
        check_choice("model.downsample", self.downsample, DOWNSAMPLES + (None,))

    def resolved(self, spec: ArchSpec) -> "ArchOptions":
        """These options with ``downsample=None`` replaced by the architecture's own."""
        return ArchOptions(self.last_block, self.head, self.downsample or spec.downsample)

    def recorded(self, kind: str) -> dict:
        """What a checkpoint of a ``kind`` ("teacher"/"student") model stores: the options that
        apply to it (a teacher has only ``downsample``)."""
        options = asdict(self)
        return {"downsample": options["downsample"]} if kind == "teacher" else options


def resnet_map_size(name: str, input_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of ResNet ``name``'s last feature map for (H, W) inputs.

    A 3x3 convolution with padding 1 and stride ``s`` gives ``(H - 1) // s + 1`` (the avgpool
    shortcut, with ``ceil_mode``, gives the same); the ``triple`` stem's ``AvgPool2d(2)`` gives
    ``H // 2``.
    """
    spec = get_arch(name, "", tuple(ARCHS))
    size = []
    for side in input_size:
        side = side // 2 if spec.stem == "triple" else side
        for stride in spec.strides:
            side = (side - 1) // stride + 1
        size.append(side)
    return tuple(size)


def recorded_options(model) -> dict:
    """The options a built teacher or student records in its checkpoint (``model.options``)."""
    return model.options.recorded("student" if hasattr(model, "spike_keys") else "teacher")


def check_same_options(recorded: Optional[Mapping], wanted: Mapping, source: str) -> None:
    """UserError naming the first key whose value ``source`` (a checkpoint) recorded differently.

    Args:
        recorded: the options stored with the weights (None: an older checkpoint, nothing to check).
        wanted: the options of the model about to be built.
        source: what to name in the message, e.g. ``"--teacher 'runs/x/best.pt'"``.
    """
    for key, value in (recorded or {}).items():
        if key in wanted and wanted[key] != value:
            raise UserError(f"{source} was trained with model.{key}={value!r}, this run asks for "
                            f"model.{key}={wanted[key]!r}; set --set model.{key}={value} (or train anew).")
