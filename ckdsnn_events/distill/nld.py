"""NLD (CKDSNN's Noise-smoothed Logits Distillation) and the noise it smooths the logits with.

    L_NLD  = tau^2 * KL(softmax(z_te / tau) || softmax(z_soft / tau)),
    z_soft = z_st + lambda * eps,     eps ~ N(mean(z_st), std(z_st)^2) per sample,

with tau = 2.0 and lambda = 0.1 (the paper's form). The noise ablation of the paper compares this
*adaptive* noise with Gaussian noise of a fixed standard deviation and with no noise at all; both
are options here (``noise="fixed"`` with ``noise_std``, ``noise="none"``).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ckdsnn_events.distill.loss_checks import (
    VARIANTS,
    check_choice,
    check_logits,
    check_temperature,
    check_weight,
    is_real,
    promote,
)
from ckdsnn_events.distill.kd import hinton_kd_loss
from ckdsnn_events.errors import UserError

__all__ = ["NOISE_KINDS", "nld_noise", "nld_loss", "check_noise"]

NOISE_KINDS = ("adaptive", "fixed", "none")


def check_noise(noise_weight: float, variant: str, noise: str = "adaptive",
                noise_std: float = 1.0, prefix: str = "") -> None:
    """UserError for a bad NLD noise setting (``prefix`` names the config section in messages)."""
    check_weight(f"{prefix}noise_weight", noise_weight)
    if variant == "reference" and noise_weight > 1:
        raise UserError(
            f"{prefix}noise_weight must be in [0, 1] for the 'reference' NLD variant, where it is a "
            f"mixture weight (got {noise_weight!r}); the reference code puts 0.1 on the noise."
        )
    check_choice(f"{prefix}nld_noise", noise, NOISE_KINDS)
    if not is_real(noise_std) or not noise_std > 0:
        raise UserError(f"{prefix}nld_noise_std must be a positive number (got {noise_std!r}); it is "
                        "the standard deviation of the fixed-std noise, e.g. 1.0.")


def nld_noise(
    logits: torch.Tensor,
    *,
    variant: str = "paper",
    generator: Optional[torch.Generator] = None,
    noise: str = "adaptive",
    noise_std: float = 1.0,
) -> torch.Tensor:
    """Gaussian noise for the student's logits.

    ``noise="adaptive"`` (CKDSNN), with ``mu_b = mean_k z[b, k]``, ``sigma_b = std_k z[b, k]``
    (Bessel-corrected, as ``torch.std`` and the public code; the paper does not say) and
    ``n ~ N(0, 1)``:

    - ``"paper"``: ``eps = mu + sigma * n``, i.e. ``eps ~ N(mu, sigma^2)``. The statistics are
      **detached**: the paper treats ``eps`` as a sample from a distribution fitted to the logits
      (noise added to them), not as a reparameterised function of them, so no gradient flows
      through ``mu`` or ``sigma``.
    - ``"reference"``: ``noise = mu + n * sigma**2`` (sic: the variance as the scale, as
      ``generate_gaussian_noise`` in the public code), **not** detached, as in that code.

    ``noise="fixed"`` (the ablation's fixed-std noise, either variant): ``eps = noise_std * n``,
    i.e. ``eps ~ N(0, noise_std^2)``, the same for every sample and independent of the logits
    (zero mean: our reading, the paper's summary gives only "fixed standard deviation").
    ``noise="none"``: zeros.

    Args:
        logits: (B, K) student logits, K >= 2.
        variant: "paper" or "reference".
        generator: optional ``torch.Generator`` on ``logits.device`` for reproducible noise;
            None draws from the global RNG.
        noise: "adaptive", "fixed" or "none".
        noise_std: standard deviation of the fixed noise (logit units).

    Returns:
        (B, K) noise, same dtype and device as ``logits``.
    """
    check_choice("NLD variant", variant, VARIANTS)
    check_choice("NLD noise", noise, NOISE_KINDS)
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must be (B, K) with K >= 2, got {tuple(logits.shape)}")
    if noise == "none":
        return torch.zeros_like(logits)
    standard = torch.randn(
        logits.shape, generator=generator, device=logits.device, dtype=logits.dtype
    )
    if noise == "fixed":
        return noise_std * standard
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
    noise: str = "adaptive",
    noise_std: float = 1.0,
) -> torch.Tensor:
    """NLD: distil the teacher's logits into noise-smoothed student logits.

    - ``"paper"``: ``z_soft = z + lambda * eps`` (additive, as the paper writes it; not a convex
      mixture), ``eps`` from :func:`nld_noise`; then ``tau^2 * KL(softmax(z_t / tau) ||
      softmax(z_soft / tau))`` (:func:`~ckdsnn_events.distill.kd.hinton_kd_loss`). Since ``eps``
      is detached, ``d z_soft / d z = I``: the gradient is the KD gradient evaluated at the
      smoothed logits. With ``noise="none"`` this is exactly Hinton KD.
    - ``"reference"``: ``soft_loss_smooth`` of the public code. The smoothing is a mixture in
      *probability* space, ``p_s = (1 - lambda) * softmax(z / tau) + lambda * softmax(noise / tau)``
      with ``noise = mu + n * sigma^2`` (not detached), then
      ``tau^2 * sum p_t * (log p_t - log p_s) / B`` (the code does multiply by ``tau^2`` here).
      The code's config calls the weight of the *clean* term ``noise_weight`` (0.9); here
      ``noise_weight`` is always the weight of the noise (0.1 reproduces the code). With
      ``noise="none"`` the mixture weight is 0 (``p_s = softmax(z / tau)``).

    Args:
        student_logits: (B, K).
        teacher_logits: (B, K); detached here.
        temperature: ``tau`` > 0.
        noise_weight: ``lambda`` >= 0 (and <= 1 for "reference").
        variant: "paper" or "reference".
        generator: optional ``torch.Generator`` for the noise (see :func:`nld_noise`).
        noise: "adaptive" (CKDSNN), "fixed" (``N(0, noise_std^2)``) or "none".
        noise_std: standard deviation of the fixed noise.

    Returns:
        Scalar loss.
    """
    check_temperature("temperature", temperature)
    check_choice("NLD variant", variant, VARIANTS)
    check_noise(noise_weight, variant, noise, noise_std)
    check_logits(student_logits, teacher_logits)
    student = promote(student_logits)
    if noise == "none":
        return hinton_kd_loss(student, teacher_logits, temperature)
    eps = nld_noise(student, variant=variant, generator=generator, noise=noise, noise_std=noise_std)
    if variant == "paper":
        return hinton_kd_loss(student + noise_weight * eps, teacher_logits, temperature)
    p_clean = F.softmax(student / temperature, dim=1)
    p_noise = F.softmax(eps / temperature, dim=1)
    p_student = (1 - noise_weight) * p_clean + noise_weight * p_noise
    p_teacher = F.softmax(promote(teacher_logits.detach()) / temperature, dim=1)
    return temperature**2 * F.kl_div(p_student.log(), p_teacher, reduction="batchmean")
