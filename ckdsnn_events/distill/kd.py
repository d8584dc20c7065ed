"""The baselines CKDSNN is compared with: Hinton KD on logits and feature KD (KDSNN)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ckdsnn_events.distill.loss_checks import (
    check_logits,
    check_temperature,
    kl_from_log_probs,
    promote,
)
from ckdsnn_events.distill.saliency import resize_map

__all__ = ["hinton_kd_loss", "FeatureProjector", "feature_kd_loss", "FeatureKDLoss"]


def hinton_kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """Hinton et al. (2015) KD: ``tau^2 * KL(softmax(z_t / tau) || softmax(z_s / tau))``.

    KL summed over the K classes, averaged over the batch.

    The ``tau^2`` keeps the gradient scale roughly independent of ``tau``: the gradient is
    ``d L / d z_s = tau * (softmax(z_s / tau) - softmax(z_t / tau)) / B``, and for large ``tau`` the
    loss tends to ``(1 / 2K) * sum_i (d_i - mean(d))^2`` (batch mean), ``d = z_t - z_s``.

    Args:
        student_logits: (B, K).
        teacher_logits: (B, K); detached here.
        temperature: ``tau`` > 0.

    Returns:
        Scalar loss.
    """
    check_temperature("temperature", temperature)
    check_logits(student_logits, teacher_logits)
    log_p_student = F.log_softmax(promote(student_logits) / temperature, dim=1)
    log_p_teacher = F.log_softmax(promote(teacher_logits.detach()) / temperature, dim=1)
    return temperature**2 * kl_from_log_probs(log_p_teacher, log_p_student)


class FeatureProjector(nn.Sequential):
    """1x1 convolution + BatchNorm mapping student channels to teacher channels (learnable).

    Its parameters belong to the student side: add them to the optimiser.
    """

    def __init__(self, student_channels: int, teacher_channels: int):
        super().__init__(
            nn.Conv2d(student_channels, teacher_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(teacher_channels),
        )
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels


def feature_kd_loss(
    student_spikes: torch.Tensor, teacher_features: torch.Tensor, projector: nn.Module
) -> torch.Tensor:
    """Feature KD as in KDSNN (Xu et al., CVPR 2023): ``MSE(proj(mean_t S), F_te)``.

    Args:
        student_spikes: (T, B, C', H', W') spikes of the student's last spiking stage.
        teacher_features: (B, C, h, w) teacher feature map; detached here, and resized to
            (H', W') with :func:`~ckdsnn_events.distill.saliency.resize_map` when sizes differ
            (the student grid is the comparison grid, as in SAMD).
        projector: module mapping (B, C', H', W') to (B, C, H', W'), e.g. :class:`FeatureProjector`.

    Returns:
        Scalar mean squared error over all B * C * H' * W' elements.
    """
    if student_spikes.dim() != 5:
        raise ValueError(
            f"student_spikes must be (T, B, C, H, W), got {tuple(student_spikes.shape)}"
        )
    if not student_spikes.is_floating_point():
        student_spikes = student_spikes.float()
    rates = promote(student_spikes)
    projected = projector(rates.mean(dim=0))
    target = resize_map(promote(teacher_features.detach()), projected.shape[-2:])
    if projected.shape != target.shape:
        raise ValueError(
            f"projected student features {tuple(projected.shape)} do not match the teacher "
            f"features {tuple(target.shape)}: check the projector's channel counts"
        )
    return F.mse_loss(projected, target.to(projected.dtype))


class FeatureKDLoss(nn.Module):
    """Holds the learnable :class:`FeatureProjector` and computes :func:`feature_kd_loss`."""

    def __init__(self, student_channels: int, teacher_channels: int):
        super().__init__()
        self.projector = FeatureProjector(student_channels, teacher_channels)

    def forward(self, student_spikes: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
        return feature_kd_loss(student_spikes, teacher_features, self.projector)
