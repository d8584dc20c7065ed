"""The parts teachers and students share: stem convolution, shortcut, projector head, initialisation.

Each is one ``nn.Module`` (or a function building one) whose parameter names are the same in the
teacher and the student, so a student can start from its teacher's weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import conv1x1

from ckdsnn_events.models.arch import PROJECTOR_WIDTH, check_choice, DOWNSAMPLES

__all__ = ["stem_conv", "shortcut", "declare_real_valued_input", "ProjectorHead", "init_resnet_"]


def stem_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """The 3x3, stride-1, padding-1 stem convolution (no bias: BN follows) of every architecture."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)


def shortcut(in_channels: int, out_channels: int, stride: int, kind: str) -> nn.Sequential:
    """The projection shortcut of a block that changes shape (see :mod:`.arch`, ``downsample``).

    ``"conv"``: ``conv1x1(stride) -> BN``. ``"avgpool"``: ``AvgPool2d(stride, ceil_mode=True,
    count_include_pad=False) -> conv1x1 -> BN`` (the pool is skipped at stride 1, where it is the
    identity). Both work on (N, C, H, W); the output is (N, C_out, ceil(H / stride), ceil(W / stride)).
    """
    check_choice("model.downsample", kind, DOWNSAMPLES)
    if kind == "conv":
        return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
    pool = nn.AvgPool2d(stride, stride=stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
    conv = conv1x1(in_channels, out_channels)
    if stride > 1:
        declare_real_valued_input(conv)  # it reads pooled spikes, fractions
    return nn.Sequential(pool, conv, nn.BatchNorm2d(out_channels))


def declare_real_valued_input(layer: nn.Module) -> nn.Module:
    """Mark a layer that reads real values by construction (``layer.real_valued_input = True``).

    The energy counter charges such a layer MACs whatever its input holds: without the mark it
    decides from the values, and a real-valued input that happens to hold only 0s and 1s (a silent
    stage upstream) would pass for spikes.
    """
    layer.real_valued_input = True
    return layer


class ProjectorHead(nn.Module):
    """``fc2 = Linear(C, 256)`` -> ``fc1 = Linear(256, K)``, no nonlinearity: the released CKDSNN head.

    The student applies it once to the mean over T of its pooled features (B, C) -> (B, K).

    Attributes:
        in_features: C. out_features: K (as ``nn.Linear``'s, so callers need not tell the heads apart).
    """

    def __init__(self, in_features: int, out_features: int, hidden: int = PROJECTOR_WIDTH):
        super().__init__()
        # both read real values: a mean over T of pooled features, then fc2's outputs
        self.fc2 = declare_real_valued_input(nn.Linear(in_features, hidden))
        self.fc1 = declare_real_valued_input(nn.Linear(hidden, out_features))
        self.in_features, self.out_features = in_features, out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C) -> (B, K)."""
        return self.fc1(self.fc2(x))


def init_resnet_(model: nn.Module) -> None:
    """torchvision's ResNet initialisation: Kaiming-normal (fan_out) convolutions, BN = identity."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
