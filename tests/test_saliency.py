"""Saliency maps: CAM, Grad-CAM, spike activation maps, resizing, min-max normalisation."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ckdsnn_events.distill.saliency import (
    class_activation_map,
    grad_cam,
    min_max_normalize,
    resize_map,
    spike_activation_map,
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class GapLinearHead(nn.Module):
    """The teacher's head: global average pooling, then nn.Linear(C, K)."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.linear = nn.Linear(channels, classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features.mean(dim=(2, 3)))


# --- CAM ------------------------------------------------------------------------------------


def test_cam_on_hand_made_tensors():
    # B=1, C=2, 2x2 feature map; two classes.
    features = torch.tensor([[[[1.0, 2.0], [0.0, -1.0]], [[3.0, 0.0], [1.0, 1.0]]]])
    weight = torch.tensor([[1.0, -1.0], [0.5, 2.0]])
    # class 0: 1*F0 - 1*F1 = [[-2, 2], [-1, -2]] -> ReLU -> [[0, 2], [0, 0]]
    cam0 = class_activation_map(features, weight, torch.tensor([0]))
    assert torch.equal(cam0, torch.tensor([[[0.0, 2.0], [0.0, 0.0]]]))
    # class 1: 0.5*F0 + 2*F1 = [[6.5, 1], [2, 1.5]] (all positive)
    cam1 = class_activation_map(features, weight, torch.tensor([1]))
    assert torch.allclose(cam1, torch.tensor([[[6.5, 1.0], [2.0, 1.5]]]))


def test_cam_matches_per_sample_loop_and_picks_each_samples_class():
    g = _generator(1)
    features = torch.randn(3, 4, 2, 3, generator=g, dtype=torch.float64)
    weight = torch.randn(5, 4, generator=g, dtype=torch.float64)
    classes = torch.tensor([4, 0, 2])
    cam = class_activation_map(features, weight, classes)
    assert cam.shape == (3, 2, 3)
    for b in range(3):
        expected = sum(weight[classes[b], c] * features[b, c] for c in range(4)).clamp(min=0)
        assert torch.allclose(cam[b], expected, atol=1e-12)


def test_cam_is_detached_from_the_teacher():
    features = torch.randn(2, 3, 2, 2, requires_grad=True)
    weight = torch.randn(4, 3, requires_grad=True)
    cam = class_activation_map(features, weight, torch.tensor([0, 1]))
    assert not cam.requires_grad


def test_cam_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        class_activation_map(torch.randn(2, 3, 2, 2), torch.randn(4, 5), torch.tensor([0, 1]))


# --- Grad-CAM -------------------------------------------------------------------------------


def test_grad_cam_of_gap_linear_head_equals_cam_over_hw():
    torch.manual_seed(0)
    head = GapLinearHead(channels=5, classes=4).double()
    features = torch.randn(3, 5, 3, 4, dtype=torch.float64)
    classes = torch.tensor([0, 3, 1])
    expected = class_activation_map(features, head.linear.weight, classes) / (3 * 4)
    assert torch.allclose(grad_cam(features, head, classes), expected, rtol=0, atol=1e-14)


def test_grad_cam_from_logits_tensor_and_graph_survives():
    torch.manual_seed(1)
    head = GapLinearHead(channels=3, classes=2).double()
    features = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    logits = head(features)
    classes = torch.tensor([1, 0])
    gc = grad_cam(features, logits, classes)
    expected = class_activation_map(features, head.linear.weight, classes) / 4
    assert torch.allclose(gc, expected, atol=1e-14)
    assert not gc.requires_grad
    logits.sum().backward()  # the caller's graph is still usable
    assert features.grad is not None


def test_grad_cam_uses_real_gradients_for_a_nonlinear_head():
    # y = Linear(GAP(F^2)): dy_k/dF_c[i,j] = w[k,c] * 2 F_c[i,j] / hw, so
    # alpha_c = w[k,c] * 2 * mean_ij(F_c) / hw.
    torch.manual_seed(2)
    linear = nn.Linear(3, 2).double()
    features = torch.randn(2, 3, 2, 3, dtype=torch.float64)
    classes = torch.tensor([1, 0])
    gc = grad_cam(features, lambda f: linear((f**2).mean(dim=(2, 3))), classes)
    hw = 6
    for b in range(2):
        alpha = linear.weight[classes[b]] * 2 * features[b].mean(dim=(1, 2)) / hw
        expected = torch.einsum("c,chw->hw", alpha, features[b]).clamp(min=0)
        assert torch.allclose(gc[b], expected.detach(), atol=1e-14)


def test_grad_cam_leaves_no_gradient_on_the_teacher():
    head = GapLinearHead(channels=3, classes=2)
    features = torch.randn(2, 3, 2, 2, requires_grad=True)
    grad_cam(features, head, torch.tensor([0, 1]))
    assert features.grad is None
    assert all(p.grad is None for p in head.parameters())


