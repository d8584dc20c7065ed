"""Saliency maps for SAMD: the teacher's class activation map, the student's spike activation map.

CKDSNN (Liu et al., AAAI 2026, arXiv 2511.06902) distils *where* the teacher looks into *where*
the student fires. Both sides are reduced to one non-negative map per sample, shape (B, H, W):

- teacher: a class activation map of the last feature map before global average pooling, either
  classic CAM (Zhou et al. 2016) or Grad-CAM (Selvaraju et al. 2017). The paper uses Grad-CAM; the
  public code uses classic CAM. For the usual GAP + linear head the two differ only by the constant
  factor ``1 / (h * w)`` (derivation in :func:`grad_cam`).
- student: the spike activation map (SAM), spikes of the last spiking stage summed over time and
  channels, ``M_st = sum_t sum_c S[t, c]``.

Everything here works on plain tensors; nothing imports the models. Teacher maps come back
detached (the teacher is frozen); the student map keeps its graph so that gradients reach the
spikes (and, through the surrogate, the student's weights).
"""

from __future__ import annotations

from typing import Callable, Union

import torch
import torch.nn.functional as F

__all__ = [
    "class_activation_map",
    "grad_cam",
    "spike_activation_map",
    "resize_map",
    "min_max_normalize",
]

LogitsOrHead = Union[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


def class_activation_map(
    feature_map: torch.Tensor, classifier_weight: torch.Tensor, class_index: torch.Tensor
) -> torch.Tensor:
    """Classic CAM: ``ReLU(sum_c w[k, c] * F[c])`` for the class ``k`` of each sample.

    Args:
        feature_map: (B, C, h, w) teacher feature map before global average pooling.
        classifier_weight: (K, C) weight of the ``nn.Linear(C, K)`` that follows the pooling.
        class_index: (B,) int64, the class ``k`` whose map is wanted for each sample.

    Returns:
        (B, h, w) non-negative map, in the units of the feature map times the weights (the class
        score before averaging over the h*w positions; its mean plus the bias is the logit when no
        position is clipped by the ReLU). Detached: this is a teacher-side target.
    """
    if feature_map.dim() != 4:
        raise ValueError(f"feature_map must be (B, C, h, w), got shape {tuple(feature_map.shape)}")
    if classifier_weight.dim() != 2 or classifier_weight.shape[1] != feature_map.shape[1]:
        raise ValueError(
            f"classifier_weight must be (K, C={feature_map.shape[1]}), "
            f"got shape {tuple(classifier_weight.shape)}"
        )
    with torch.no_grad():
        weights = classifier_weight.detach()[class_index.to(classifier_weight.device)]  # (B, C)
        cam = torch.einsum("bc,bchw->bhw", weights.to(feature_map.dtype), feature_map.detach())
        return cam.relu_()


def grad_cam(
    feature_map: torch.Tensor, logits_or_fn: LogitsOrHead, class_index: torch.Tensor
) -> torch.Tensor:
    """Grad-CAM: ``ReLU(sum_c alpha_c F_c)`` with ``alpha_c = mean_ij d y_k / d F_c[i, j]``.

    Args:
        feature_map: (B, C, h, w) teacher feature map.
        logits_or_fn: either the (B, K) logits computed *from* ``feature_map`` (which must then
            be part of their autograd graph), or a callable ``head(feature_map) -> (B, K) logits``
            (for example global average pooling followed by the teacher's ``nn.Linear``); the
            callable is evaluated on a detached copy, so the teacher receives no gradient.
        class_index: (B,) int64 class ``k`` per sample.

    Returns:
        (B, h, w) non-negative map, detached.

    The scores of all samples are summed before one ``autograd.grad`` call: sample ``b``'s score
    depends only on ``F[b]`` for any per-sample head (not for a BatchNorm in training mode, which
    mixes the batch; evaluate the teacher head in ``eval()`` mode).

    For a GAP + linear head, ``y_k = (1 / hw) sum_c w[k, c] sum_ij F_c[i, j] + b_k``, so
    ``d y_k / d F_c[i, j] = w[k, c] / hw`` at every position, ``alpha_c = w[k, c] / hw``, and
    ``Grad-CAM = ReLU(sum_c w[k, c] F_c) / hw = CAM / (h * w)`` exactly (ReLU commutes with a
    positive factor). SAMD uses that identity to get the paper's Grad-CAM without autograd.
    """
    if feature_map.dim() != 4:
        raise ValueError(f"feature_map must be (B, C, h, w), got shape {tuple(feature_map.shape)}")
    with torch.enable_grad():
        if callable(logits_or_fn):
            features = feature_map.detach().requires_grad_(True)
            logits = logits_or_fn(features)
        else:
            features, logits = feature_map, logits_or_fn
            if not features.requires_grad:
                raise ValueError(
                    "grad_cam: feature_map does not require grad, so the logits cannot have been "
                    "computed from it with autograd on; pass a head callable instead"
                )
        index = class_index.to(logits.device).view(-1, 1)
        scores = logits.gather(1, index).sum()
        # Keep a caller-supplied graph alive: the caller may still backpropagate through it.
        keep_graph = not callable(logits_or_fn)
        (gradients,) = torch.autograd.grad(scores, features, retain_graph=keep_graph)
    with torch.no_grad():
        alpha = gradients.mean(dim=(2, 3))  # (B, C)
        return torch.einsum("bc,bchw->bhw", alpha, features.detach()).relu_()


def spike_activation_map(spikes: torch.Tensor) -> torch.Tensor:
    """Spike activation map ``M_st = sum_t sum_c S[t, :, c]``.

    Args:
        spikes: (T, B, C, H, W) spikes of the student's last spiking stage, values in {0, 1}.

    Returns:
        (B, H, W) spike counts per position (float; at most T * C), keeping the autograd graph so
        that the SAMD gradient reaches the spikes.
    """
    if spikes.dim() != 5:
        raise ValueError(f"spikes must be (T, B, C, H, W), got shape {tuple(spikes.shape)}")
    if not spikes.is_floating_point():
        spikes = spikes.float()
    return spikes.sum(dim=(0, 2))


def resize_map(saliency: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize maps (..., h, w) to (..., *size): bilinear, ``align_corners=False``.

    ``align_corners=False`` treats each map value as the value of a cell, with cell centres at
    half-integer coordinates, which is how strided convolutions and pooling lay a small feature map
    over a larger one: a 4x4 teacher cell covers exactly a 2x2 block of an 8x8 student map and its
    value lands centred on that block. ``align_corners=True`` would instead pin the corner *cells*
    together and pull every interior cell towards the border (a one-cell hot spot's centre of mass
    moves by up to a quarter of a teacher cell). Bilinear weights form a convex combination, so a
    non-negative map stays non-negative. When shrinking, the filter is antialiased (an
    area-weighted average instead of sampling a few of the values).

    Args:
        saliency: (B, h, w) maps or (B, C, h, w) feature maps (any leading dimensions).
        size: target (H, W).
    """
    if saliency.dim() < 2:
        raise ValueError(f"maps must be (..., h, w), got shape {tuple(saliency.shape)}")
    height, width = int(size[0]), int(size[1])
    *leading, in_height, in_width = saliency.shape
    if (in_height, in_width) == (height, width):
        return saliency
    resized = F.interpolate(
        saliency.reshape(-1, 1, in_height, in_width),
        size=(height, width),
        mode="bilinear",
        align_corners=False,
        antialias=in_height > height or in_width > width,
    )
    return resized.reshape(*leading, height, width)


def min_max_normalize(saliency: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Batch-global min-max normalisation ``(m - min) / (max - min + eps)``, as the public code.

    ``min`` and ``max`` are taken over the *whole batch* (every sample and position), not per
    sample: a sample whose map is weak relative to the rest of the batch stays weak. ``eps``
    defaults to the reference code's 1e-3 (``cam / (cam.max() + 1e-3)`` after subtracting the min).

    Args:
        saliency: (B, H, W) maps.

    Returns:
        (B, H, W) maps in [0, 1).
    """
    shifted = saliency - saliency.min()
    return shifted / (shifted.max() + eps)
