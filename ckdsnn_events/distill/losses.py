"""Distillation losses: Hinton KD, feature KD (KDSNN), SAMD and NLD (CKDSNN), and their total.

CKDSNN (Liu et al., "A Closer Look at Knowledge Distillation in Spiking Neural Network Training",
AAAI 2026, arXiv 2511.06902) trains a spiking student with

    L_total = L_CE + beta * L_SAMD + gamma * L_NLD,
    L_SAMD  = T^2 * KL(P_te || P_st),   P = softmax(flatten(map) / T) over the H*W positions,
    L_NLD   = tau^2 * KL(y_te || y_soft), y = softmax(z / tau) over the K classes,
    z_soft  = z_st + lambda * eps,       eps ~ N(mean(z_st), std(z_st)^2) per sample,

with T = tau = 2.0, lambda = 0.1, beta = gamma = 1.0. These are the paper's L_SAMD, L_NLD, z_soft
and L_total as the en.papernotes.org summary of the paper gives them; the copy of the arXiv HTML
that could be read while writing this showed only the abstract and introduction, so the paper's
equation numbers are not quoted here.

The terms live in their own modules: :mod:`~ckdsnn_events.distill.kd` (Hinton KD, feature KD),
:mod:`~ckdsnn_events.distill.samd` (SAMD, its normalisations and scalings, the student Grad-CAM),
:mod:`~ckdsnn_events.distill.nld` (NLD and its noise); this module re-exports them and combines
them in :class:`DistillationLoss`.

Each of SAMD and NLD has two named variants:

- ``"paper"`` (default): the formulas above.
- ``"reference"``: what the public code (github.com/SinoLeu/CKDSNN, ``plt_train_kd_ckd_snn.py``
  and ``utils/utils.py``) computes; each function documents the differences. One difference is
  not reproduced: that code leaves the teacher's graph attached (it only keeps the teacher's
  parameters out of the optimiser). Both variants here detach the teacher; loss values and
  student gradients are the same either way.

Conventions: every KL is ``KL(teacher || student)``, summed over classes (or positions) and
averaged over the batch (PyTorch's ``batchmean``). The teacher side never receives gradients:
teacher tensors are detached inside every function, so a frozen teacher costs no backward pass
even when its outputs were computed with autograd on. Half-precision inputs are promoted to
float32 before softmax/KL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ckdsnn_events.distill.kd import FeatureKDLoss, FeatureProjector, feature_kd_loss, hinton_kd_loss
from ckdsnn_events.distill.loss_checks import (
    VARIANTS,
    check_choice,
    check_temperature,
    check_weight,
    promote,
    require,
)
from ckdsnn_events.distill.nld import NOISE_KINDS, check_noise, nld_loss, nld_noise
from ckdsnn_events.distill.samd import (
    NORMS,
    SCALINGS,
    STUDENT_MAPS,
    TARGET_CLASSES,
    samd_divergence,
    samd_loss,
)
from ckdsnn_events.errors import UserError

__all__ = [
    "VARIANTS",
    "TARGET_CLASSES",
    "SCALINGS",
    "NORMS",
    "STUDENT_MAPS",
    "NOISE_KINDS",
    "hinton_kd_loss",
    "FeatureProjector",
    "feature_kd_loss",
    "FeatureKDLoss",
    "samd_divergence",
    "samd_loss",
    "nld_noise",
    "nld_loss",
    "stage_spikes",
    "DistillationLoss",
]

Spikes = Union[torch.Tensor, Mapping]


def stage_spikes(spikes: Spikes, stage: Optional[int] = None) -> torch.Tensor:
    """The (T, B, C, H, W) output spikes of student stage ``stage`` (1-based; None: the last).

    Args:
        spikes: a student's spike record (``student(x, return_spikes=True)[1]``: LIF name ->
            spikes, in forward order; stage ``i``'s output is its last ``layer{i}.*`` entry), or
            one tensor, which is taken as the last stage's spikes (then ``stage`` must be None).
    """
    if isinstance(spikes, torch.Tensor):
        if stage is not None:
            raise ValueError("a stage other than the last needs the student's whole spike record")
        return spikes
    if stage is None:
        return next(reversed(spikes.values()))
    prefix = f"layer{stage}."
    names = [name for name in spikes if name.startswith(prefix)]
    if not names:
        stages = sorted({name.split(".")[0] for name in spikes if name.startswith("layer")})
        raise UserError(f"loss.samd_stage {stage}: the student has no stage {stage}; its stages are "
                        f"1 .. {len(stages)}.")
    return spikes[names[-1]]


class DistillationLoss(nn.Module):
    """``CE + beta * SAMD + gamma * NLD + alpha_kd * KD + alpha_feat * featureKD``.

    Every term whose weight is 0 is skipped (not computed), so its inputs may be omitted: CKDSNN
    is the default; ``DistillationLoss(beta=0, gamma=0, alpha_kd=1)`` is plain Hinton KD,
    ``DistillationLoss(beta=0, gamma=0, alpha_kd=1, alpha_feat=1, student_channels=...,
    teacher_channels=...)`` the KDSNN baseline. With ``alpha_feat > 0`` the module owns a
    learnable 1x1-conv + BN projector: give ``loss.parameters()`` to the optimiser with the
    student's.

    Args:
        beta: SAMD weight (paper: 1.0).
        gamma: NLD weight (paper: 1.0).
        alpha_kd: Hinton KD weight (default off).
        alpha_feat: feature KD weight (default off).
        samd_temperature: SAMD's ``T`` (paper: 2.0).
        nld_temperature: NLD's ``tau`` (paper: 2.0).
        kd_temperature: Hinton KD's ``tau``.
        noise_weight: NLD's ``lambda`` (paper: 0.1).
        samd_variant, nld_variant: "paper" (default) or "reference" (the public code's forms).
        samd_target_class: "label", "predicted", or None for the SAMD variant's default.
        samd_scaling: "softmax" (CKDSNN), "none", "zscore" or "l2" (:mod:`~ckdsnn_events.distill.samd`).
        samd_norm: "none", "batch-minmax", "sample-minmax", or None for the SAMD variant's own.
        samd_stage: the student stage whose spikes SAMD reads (1-based), None for the last; the
            teacher map is always the CAM of the teacher's last stage, resized to that stage's grid.
        samd_map: "sam" (spike activation map, CKDSNN) or "gradcam" (the student's Grad-CAM).
        nld_noise: "adaptive" (CKDSNN), "fixed" (``N(0, nld_noise_std^2)``) or "none".
        nld_noise_std: standard deviation of the fixed noise.
        student_channels, teacher_channels: channels of the compared stages; needed only when
            ``alpha_feat > 0``.
    """

    def __init__(
        self,
        *,
        beta: float = 1.0,
        gamma: float = 1.0,
        alpha_kd: float = 0.0,
        alpha_feat: float = 0.0,
        samd_temperature: float = 2.0,
        nld_temperature: float = 2.0,
        kd_temperature: float = 2.0,
        noise_weight: float = 0.1,
        samd_variant: str = "paper",
        nld_variant: str = "paper",
        samd_target_class: Optional[str] = None,
        samd_scaling: str = "softmax",
        samd_norm: Optional[str] = None,
        samd_stage: Optional[int] = None,
        samd_map: str = "sam",
        nld_noise: str = "adaptive",
        nld_noise_std: float = 1.0,
        student_channels: Optional[int] = None,
        teacher_channels: Optional[int] = None,
    ):
        super().__init__()
        weights = {"beta": beta, "gamma": gamma, "alpha_kd": alpha_kd, "alpha_feat": alpha_feat}
        for name, value in weights.items():
            check_weight(name, value)
        for name, value in (
            ("samd_temperature", samd_temperature),
            ("nld_temperature", nld_temperature),
            ("kd_temperature", kd_temperature),
        ):
            check_temperature(name, value)
        check_choice("samd_variant", samd_variant, VARIANTS)
        check_choice("nld_variant", nld_variant, VARIANTS)
        check_noise(noise_weight, nld_variant, nld_noise, nld_noise_std)
        if samd_target_class is not None:
            check_choice("samd_target_class", samd_target_class, TARGET_CLASSES)
        check_choice("samd_scaling", samd_scaling, SCALINGS)
        if samd_norm is not None:
            check_choice("samd_norm", samd_norm, NORMS)
        check_choice("samd_map", samd_map, STUDENT_MAPS)
        if samd_stage is not None and (not isinstance(samd_stage, int) or isinstance(samd_stage, bool)
                                       or samd_stage < 1):
            raise UserError(f"samd_stage must be a stage number >= 1, or unset for the last stage "
                            f"(got {samd_stage!r}).")
        self.beta, self.gamma, self.alpha_kd, self.alpha_feat = beta, gamma, alpha_kd, alpha_feat
        self.samd_temperature = samd_temperature
        self.nld_temperature = nld_temperature
        self.kd_temperature = kd_temperature
        self.noise_weight = noise_weight
        self.samd_variant, self.nld_variant = samd_variant, nld_variant
        self.samd_target_class = samd_target_class
        self.samd_scaling, self.samd_norm, self.samd_stage, self.samd_map = (
            samd_scaling, samd_norm, samd_stage, samd_map)
        self.nld_noise, self.nld_noise_std = nld_noise, nld_noise_std
        self.feature_kd: Optional[FeatureKDLoss] = None
        if alpha_feat > 0:
            channels = {"student_channels": student_channels, "teacher_channels": teacher_channels}
            for name, value in channels.items():
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise UserError(
                        f"{name} must be a positive integer when alpha_feat > 0 (got {value!r}); "
                        "give the channel counts of the distilled student and teacher stages, "
                        "or set alpha_feat = 0."
                    )
            self.feature_kd = FeatureKDLoss(student_channels, teacher_channels)

    def forward(
        self,
        student_logits: torch.Tensor,
        labels: torch.Tensor,
        *,
        teacher_logits: Optional[torch.Tensor] = None,
        student_spikes: Optional[Spikes] = None,
        teacher_features: Optional[torch.Tensor] = None,
        teacher_classifier_weight: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its terms.

        Args:
            student_logits: (B, K), the mean over time of the student's per-step outputs.
            labels: (B,) int64.
            teacher_logits: (B, K); needed by NLD, KD and SAMD with the predicted class.
            student_spikes: the student's spike record (LIF name -> (T, B, C', H', W'), as
                ``student(x, return_spikes=True)`` returns it), or the last stage's spikes alone
                (then ``samd_stage`` must be unset); needed by SAMD and feature KD.
            teacher_features: (B, C, h, w) last teacher feature map; needed by SAMD, feature KD.
            teacher_classifier_weight: (K, C); needed by SAMD.
            generator: optional ``torch.Generator`` for NLD's noise.

        Returns:
            ``(total, terms)``: ``total`` is the scalar to backpropagate; ``terms`` maps "ce",
            and each enabled term among "samd", "nld", "kd", "feature_kd", plus "total", to
            detached 0-dim tensors of the *unweighted* term values (``total`` is weighted), for
            logging (``float(v)`` when writing them out; no device sync happens here).
        """
        terms: dict[str, torch.Tensor] = {}
        total = F.cross_entropy(promote(student_logits), labels)
        terms["ce"] = total
        if self.beta > 0:
            require(
                ("student_spikes", student_spikes),
                ("teacher_features", teacher_features),
                ("teacher_classifier_weight", teacher_classifier_weight),
                term="SAMD",
            )
            samd = samd_loss(
                stage_spikes(student_spikes, self.samd_stage),
                teacher_features,
                teacher_classifier_weight,
                labels=labels,
                teacher_logits=teacher_logits,
                temperature=self.samd_temperature,
                variant=self.samd_variant,
                target_class=self.samd_target_class,
                scaling=self.samd_scaling,
                norm=self.samd_norm,
                student_map=self.samd_map,
                student_logits=student_logits,
            )
            terms["samd"] = samd
            total = total + self.beta * samd
        if self.gamma > 0:
            require(("teacher_logits", teacher_logits), term="NLD")
            nld = nld_loss(
                student_logits,
                teacher_logits,
                temperature=self.nld_temperature,
                noise_weight=self.noise_weight,
                variant=self.nld_variant,
                generator=generator,
                noise=self.nld_noise,
                noise_std=self.nld_noise_std,
            )
            terms["nld"] = nld
            total = total + self.gamma * nld
        if self.alpha_kd > 0:
            require(("teacher_logits", teacher_logits), term="KD")
            kd = hinton_kd_loss(student_logits, teacher_logits, self.kd_temperature)
            terms["kd"] = kd
            total = total + self.alpha_kd * kd
        if self.feature_kd is not None:
            require(
                ("student_spikes", student_spikes),
                ("teacher_features", teacher_features),
                term="feature KD",
            )
            feature = self.feature_kd(stage_spikes(student_spikes), teacher_features)
            terms["feature_kd"] = feature
            total = total + self.alpha_feat * feature
        terms["total"] = total
        return total, {name: value.detach() for name, value in terms.items()}

    def extra_repr(self) -> str:
        return (
            f"beta={self.beta}, gamma={self.gamma}, "
            f"alpha_kd={self.alpha_kd}, alpha_feat={self.alpha_feat}, "
            f"samd_temperature={self.samd_temperature}, nld_temperature={self.nld_temperature}, "
            f"kd_temperature={self.kd_temperature}, noise_weight={self.noise_weight}, "
            f"samd_variant={self.samd_variant!r}, nld_variant={self.nld_variant!r}, "
            f"samd_target_class={self.samd_target_class!r}, samd_scaling={self.samd_scaling!r}, "
            f"samd_norm={self.samd_norm!r}, samd_stage={self.samd_stage!r}, "
            f"samd_map={self.samd_map!r}, nld_noise={self.nld_noise!r}, "
            f"nld_noise_std={self.nld_noise_std}"
        )