def test_grad_cam_rejects_logits_without_a_graph():
    features = torch.randn(1, 2, 2, 2)
    with pytest.raises(ValueError):
        grad_cam(features, torch.randn(1, 3), torch.tensor([0]))


# --- spike activation map -------------------------------------------------------------------


def test_spike_activation_map_sums_time_and_channels():
    g = _generator(3)
    spikes = (torch.rand(3, 2, 4, 2, 3, generator=g) < 0.4).float()  # (T, B, C, H, W)
    sam = spike_activation_map(spikes)
    assert sam.shape == (2, 2, 3)
    for b in range(2):
        for i in range(2):
            for j in range(3):
                assert sam[b, i, j] == sum(
                    spikes[t, b, c, i, j] for t in range(3) for c in range(4)
                )


def test_spike_activation_map_hand_made_and_bool_input():
    spikes = torch.zeros(2, 1, 2, 1, 2)
    spikes[0, 0, 0, 0, 0] = 1
    spikes[1, 0, 1, 0, 0] = 1
    spikes[1, 0, 1, 0, 1] = 1
    assert torch.equal(spike_activation_map(spikes), torch.tensor([[[2.0, 1.0]]]))
    assert torch.equal(spike_activation_map(spikes.bool()), torch.tensor([[[2.0, 1.0]]]))


def test_spike_activation_map_passes_gradient_to_every_spike():
    spikes = torch.rand(2, 2, 3, 2, 2, requires_grad=True)
    spike_activation_map(spikes).sum().backward()
    assert torch.equal(spikes.grad, torch.ones_like(spikes))


# --- resizing -------------------------------------------------------------------------------


def test_resize_map_keeps_cell_centres_align_corners_false():
    # A one-cell hot spot at teacher cell (1, 2) of a 4x4 map: its centre is at student pixel
    # coordinate (1 + 0.5) * 2 - 0.5 = 2.5 (rows) and (2 + 0.5) * 2 - 0.5 = 4.5 (columns).
    teacher = torch.zeros(1, 4, 4, dtype=torch.float64)
    teacher[0, 1, 2] = 1.0
    student_grid = resize_map(teacher, (8, 8))
    assert student_grid.shape == (1, 8, 8)
    rows = torch.arange(8, dtype=torch.float64)
    mass = student_grid[0].sum()
    centre_row = (student_grid[0].sum(dim=1) * rows).sum() / mass
    centre_col = (student_grid[0].sum(dim=0) * rows).sum() / mass
    assert centre_row.item() == pytest.approx(2.5)
    assert centre_col.item() == pytest.approx(4.5)
    # Separable bilinear weights 0.25, 0.75, 0.75, 0.25 around the cell along each axis.
    row_weights = torch.tensor([0, 0.25, 0.75, 0.75, 0.25, 0, 0, 0], dtype=torch.float64)
    col_weights = torch.tensor([0, 0, 0, 0.25, 0.75, 0.75, 0.25, 0], dtype=torch.float64)
    assert torch.allclose(student_grid[0], torch.outer(row_weights, col_weights))


def test_resize_map_constant_stays_constant_and_same_size_is_identity():
    constant = torch.full((2, 3, 5), 7.0)
    assert torch.allclose(resize_map(constant, (6, 10)), torch.full((2, 6, 10), 7.0))
    assert resize_map(constant, (3, 5)) is constant


def test_resize_map_antialiases_when_shrinking():
    # A 12x12 checkerboard shrunk 3x: plain bilinear sampling would keep one pixel in three and
    # give back a full-contrast checkerboard; the antialiased filter averages it to about 0.5.
    ii, jj = torch.meshgrid(torch.arange(12), torch.arange(12), indexing="ij")
    board = ((ii + jj) % 2).float().unsqueeze(0)
    small = resize_map(board, (4, 4))
    assert small.shape == (1, 4, 4)
    assert (small.max() - small.min()).item() < 0.2
    assert small.mean().item() == pytest.approx(0.5, abs=0.05)


def test_resize_map_works_on_feature_maps():
    features = torch.rand(2, 3, 4, 4)
    resized = resize_map(features, (8, 8))
    expected = F.interpolate(features, size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.allclose(resized, expected)


# --- min-max normalisation ------------------------------------------------------------------


def test_min_max_normalize_is_batch_global():
    maps = torch.tensor([[[0.0, 2.0], [4.0, 8.0]], [[1.0, 1.0], [1.0, 2.0]]])
    normalised = min_max_normalize(maps)  # global min 0, max 8, eps 1e-3
    assert torch.allclose(normalised, maps / 8.001)
    # The weak second sample stays weak: its max is 2/8, not 1 as per-sample scaling would give.
    assert normalised[1].max().item() == pytest.approx(2 / 8.001)
    shifted = min_max_normalize(maps + 10.0, eps=0.0)
    assert torch.allclose(shifted, maps / 8.0)
