"""SAMD (CKDSNN's Saliency-scaled Activation Map Distillation) and its ablation options.

SAMD aligns *where the student fires* with *where the teacher looks*. Per sample, the student's
map ``M_st`` (B, H, W) and the teacher's ``M_te`` (B, h, w) go through three steps:

1. **resize**: the teacher map is resized to the student's grid (bilinear, ``align_corners=False``,
   :func:`~ckdsnn_events.distill.saliency.resize_map`) and detached;
2. **normalisation** (``norm``, before the scaling, the same for both maps; :func:`normalize_maps`):

   - ``"none"``: the maps as they are (the paper's summary states no normalisation);
   - ``"batch-minmax"``: ``(m - min) / (max - min + 1e-3)`` with min and max over the *whole batch*
     (every sample and position), as the released code (``min_max_normalize``);
   - ``"sample-minmax"``: the same with min and max over each sample's own H*W positions, so that
     every map spans [0, 1) whatever the other samples of the batch hold;

3. **scaling and distance** (``scaling``; the paper's ablation compares softmax, none, z-score and
   L2-norm scaling; :func:`samd_divergence`):

   - ``"softmax"`` (CKDSNN): ``P = softmax(flat(m) / T)`` over the H*W positions, then
     ``T^2 * KL(P_te || P_st)``, batch mean; the ``"reference"`` variant computes the released
     code's ``compute_kl_divergence`` instead: ``p = softmax(flat(m) / T) + 1e-10`` for both
     maps, ``sum p_t * (log p_t - log p_s) / B``, without ``T^2``;
   - ``"none"``: ``s = m``;
   - ``"zscore"``: ``s = (m - mean(m)) / (std(m) + 1e-6)`` per sample over its H*W positions
     (population std); a constant map becomes 0;
   - ``"l2"``: ``s = m / (||m||_2 + 1e-6)`` per sample (the map as a unit vector);

   for the last three the maps are no distributions, so KL does not apply; the distance is the
   squared Euclidean distance between the scaled maps, summed over the H*W positions and averaged
   over the batch, ``mean_b sum_p (s_st - s_te)^2`` (for ``"l2"`` this is attention transfer's
   distance, Zagoruyko & Komodakis 2017, bounded by 2 for non-negative maps). That choice of
   distance is our reading: the paper's summary names the scalings, not the loss they feed.

The paper's form (``variant="paper"``: no normalisation, softmax) compares raw spike counts (up to
T * C') with Grad-CAM values of the order of a logit divided by h * w in one softmax; the student's
distribution is then far sharper than the teacher's and the SAMD gradient dwarfs CE's, which
flattens the student's maps instead of aligning them. A normalisation (``norm="sample-minmax"``)
puts both maps on one scale and makes the paper's form trainable; the released code's
batch-global min-max does the same for the batch as a whole.

Student maps (``student_map``): ``"sam"``, the spike activation map ``sum_t sum_c S``
(:func:`~ckdsnn_events.distill.saliency.spike_activation_map`, CKDSNN), or ``"gradcam"``, the
student's own Grad-CAM (:func:`student_grad_cam`, the paper's "maps" ablation).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ckdsnn_events.distill.loss_checks import (
    VARIANTS,
    check_choice,
    check_temperature,
    kl_from_log_probs,
    promote,
)
from ckdsnn_events.distill.saliency import (
    class_activation_map,
    min_max_normalize,
    resize_map,
    spike_activation_map,
)

__all__ = [
    "TARGET_CLASSES",
    "SCALINGS",
    "NORMS",
    "STUDENT_MAPS",
    "default_norm",
    "normalize_maps",
    "scale_maps",
    "student_grad_cam",
    "samd_divergence",
    "samd_loss",
]

TARGET_CLASSES = ("label", "predicted")
SCALINGS = ("softmax", "none", "zscore", "l2")
NORMS = ("none", "batch-minmax", "sample-minmax")
STUDENT_MAPS = ("sam", "gradcam")

# The reference code's constants: 1e-3 in the min-max denominator, 1e-10 added to both SAMD
# probability maps before the log.
REFERENCE_MINMAX_EPS = 1e-3
REFERENCE_PROB_EPS = 1e-10
# Guards of z-score and L2 scaling against a constant or all-zero map (a silent student stage).
SCALE_EPS = 1e-6


def default_norm(variant: str) -> str:
    """The normalisation a variant implies: "none" (paper), "batch-minmax" (reference)."""
    check_choice("SAMD variant", variant, VARIANTS)
    return "none" if variant == "paper" else "batch-minmax"


def normalize_maps(maps: torch.Tensor, norm: str) -> torch.Tensor:
    """(B, H, W) maps -> (B, H, W) maps normalised by ``norm`` (see the module docstring)."""
    check_choice("SAMD normalisation (loss.samd_norm)", norm, NORMS)
    if norm == "none":
        return maps
    if norm == "batch-minmax":
        return min_max_normalize(maps, eps=REFERENCE_MINMAX_EPS)
    flat = maps.reshape(maps.shape[0], -1)
    low = flat.min(dim=1, keepdim=True).values
    high = flat.max(dim=1, keepdim=True).values
    return ((flat - low) / (high - low + REFERENCE_MINMAX_EPS)).reshape(maps.shape)


def scale_maps(flat: torch.Tensor, scaling: str) -> torch.Tensor:
    """(B, P) maps -> (B, P) maps scaled by "none", "zscore" or "l2" (see the module docstring)."""
    check_choice("SAMD scaling (loss.samd_scaling)", scaling, SCALINGS[1:])
    if scaling == "none":
        return flat
    if scaling == "zscore":
        mean = flat.mean(dim=1, keepdim=True)
        std = flat.std(dim=1, keepdim=True, unbiased=False)
        return (flat - mean) / (std + SCALE_EPS)
    return flat / (flat.norm(dim=1, keepdim=True) + SCALE_EPS)


def student_grad_cam(
    student_spikes: torch.Tensor, student_logits: torch.Tensor, class_index: torch.Tensor
) -> torch.Tensor:
    """The student's Grad-CAM on its spikes: ``ReLU(sum_c alpha_c * sum_t S[t, :, c])``.

    ``alpha[b, c] = mean_{t,i,j} d y_k / d S[t, b, c, i, j]`` (Grad-CAM's channel weights, averaged
    over time as well as space), ``y_k`` the student logit of class ``k = class_index[b]``. The
    weights are detached (treated as constants, as Grad-CAM does), so the map's gradient reaches
    the student through the spike counts only, as the spike activation map's does. For the
    students here (per-step average pooling and linear layer, logits averaged over T),
    ``d y_k / d S[t, c, i, j] = w[k, c] / (T * H * W)``, so the map is the student's class
    activation map over its spike counts divided by ``T * H * W``.

    Args:
        student_spikes: (T, B, C, H, W) spikes of a stage, part of the graph of ``student_logits``.
        student_logits: (B, K).
        class_index: (B,) int64.

    Returns:
        (B, H, W) non-negative map, keeping the graph of the spikes.
    """
    if not student_spikes.requires_grad:
        raise ValueError("student_grad_cam needs spikes that are part of the logits' autograd graph")
    score = student_logits.gather(1, class_index.to(student_logits.device).view(-1, 1)).sum()
    (grads,) = torch.autograd.grad(score, student_spikes, retain_graph=True)
    alpha = grads.mean(dim=(0, 3, 4))  # (B, C)
    counts = student_spikes.sum(dim=0)  # (B, C, H, W)
    return torch.einsum("bc,bchw->bhw", alpha.detach().to(counts.dtype), counts).relu()


def samd_divergence(
    student_map: torch.Tensor,
    teacher_map: torch.Tensor,
    *,
    temperature: float = 2.0,
    variant: str = "paper",
    scaling: str = "softmax",
    norm: Optional[str] = None,
) -> torch.Tensor:
    """The SAMD distance between two saliency maps (steps 1-3 of the module docstring).

    Args:
        student_map: (B, H, W) student map (keeps its graph).
        teacher_map: (B, h, w) teacher map.
        temperature: softmax temperature ``T`` > 0 (unused by the other scalings).
        variant: "paper" or "reference" (the KL formula of the softmax scaling, and the default
            normalisation).
        scaling: "softmax", "none", "zscore" or "l2".
        norm: "none", "batch-minmax", "sample-minmax", or None for the variant's own (paper:
            none, reference: batch-minmax).

    Returns:
        Scalar loss.
    """
    check_temperature("temperature", temperature)
    check_choice("SAMD variant", variant, VARIANTS)
    check_choice("SAMD scaling (loss.samd_scaling)", scaling, SCALINGS)
    norm = default_norm(variant) if norm is None else norm
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
    student = promote(student_map)
    teacher = resize_map(promote(teacher_map.detach()), student.shape[-2:]).to(student.dtype)
    student = normalize_maps(student, norm).reshape(batch, -1)
    teacher = normalize_maps(teacher, norm).reshape(batch, -1)
    if scaling != "softmax":
        return (scale_maps(student, scaling) - scale_maps(teacher, scaling)).pow(2).sum(1).mean()
    if variant == "paper":
        log_p_student = F.log_softmax(student / temperature, dim=1)
        log_p_teacher = F.log_softmax(teacher / temperature, dim=1)
        return temperature**2 * kl_from_log_probs(log_p_teacher, log_p_student)
    p_student = F.softmax(student / temperature, dim=1) + REFERENCE_PROB_EPS
    p_teacher = F.softmax(teacher / temperature, dim=1) + REFERENCE_PROB_EPS
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
    scaling: str = "softmax",
    norm: Optional[str] = None,
    student_map: str = "sam",
    student_logits: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """SAMD: align the student's spike activation map with the teacher's class activation map.

    Student map: ``M_st = sum_t sum_c S``
    (:func:`~ckdsnn_events.distill.saliency.spike_activation_map`), or with
    ``student_map="gradcam"`` the student's Grad-CAM (:func:`student_grad_cam`, needs
    ``student_logits``) for the same class as the teacher's map.
    Teacher map, per variant:

    - ``"paper"``: Grad-CAM of the target class. For the GAP + linear head of the teachers here,
      Grad-CAM equals ``CAM / (h * w)`` exactly (derivation in
      :func:`~ckdsnn_events.distill.saliency.grad_cam`), computed without autograd. The paper
      takes Grad-CAM of "the target class" without saying whether that is the ground truth or
      the teacher's prediction; the default here is the ground-truth label ("label").
    - ``"reference"``: classic CAM (no ``1 / hw``) of the teacher's *predicted* class, as
      ``compute_cam`` in the public code (default ``target_class="predicted"``).

    Then :func:`samd_divergence` with the same variant, scaling and normalisation.
    ``target_class`` overrides the class choice for either variant ("label" needs ``labels``,
    "predicted" needs ``teacher_logits``).

    Args:
        student_spikes: (T, B, C', H, W) spikes of the distilled student stage (the last by default).
        teacher_features: (B, C, h, w) teacher feature map before global average pooling.
        classifier_weight: (K, C) weight of the teacher's final ``nn.Linear``.
        labels: (B,) ground-truth classes.
        teacher_logits: (B, K) teacher logits.
        temperature: ``T`` > 0.
        variant: "paper" or "reference".
        target_class: "label", "predicted", or None for the variant's default.
        scaling, norm: see :func:`samd_divergence`.
        student_map: "sam" or "gradcam".
        student_logits: (B, K) student logits; needed by ``student_map="gradcam"``.

    Returns:
        Scalar loss.
    """
    check_temperature("temperature", temperature)
    check_choice("SAMD variant", variant, VARIANTS)
    check_choice("SAMD student map (loss.samd_map)", student_map, STUDENT_MAPS)
    if target_class is None:
        target_class = "label" if variant == "paper" else "predicted"
    check_choice("SAMD target class", target_class, TARGET_CLASSES)
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
    if student_map == "gradcam":
        if student_logits is None:
            raise ValueError("SAMD with student_map='gradcam' needs student_logits")
        s_map = student_grad_cam(student_spikes, student_logits, class_index)
    else:
        s_map = spike_activation_map(student_spikes)
    return samd_divergence(s_map, teacher_map, temperature=temperature, variant=variant,
                           scaling=scaling, norm=norm)
