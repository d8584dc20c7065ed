"""Distillation losses: Hinton KD, feature KD (KDSNN), SAMD and NLD (CKDSNN), and their total.

CKDSNN (Liu et al., "A Closer Look at Knowledge Distillation in Spiking Neural Network Training",
AAAI 2026, arXiv 2511.06902) trains a spiking student with

    L_total = L_CE + beta * L_SAMD + gamma * L_NLD,
    L_SAMD  = T^2 * KL(P_te || P_st),   P = softmax(flatten(map) / T) over the H*W positions,
    L_NLD   = tau^2 * KL(y_te || y_soft), y = softmax(z / tau) over the K classes,
    z_soft  = z_st + lambda * eps,       eps ~ N(mean(z_st), std(z_st)^2) per sample,

with T = tau = 2.0, lambda = 0.1, beta = gamma = 1.0. These are the paper's L_SAMD, L_NLD, z_soft
and L_total as given by DESIGN.md and the en.papernotes.org summary of the paper; the copy of the
arXiv HTML that could be read while writing this showed only the abstract and introduction, so
the paper's equation numbers are not quoted here.

Each loss has two named variants:

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

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ckdsnn_events.distill.saliency import (
    class_activation_map,
    min_max_normalize,
    resize_map,
    spike_activation_map,
)
from ckdsnn_events.errors import UserError

__all__ = [
    "VARIANTS",
    "TARGET_CLASSES",
    "hinton_kd_loss",
    "FeatureProjector",
    "feature_kd_loss",
    "FeatureKDLoss",
    "samd_divergence",
    "samd_loss",
    "nld_noise",
    "nld_loss",
    "DistillationLoss",
]

VARIANTS = ("paper", "reference")
TARGET_CLASSES = ("label", "predicted")

# The reference code's constants: 1e-3 in the min-max denominator, 1e-10 added to both SAMD
# probability maps before the log.
REFERENCE_MINMAX_EPS = 1e-3
REFERENCE_PROB_EPS = 1e-10


# ---------------------------------------------------------------------------------------------
# Validation: bad hyper-parameters are user mistakes (they come from recipes and the CLI).


def _check_temperature(name: str, value: float) -> None:
    if not _is_real(value) or not value > 0:
        raise UserError(f"{name} must be a positive number (got {value!r}); CKDSNN uses 2.0.")


def _check_weight(name: str, value: float) -> None:
    if not _is_real(value) or not value >= 0:
        raise UserError(
            f"{name} must be a non-negative number (got {value!r}); use 0 to turn the term off."
        )


def _check_noise_weight(name: str, value: float, variant: str) -> None:
    _check_weight(name, value)
    if variant == "reference" and value > 1:
        raise UserError(
            f"{name} must be in [0, 1] for the 'reference' NLD variant, where it is a mixture "
            f"weight (got {value!r}); the reference code puts 0.1 on the noise."
        )


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(
            f"unknown {name} {value!r}; choose one of: {', '.join(repr(c) for c in choices)}."
        )


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _promote(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32 (softmax and KL lose too much in half precision)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _kl_from_log_probs(log_p_teacher: torch.Tensor, log_p_student: torch.Tensor) -> torch.Tensor:
    """``sum_rows KL(p_t || p_s) / n_rows`` from (N, D) log-probabilities."""
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)


# ---------------------------------------------------------------------------------------------
# Hinton KD


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
    _check_temperature("temperature", temperature)
    _check_logits(student_logits, teacher_logits)
    log_p_student = F.log_softmax(_promote(student_logits) / temperature, dim=1)
    log_p_teacher = F.log_softmax(_promote(teacher_logits.detach()) / temperature, dim=1)
    return temperature**2 * _kl_from_log_probs(log_p_teacher, log_p_student)


def _check_logits(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            "student and teacher logits must both be (B, K), got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )


# ---------------------------------------------------------------------------------------------
# Feature KD (the KDSNN baseline)


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
    rates = _promote(student_spikes)
    projected = projector(rates.mean(dim=0))
    target = resize_map(_promote(teacher_features.detach()), projected.shape[-2:])
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


# ---------------------------------------------------------------------------------------------
# SAMD


def samd_divergence(
    student_map: torch.Tensor,
    teacher_map: torch.Tensor,
    *,
    temperature: float = 2.0,
    variant: str = "paper",
) -> torch.Tensor:
    """KL between the softmax distributions of two saliency maps over the H*W positions.

    The teacher map is first resized to the student's (H, W) (bilinear, ``align_corners=False``,
    see :func:`~ckdsnn_events.distill.saliency.resize_map`) and detached.

    - ``"paper"``: ``T^2 * KL(softmax(flat(M_te) / T) || softmax(flat(M_st) / T))``, batch mean
      (the paper's L_SAMD). The maps enter the softmax at their own scales, as the paper
      writes it: spike counts (up to T * C') against Grad-CAM values of the order of a logit
      divided by h * w, so the student's distribution is much sharper than the teacher's until
      its counts become nearly flat. The public code's min-max normalisation (below) is one
      answer to that scale gap; compare the two variants when tuning.
    - ``"reference"``: ``compute_kl_divergence`` of the public code, applied to maps that were
      batch-global min-max normalised (:func:`~ckdsnn_events.distill.saliency.min_max_normalize`,
      eps 1e-3): ``p = softmax(flat(m) / T) + 1e-10`` for both maps, then
      ``sum p_t * (log p_t - log p_s) / B``, **without** ``T^2``.

    Args:
        student_map: (B, H, W) spike activation map (keeps its graph).
        teacher_map: (B, h, w) class activation map.
        temperature: ``T`` > 0.
        variant: "paper" or "reference".

    Returns:
        Scalar loss.
    """
    _check_temperature("temperature", temperature)
    _check_choice("SAMD variant", variant, VARIANTS)
    if (
        student_map.dim() != 3
        or teacher_map.dim() != 3
        or student_map.shape[0] != teacher_map.shape[0]
    ):
        raise ValueError(
            "saliency maps must be (B, H, W) and (B, h, w) with the same B, got "
            f"{tuple(student_map.shape)} and {tuple(teacher_map.shape)}"
        )
    batch = student_map.shape[0]
    student = _promote(student_map)
    teacher = resize_map(_promote(teacher_map.detach()), student.shape[-2:]).to(student.dtype)
    if variant == "paper":
        log_p_student = F.log_softmax(student.reshape(batch, -1) / temperature, dim=1)
        log_p_teacher = F.log_softmax(teacher.reshape(batch, -1) / temperature, dim=1)
        return temperature**2 * _kl_from_log_probs(log_p_teacher, log_p_student)
    student = min_max_normalize(student, eps=REFERENCE_MINMAX_EPS)
    teacher = min_max_normalize(teacher, eps=REFERENCE_MINMAX_EPS)
    p_student = F.softmax(student.reshape(batch, -1) / temperature, dim=1) + REFERENCE_PROB_EPS
    p_teacher = F.softmax(teacher.reshape(batch, -1) / temperature, dim=1) + REFERENCE_PROB_EPS
    return F.kl_div(p_student.log(), p_teacher, reduction="batchmean")


def samd_loss(
    student_spikes: torch.Tensor,
    teacher_features: torch.Tensor,
    classifier_weight: torch.Tensor,
    *,
    labels: Optional[torch.Tensor] = None,
    teacher_logits: Optional[torch.Tensor] = None,
    temperature: float = 2.0,
    variant: str = "paper",
    target_class: Optional[str] = None,
) -> torch.Tensor:
    """SAMD: align the student's spike activation map with the teacher's class activation map.

    Student map: ``M_st = sum_t sum_c S``
    (:func:`~ckdsnn_events.distill.saliency.spike_activation_map`).
    Teacher map, per variant:

    - ``"paper"``: Grad-CAM of the target class. For the GAP + linear head of the teachers here,
      Grad-CAM equals ``CAM / (h * w)`` exactly (derivation in
      :func:`~ckdsnn_events.distill.saliency.grad_cam`), computed without autograd. The paper
      takes Grad-CAM of "the target class" without saying whether that is the ground truth or
      the teacher's prediction; the default here is the ground-truth label ("label").
    - ``"reference"``: classic CAM (no ``1 / hw``) of the teacher's *predicted* class, as
      ``compute_cam`` in the public code (default ``target_class="predicted"``).

    Then :func:`samd_divergence` with the same variant. ``target_class`` overrides the class
    choice for either variant ("label" needs ``labels``, "predicted" needs ``teacher_logits``).

    Args:
        student_spikes: (T, B, C', H, W) spikes of the student's last spiking stage.
        teacher_features: (B, C, h, w) teacher feature map before global average pooling.
        classifier_weight: (K, C) weight of the teacher's final ``nn.Linear``.
        labels: (B,) ground-truth classes.
        teacher_logits: (B, K) teacher logits.
        temperature: ``T`` > 0.
        variant: "paper" or "reference".
        target_class: "label", "predicted", or None for the variant's default.

    Returns:
        Scalar loss.
    """
    _check_temperature("temperature", temperature)
    _check_choice("SAMD variant", variant, VARIANTS)
    if target_class is None:
        target_class = "label" if variant == "paper" else "predicted"
    _check_choice("SAMD target class", target_class, TARGET_CLASSES)
    if target_class == "label":
        if labels is None:
            raise ValueError("SAMD with target_class='label' needs labels")
        class_index = labels
    else:
        if teacher_logits is None:
            raise ValueError("SAMD with target_class='predicted' needs teacher_logits")
        class_index = teacher_logits.detach().argmax(dim=1)
    teacher_map = class_activation_map(teacher_features, classifier_weight, class_index)
    if variant == "paper":
        teacher_map = teacher_map / (teacher_map.shape[-2] * teacher_map.shape[-1])
    student_map = spike_activation_map(student_spikes)
    return samd_divergence(student_map, teacher_map, temperature=temperature, variant=variant)


# ---------------------------------------------------------------------------------------------
# NLD


def nld_noise(
    logits: torch.Tensor, *, variant: str = "paper", generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Gaussian noise shaped by each sample's logit statistics.

    With ``mu_b = mean_k z[b, k]``, ``sigma_b = std_k z[b, k]`` (Bessel-corrected, as
    ``torch.std`` and the public code; the paper does not say) and ``n ~ N(0, 1)``:

    - ``"paper"``: ``eps = mu + sigma * n``, i.e. ``eps ~ N(mu, sigma^2)``. The statistics are
      **detached**: the paper treats ``eps`` as a sample from a distribution fitted to the logits
      (noise added to them), not as a reparameterised function of them, so no gradient flows
      through ``mu`` or ``sigma``.
    - ``"reference"``: ``noise = mu + n * sigma**2`` (sic: the variance as the scale, as
      ``generate_gaussian_noise`` in the public code), **not** detached, as in that code.

    Args:
        logits: (B, K) student logits, K >= 2.
        variant: "paper" or "reference".
        generator: optional ``torch.Generator`` on ``logits.device`` for reproducible noise;
            None draws from the global RNG.

    Returns:
        (B, K) noise, same dtype and device as ``logits``.
    """
    _check_choice("NLD variant", variant, VARIANTS)
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must be (B, K) with K >= 2, got {tuple(logits.shape)}")
    standard = torch.randn(
        logits.shape, generator=generator, device=logits.device, dtype=logits.dtype
    )
    stats_of = logits.detach() if variant == "paper" else logits
    mean = stats_of.mean(dim=1, keepdim=True)
    std = stats_of.std(dim=1, keepdim=True)
    if variant == "paper":
        return mean + std * standard
    return mean + standard * std**2


def nld_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    temperature: float = 2.0,
    noise_weight: float = 0.1,
    variant: str = "paper",
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """NLD: distil the teacher's logits into noise-smoothed student logits.

    - ``"paper"``: ``z_soft = z + lambda * eps`` (additive, as the paper writes it; not a convex
      mixture), ``eps`` from :func:`nld_noise`; then ``tau^2 * KL(softmax(z_t / tau) ||
      softmax(z_soft / tau))`` (:func:`hinton_kd_loss`). Since ``eps`` is detached,
      ``d z_soft / d z = I``: the gradient is the KD gradient evaluated at the smoothed logits.
    - ``"reference"``: ``soft_loss_smooth`` of the public code. The smoothing is a mixture in
      *probability* space, ``p_s = (1 - lambda) * softmax(z / tau) + lambda * softmax(noise / tau)``
      with ``noise = mu + n * sigma^2`` (not detached), then
      ``tau^2 * sum p_t * (log p_t - log p_s) / B`` (the code does multiply by ``tau^2`` here).
      The code's config calls the weight of the *clean* term ``noise_weight`` (0.9); here
      ``noise_weight`` is always the weight of the noise (0.1 reproduces the code).

    Args:
        student_logits: (B, K).
        teacher_logits: (B, K); detached here.
        temperature: ``tau`` > 0.
        noise_weight: ``lambda`` >= 0 (and <= 1 for "reference").
        variant: "paper" or "reference".
        generator: optional ``torch.Generator`` for the noise (see :func:`nld_noise`).

    Returns:
        Scalar loss.
    """
    _check_temperature("temperature", temperature)
    _check_choice("NLD variant", variant, VARIANTS)
    _check_noise_weight("noise_weight", noise_weight, variant)
    _check_logits(student_logits, teacher_logits)
    student = _promote(student_logits)
    noise = nld_noise(student, variant=variant, generator=generator)
    if variant == "paper":
        return hinton_kd_loss(student + noise_weight * noise, teacher_logits, temperature)
    p_clean = F.softmax(student / temperature, dim=1)
    p_noise = F.softmax(noise / temperature, dim=1)
    p_student = (1 - noise_weight) * p_clean + noise_weight * p_noise
    p_teacher = F.softmax(_promote(teacher_logits.detach()) / temperature, dim=1)
    return temperature**2 * F.kl_div(p_student.log(), p_teacher, reduction="batchmean")


# ---------------------------------------------------------------------------------------------
# The total


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
        student_channels: Optional[int] = None,
        teacher_channels: Optional[int] = None,
    ):
        super().__init__()
        weights = {"beta": beta, "gamma": gamma, "alpha_kd": alpha_kd, "alpha_feat": alpha_feat}
        for name, value in weights.items():
            _check_weight(name, value)
        for name, value in (
            ("samd_temperature", samd_temperature),
            ("nld_temperature", nld_temperature),
            ("kd_temperature", kd_temperature),
        ):
            _check_temperature(name, value)
        _check_choice("samd_variant", samd_variant, VARIANTS)
        _check_choice("nld_variant", nld_variant, VARIANTS)
        _check_noise_weight("noise_weight", noise_weight, nld_variant)
        if samd_target_class is not None:
            _check_choice("samd_target_class", samd_target_class, TARGET_CLASSES)
        self.beta, self.gamma, self.alpha_kd, self.alpha_feat = beta, gamma, alpha_kd, alpha_feat
        self.samd_temperature = samd_temperature
        self.nld_temperature = nld_temperature
        self.kd_temperature = kd_temperature
        self.noise_weight = noise_weight
        self.samd_variant, self.nld_variant = samd_variant, nld_variant
        self.samd_target_class = samd_target_class
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
        student_spikes: Optional[torch.Tensor] = None,
        teacher_features: Optional[torch.Tensor] = None,
        teacher_classifier_weight: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its terms.

        Args:
            student_logits: (B, K), the mean over time of the student's per-step outputs.
            labels: (B,) int64.
            teacher_logits: (B, K); needed by NLD, KD and SAMD with the predicted class.
            student_spikes: (T, B, C', H', W') last-stage spikes; needed by SAMD and feature KD.
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
        total = F.cross_entropy(_promote(student_logits), labels)
        terms["ce"] = total
        if self.beta > 0:
            _require(
                ("student_spikes", student_spikes),
                ("teacher_features", teacher_features),
                ("teacher_classifier_weight", teacher_classifier_weight),
                term="SAMD",
            )
            samd = samd_loss(
                student_spikes,
                teacher_features,
                teacher_classifier_weight,
                labels=labels,
                teacher_logits=teacher_logits,
                temperature=self.samd_temperature,
                variant=self.samd_variant,
                target_class=self.samd_target_class,
            )
            terms["samd"] = samd
            total = total + self.beta * samd
        if self.gamma > 0:
            _require(("teacher_logits", teacher_logits), term="NLD")
            nld = nld_loss(
                student_logits,
                teacher_logits,
                temperature=self.nld_temperature,
                noise_weight=self.noise_weight,
                variant=self.nld_variant,
                generator=generator,
            )
            terms["nld"] = nld
            total = total + self.gamma * nld
        if self.alpha_kd > 0:
            _require(("teacher_logits", teacher_logits), term="KD")
            kd = hinton_kd_loss(student_logits, teacher_logits, self.kd_temperature)
            terms["kd"] = kd
            total = total + self.alpha_kd * kd
        if self.feature_kd is not None:
            _require(
                ("student_spikes", student_spikes),
                ("teacher_features", teacher_features),
                term="feature KD",
            )
            feature = self.feature_kd(student_spikes, teacher_features)
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
            f"samd_target_class={self.samd_target_class!r}"
        )


def _require(*named: tuple[str, Optional[torch.Tensor]], term: str) -> None:
    missing = [name for name, value in named if value is None]
    if missing:
        raise ValueError(f"{term} is enabled but {', '.join(missing)} was not given")
