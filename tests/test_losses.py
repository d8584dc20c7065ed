"""Distillation losses: each checked against a direct re-computation of its formula."""

import math

import pytest
import torch
import torch.nn.functional as F

from ckdsnn_events.distill.losses import (
    DistillationLoss,
    FeatureKDLoss,
    FeatureProjector,
    feature_kd_loss,
    hinton_kd_loss,
    nld_loss,
    nld_noise,
    samd_divergence,
    samd_loss,
)
from ckdsnn_events.distill.saliency import class_activation_map, grad_cam
from ckdsnn_events.errors import UserError

f64 = torch.float64


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _probs(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """Row softmax written out, independent of F.softmax."""
    e = torch.exp(x / temperature - (x / temperature).max(dim=1, keepdim=True).values)
    return e / e.sum(dim=1, keepdim=True)


def _logit_pair(seed: int, batch: int, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = _generator(seed)
    return tuple(torch.randn(batch, classes, generator=g, dtype=f64) for _ in range(2))


def _kl_rows_mean(p_teacher: torch.Tensor, p_student: torch.Tensor) -> torch.Tensor:
    """mean_b sum_i p_t log(p_t / p_s)."""
    return (p_teacher * torch.log(p_teacher / p_student)).sum(dim=1).mean()


# --- Hinton KD ------------------------------------------------------------------------------


def test_kd_matches_the_formula_and_kl_div():
    student, teacher = _logit_pair(0, 4, 5)
    for tau in (1.0, 2.0, 3.5):
        loss = hinton_kd_loss(student, teacher, tau)
        direct = tau**2 * _kl_rows_mean(_probs(teacher, tau), _probs(student, tau))
        via_kl_div = tau**2 * F.kl_div(
            F.log_softmax(student / tau, dim=1),
            F.softmax(teacher / tau, dim=1),
            reduction="batchmean",
        )
        assert loss.item() == pytest.approx(direct.item(), rel=1e-12)
        assert loss.item() == pytest.approx(via_kl_div.item(), rel=1e-12)


def test_kd_hand_made_value():
    # One sample, two classes, tau = 1: p_t = softmax([0, 0]) = (1/2, 1/2),
    # p_s = softmax([log 3, 0]) = (3/4, 1/4). KL = 1/2 log(2/3) + 1/2 log(2).
    student = torch.tensor([[math.log(3.0), 0.0]], dtype=f64)
    teacher = torch.zeros(1, 2, dtype=f64)
    expected = 0.5 * math.log(2 / 3) + 0.5 * math.log(2)
    assert hinton_kd_loss(student, teacher, 1.0).item() == pytest.approx(expected, rel=1e-12)
    # At tau = 2 the logits halve: p_s = softmax([log 3 / 2, 0]) = (sqrt3, 1) / (sqrt3 + 1).
    r3 = math.sqrt(3)
    kl2 = 0.5 * math.log(0.5 * (r3 + 1) / r3) + 0.5 * math.log(0.5 * (r3 + 1))
    assert hinton_kd_loss(student, teacher, 2.0).item() == pytest.approx(4 * kl2, rel=1e-12)


def test_kd_tau_squared_scaling_and_high_temperature_limit():
    student, teacher = _logit_pair(1, 3, 6)
    for tau in (1.0, 2.0, 4.0):
        raw_kl = _kl_rows_mean(_probs(teacher, tau), _probs(student, tau))
        assert hinton_kd_loss(student, teacher, tau).item() == pytest.approx(tau**2 * raw_kl.item())
    # For large tau, tau^2 KL -> (1 / 2K) sum_i (d_i - mean d)^2, d = z_t - z_s (batch mean):
    # the tau^2 factor makes the loss independent of tau there.
    d = teacher - student
    limit = ((d - d.mean(dim=1, keepdim=True)) ** 2).sum(dim=1).mean() / (2 * 6)
    assert hinton_kd_loss(student, teacher, 1000.0).item() == pytest.approx(limit.item(), rel=1e-3)


def test_kd_is_zero_when_student_equals_teacher():
    logits = torch.randn(5, 7, generator=_generator(2))
    assert hinton_kd_loss(logits.clone(), logits, 2.0).abs().item() < 1e-6


def test_kd_gradient_analytic_and_finite_differences():
    g = _generator(3)
    student = torch.randn(3, 4, generator=g, dtype=f64, requires_grad=True)
    teacher = torch.randn(3, 4, generator=g, dtype=f64)
    tau = 2.0
    hinton_kd_loss(student, teacher, tau).backward()
    analytic = tau * (_probs(student.detach(), tau) - _probs(teacher, tau)) / 3
    assert torch.allclose(student.grad, analytic, atol=1e-12)
    leaf = student.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda s: hinton_kd_loss(s, teacher, tau), (leaf,))


def test_kd_teacher_gets_no_gradient():
    student = torch.randn(2, 3, requires_grad=True)
    teacher = torch.randn(2, 3, requires_grad=True)
    hinton_kd_loss(student, teacher).backward()
    assert teacher.grad is None and student.grad is not None


def test_kd_promotes_half_precision():
    g = _generator(4)
    student, teacher = torch.randn(4, 10, generator=g), torch.randn(4, 10, generator=g)
    loss = hinton_kd_loss(student.bfloat16(), teacher.bfloat16())
    assert loss.dtype == torch.float32
    reference = hinton_kd_loss(student.bfloat16().float(), teacher.bfloat16().float())
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)


# --- feature KD -----------------------------------------------------------------------------


def _identity_like_projector(weight: torch.Tensor) -> FeatureProjector:
    """Projector whose BN is the identity (eval mode, mean 0, var 1 - eps), conv weight given."""
    projector = FeatureProjector(weight.shape[1], weight.shape[0]).double().eval()
    with torch.no_grad():
        projector[0].weight.copy_(weight.view(*weight.shape, 1, 1))
        projector[1].running_var.fill_(1 - projector[1].eps)
    return projector


def test_feature_kd_is_mse_of_projected_time_averaged_spikes():
    g = _generator(5)
    spikes = (torch.rand(4, 2, 3, 4, 4, generator=g) < 0.5).to(f64)  # T=4, C'=3
    teacher = torch.randn(2, 5, 4, 4, generator=g, dtype=f64)
    weight = torch.randn(5, 3, generator=g, dtype=f64)
    loss = feature_kd_loss(spikes, teacher, _identity_like_projector(weight))
    rates = spikes.mean(dim=0)
    projected = torch.einsum("oc,bchw->bohw", weight, rates)
    assert loss.item() == pytest.approx(((projected - teacher) ** 2).mean().item(), rel=1e-12)


def test_feature_kd_resizes_the_teacher_to_the_student_grid():
    g = _generator(6)
    spikes = (torch.rand(2, 2, 3, 4, 4, generator=g) < 0.5).to(f64)
    teacher = torch.randn(2, 5, 2, 2, generator=g, dtype=f64)
    weight = torch.randn(5, 3, generator=g, dtype=f64)
    loss = feature_kd_loss(spikes, teacher, _identity_like_projector(weight))
    upsampled = F.interpolate(teacher, size=(4, 4), mode="bilinear", align_corners=False)
    projected = torch.einsum("oc,bchw->bohw", weight, spikes.mean(dim=0))
    assert loss.item() == pytest.approx(((projected - upsampled) ** 2).mean().item(), rel=1e-12)


def test_feature_kd_trains_the_projector_not_the_teacher():
    module = FeatureKDLoss(student_channels=3, teacher_channels=5)
    spikes = (torch.rand(2, 2, 3, 4, 4) < 0.5).float().requires_grad_()
    teacher = torch.randn(2, 5, 4, 4, requires_grad=True)
    module(spikes, teacher).backward()
    assert teacher.grad is None
    assert spikes.grad is not None
    assert all(p.grad is not None for p in module.parameters())


# --- SAMD -----------------------------------------------------------------------------------


def test_samd_paper_divergence_matches_the_formula():
    student = torch.tensor([[[0.0, 3.0], [1.0, 2.0]], [[4.0, 4.0], [0.0, 1.0]]], dtype=f64)
    teacher = torch.tensor([[[0.5, 0.1], [0.0, 0.9]], [[0.2, 0.2], [0.3, 0.0]]], dtype=f64)
    for tau in (1.0, 2.0, 5.0):
        loss = samd_divergence(student, teacher, temperature=tau, variant="paper")
        kl = _kl_rows_mean(_probs(teacher.view(2, -1), tau), _probs(student.view(2, -1), tau))
        assert loss.item() == pytest.approx(tau**2 * kl.item(), rel=1e-12)


def test_samd_reference_divergence_matches_the_public_code_formula():
    student = torch.tensor([[[0.0, 3.0], [1.0, 2.0]], [[4.0, 4.0], [0.0, 1.0]]], dtype=f64)
    teacher = torch.tensor([[[0.5, 0.1], [0.0, 0.9]], [[0.2, 0.2], [0.3, 0.0]]], dtype=f64)
    tau = 2.0
    # Batch-global min-max: student min 0, max 4; teacher min 0, max 0.9 (eps 1e-3).
    s = student / (4 + 1e-3)
    t = teacher / (0.9 + 1e-3)
    p_s = _probs(s.view(2, -1), tau) + 1e-10
    p_t = _probs(t.view(2, -1), tau) + 1e-10
    expected = (p_t * (p_t.log() - p_s.log())).sum() / 2  # no tau^2
    loss = samd_divergence(student, teacher, temperature=tau, variant="reference")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)


def test_samd_reference_normalises_over_the_batch_not_per_sample():
    # Sample 2 is the first scaled by 1/4. Per-sample min-max would make the samples identical;
    # batch-global normalisation keeps sample 2 weak, so its softmax is flatter.
    base = torch.tensor([[0.0, 1.0], [2.0, 4.0]], dtype=f64)
    teacher = torch.stack([base, base / 4])
    student = torch.stack([base, base]) * 3  # per-sample shapes equal to the teacher's
    loss = samd_divergence(student, teacher, temperature=1.0, variant="reference")
    per_sample_t = teacher / teacher.amax(dim=(1, 2), keepdim=True)
    global_s = student / (student.max() + 1e-3)
    global_t = teacher / (teacher.max() + 1e-3)
    expected = _kl_rows_mean(
        _probs(global_t.view(2, -1), 1.0) + 1e-10, _probs(global_s.view(2, -1), 1.0) + 1e-10
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-8)
    # With per-sample normalisation the second sample would match exactly; globally it does not.
    assert not torch.allclose(global_t[1], per_sample_t[1])
    assert loss.item() > 1e-3


def test_samd_scales_with_tau_squared_only_in_the_paper_variant():
    g = _generator(7)
    student = torch.rand(3, 4, 4, generator=g, dtype=f64) * 5
    teacher = torch.rand(3, 4, 4, generator=g, dtype=f64)
    for tau in (1.0, 3.0):
        paper = samd_divergence(student, teacher, temperature=tau, variant="paper")
        kl = _kl_rows_mean(_probs(teacher.view(3, -1), tau), _probs(student.view(3, -1), tau))
        assert paper.item() == pytest.approx(tau**2 * kl.item(), rel=1e-12)
        reference = samd_divergence(student, teacher, temperature=tau, variant="reference")
        s = (student - student.min()) / (student.max() - student.min() + 1e-3)
        t = (teacher - teacher.min()) / (teacher.max() - teacher.min() + 1e-3)
        kl_ref = _kl_rows_mean(
            _probs(t.view(3, -1), tau) + 1e-10, _probs(s.view(3, -1), tau) + 1e-10
        )
        assert reference.item() == pytest.approx(kl_ref.item(), rel=1e-8)


def test_samd_is_zero_when_the_maps_agree_up_to_a_constant():
    teacher = torch.rand(2, 3, 3, generator=_generator(8), dtype=f64)
    assert samd_divergence(teacher + 5.0, teacher).item() == pytest.approx(0.0, abs=1e-12)


def test_samd_resizes_a_4x4_teacher_map_to_an_8x8_student_map():
    g = _generator(9)
    teacher = torch.rand(2, 4, 4, generator=g, dtype=f64)
    student = torch.rand(2, 8, 8, generator=g, dtype=f64) * 3
    upsampled = F.interpolate(
        teacher.unsqueeze(1), size=(8, 8), mode="bilinear", align_corners=False
    ).squeeze(1)
    for variant in ("paper", "reference"):
        assert samd_divergence(student, teacher, variant=variant).item() == pytest.approx(
            samd_divergence(student, upsampled, variant=variant).item(), rel=1e-12
        )
    # A student firing exactly like the bilinearly upsampled teacher map (plus a constant) has
    # zero loss; nearest-neighbour upsampling (a different geometry) does not.
    assert samd_divergence(upsampled + 2.0, teacher).item() == pytest.approx(0.0, abs=1e-12)
    nearest = F.interpolate(teacher.unsqueeze(1), size=(8, 8), mode="nearest").squeeze(1)
    assert samd_divergence(nearest, teacher).item() > 1e-4


def _samd_inputs(seed: int):
    g = _generator(seed)
    spikes = (torch.rand(3, 2, 4, 8, 8, generator=g) < 0.3).to(f64)  # T=3, B=2, C'=4, 8x8
    features = torch.rand(2, 6, 4, 4, generator=g, dtype=f64)  # C=6, 4x4
    weight = torch.randn(5, 6, generator=g, dtype=f64)  # K=5
    labels = torch.tensor([1, 3])
    teacher_logits = torch.zeros(2, 5, dtype=f64)
    teacher_logits[0, 4] = 1.0  # predictions (4, 0) differ from the labels (1, 3)
    teacher_logits[1, 0] = 1.0
    return spikes, features, weight, labels, teacher_logits


def test_samd_loss_paper_uses_grad_cam_of_the_label():
    spikes, features, weight, labels, teacher_logits = _samd_inputs(10)
    loss = samd_loss(spikes, features, weight, labels=labels, teacher_logits=teacher_logits)
    head = torch.nn.Linear(6, 5).double()
    with torch.no_grad():
        head.weight.copy_(weight)
    teacher_map = grad_cam(features, lambda f: head(f.mean(dim=(2, 3))), labels)
    student_map = spikes.sum(dim=(0, 2))
    expected = samd_divergence(student_map, teacher_map, temperature=2.0, variant="paper")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)
    predicted = samd_loss(
        spikes, features, weight, teacher_logits=teacher_logits, target_class="predicted"
    )
    teacher_map_pred = class_activation_map(features, weight, torch.tensor([4, 0])) / 16
    assert predicted.item() == pytest.approx(
        samd_divergence(student_map, teacher_map_pred).item(), rel=1e-10
    )
    assert predicted.item() != pytest.approx(loss.item())


def test_samd_loss_reference_uses_classic_cam_of_the_prediction():
    spikes, features, weight, labels, teacher_logits = _samd_inputs(11)
    loss = samd_loss(
        spikes, features, weight, labels=labels, teacher_logits=teacher_logits, variant="reference"
    )
    cam = class_activation_map(features, weight, teacher_logits.argmax(dim=1))
    expected = samd_divergence(spikes.sum(dim=(0, 2)), cam, variant="reference")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    with pytest.raises(ValueError):
        samd_loss(spikes, features, weight, labels=labels, variant="reference")


def test_samd_gradients_finite_differences_both_variants():
    g = _generator(12)
    student = (torch.rand(2, 3, 3, generator=g, dtype=f64) * 4).requires_grad_()
    teacher = torch.rand(2, 2, 2, generator=g, dtype=f64)
    for variant in ("paper", "reference"):
        assert torch.autograd.gradcheck(
            lambda s: samd_divergence(s, teacher, temperature=2.0, variant=variant), (student,)
        )


def test_samd_paper_gradient_analytic():
    # d/dM_st of T^2 KL(P_t || softmax(M_st / T)) = T (P_s - P_t) / B at each position.
    g = _generator(13)
    student = torch.rand(2, 2, 3, generator=g, dtype=f64).requires_grad_()
    teacher = torch.rand(2, 2, 3, generator=g, dtype=f64)
    tau = 2.0
    samd_divergence(student, teacher, temperature=tau).backward()
    p_s = _probs(student.detach().view(2, -1), tau)
    p_t = _probs(teacher.view(2, -1), tau)
    assert torch.allclose(student.grad.view(2, -1), tau * (p_s - p_t) / 2, atol=1e-12)


def test_samd_teacher_tensors_get_no_gradient_student_spikes_do():
    spikes, features, weight, labels, teacher_logits = _samd_inputs(14)
    spikes.requires_grad_()
    features.requires_grad_()
    weight.requires_grad_()
    teacher_logits.requires_grad_()
    for variant in ("paper", "reference"):
        spikes.grad = None
        samd_loss(
            spikes, features, weight, labels=labels, teacher_logits=teacher_logits, variant=variant
        ).backward()
        assert spikes.grad is not None and spikes.grad.abs().sum() > 0
        assert features.grad is None and weight.grad is None and teacher_logits.grad is None


# --- NLD ------------------------------------------------------------------------------------

ROWS = torch.tensor(
    [
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        [5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 6.0],
        [-3.0, 10.0, 0.5, 0.5, 2.0, -1.0, 0.0, 4.0, 1.0, -2.0],
    ],
    dtype=f64,
)


def test_nld_paper_noise_has_the_logits_mean_and_std():
    # 2000 copies of each row, K = 10: n = 20000 noise values per row. The sample mean has
    # standard error sigma / sqrt(n), the sample std about sigma / sqrt(2n); allow 5 of each.
    draws = 2000
    noise = nld_noise(ROWS.repeat(draws, 1), generator=_generator(15)).view(draws, 3, 10)
    n = draws * 10
    for row in range(3):
        mu, sigma = ROWS[row].mean().item(), ROWS[row].std().item()
        values = noise[:, row, :]
        assert abs(values.mean().item() - mu) < 5 * sigma / math.sqrt(n)
        assert abs(values.std().item() - sigma) < 5 * sigma / math.sqrt(2 * n)


def test_nld_reference_noise_uses_the_variance_as_scale():
    draws = 2000
    noise = nld_noise(ROWS.repeat(draws, 1), variant="reference", generator=_generator(16))
    noise = noise.view(draws, 3, 10)
    n = draws * 10
    for row in range(3):
        mu, variance = ROWS[row].mean().item(), ROWS[row].var().item()
        values = noise[:, row, :]
        assert abs(values.mean().item() - mu) < 5 * variance / math.sqrt(n)
        assert abs(values.std().item() - variance) < 5 * variance / math.sqrt(2 * n)


@pytest.mark.parametrize("variant", ["paper", "reference"])
def test_nld_is_reproducible_with_a_seeded_generator(variant):
    g = _generator(17)
    student, teacher = torch.randn(4, 10, generator=g), torch.randn(4, 10, generator=g)

    def loss(seed):
        return nld_loss(student, teacher, variant=variant, generator=_generator(seed))

    assert torch.equal(loss(123), loss(123))
    assert loss(123).item() != loss(124).item()


def test_nld_paper_matches_the_formula():
    student, teacher = _logit_pair(18, 3, 6)
    tau, lam = 2.0, 0.1
    loss = nld_loss(student, teacher, temperature=tau, noise_weight=lam, generator=_generator(5))
    n = torch.randn(3, 6, generator=_generator(5), dtype=f64)
    eps = student.mean(dim=1, keepdim=True) + student.std(dim=1, keepdim=True) * n
    smoothed = student + lam * eps  # additive, as the paper writes z_soft = z + lambda * eps
    expected = tau**2 * _kl_rows_mean(_probs(teacher, tau), _probs(smoothed, tau))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)


def test_nld_reference_matches_the_public_code_formula():
    student, teacher = _logit_pair(19, 3, 6)
    tau = 2.0
    loss = nld_loss(
        student,
        teacher,
        temperature=tau,
        noise_weight=0.1,
        variant="reference",
        generator=_generator(6),
    )
    n = torch.randn(3, 6, generator=_generator(6), dtype=f64)
    noise = student.mean(dim=1, keepdim=True) + n * student.std(dim=1, keepdim=True) ** 2
    p_s = 0.9 * _probs(student, tau) + 0.1 * _probs(noise, tau)
    expected = tau**2 * _kl_rows_mean(_probs(teacher, tau), p_s)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)


@pytest.mark.parametrize("variant", ["paper", "reference"])
def test_nld_without_noise_is_kd_and_zero_for_equal_logits(variant):
    student, teacher = _logit_pair(20, 3, 5)
    plain = nld_loss(student, teacher, noise_weight=0.0, variant=variant, generator=_generator(1))
    assert plain.item() == pytest.approx(hinton_kd_loss(student, teacher, 2.0).item(), rel=1e-12)
    same = nld_loss(teacher, teacher, noise_weight=0.0, variant=variant, generator=_generator(1))
    assert abs(same.item()) < 1e-12


def test_nld_paper_noise_carries_no_gradient():
    # eps is detached, so d z_soft / d z = I and the gradient is the KD gradient at z_soft:
    # tau * (softmax(z_soft / tau) - softmax(z_t / tau)) / B.
    g = _generator(21)
    student = torch.randn(3, 5, generator=g, dtype=f64, requires_grad=True)
    teacher = torch.randn(3, 5, generator=g, dtype=f64)
    tau, lam = 2.0, 0.5
    loss = nld_loss(student, teacher, temperature=tau, noise_weight=lam, generator=_generator(7))
    loss.backward()
    eps = nld_noise(student.detach(), generator=_generator(7))
    assert not eps.requires_grad
    p_soft = _probs(student.detach() + lam * eps, tau)
    assert torch.allclose(student.grad, tau * (p_soft - _probs(teacher, tau)) / 3, atol=1e-12)
    assert not nld_noise(student, generator=_generator(7)).requires_grad


def test_nld_reference_gradient_flows_through_the_noise_statistics():
    g = _generator(22)
    student = torch.randn(2, 4, generator=g, dtype=f64, requires_grad=True)
    teacher = torch.randn(2, 4, generator=g, dtype=f64)
    assert nld_noise(student, variant="reference", generator=_generator(8)).requires_grad

    def loss(s):
        return nld_loss(s, teacher, noise_weight=0.3, variant="reference", generator=_generator(8))

    # Finite differences move mu and sigma with z; they agree with autograd only because the
    # reference variant differentiates through them. (The paper variant, with detached noise,
    # is checked analytically above instead.)
    assert torch.autograd.gradcheck(loss, (student,))


def test_nld_teacher_gets_no_gradient():
    student = torch.randn(2, 4, requires_grad=True)
    teacher = torch.randn(2, 4, requires_grad=True)
    for variant in ("paper", "reference"):
        nld_loss(student, teacher, variant=variant).backward()
    assert teacher.grad is None and student.grad is not None


# --- the total ------------------------------------------------------------------------------


def _total_inputs(seed: int):
    g = _generator(seed)
    return dict(
        student_logits=torch.randn(2, 5, generator=g, dtype=f64, requires_grad=True),
        labels=torch.tensor([1, 3]),
        teacher_logits=torch.randn(2, 5, generator=g, dtype=f64, requires_grad=True),
        student_spikes=(torch.rand(3, 2, 4, 8, 8, generator=g) < 0.3).to(f64).requires_grad_(),
        teacher_features=torch.rand(2, 6, 4, 4, generator=g, dtype=f64, requires_grad=True),
        teacher_classifier_weight=torch.randn(5, 6, generator=g, dtype=f64, requires_grad=True),
    )


def test_default_total_is_ce_plus_samd_plus_nld():
    x = _total_inputs(23)
    criterion = DistillationLoss()
    total, terms = criterion(**x, generator=_generator(9))
    assert set(terms) == {"ce", "samd", "nld", "total"}
    ce = F.cross_entropy(x["student_logits"], x["labels"])
    samd = samd_loss(
        x["student_spikes"],
        x["teacher_features"],
        x["teacher_classifier_weight"],
        labels=x["labels"],
    )
    nld = nld_loss(x["student_logits"], x["teacher_logits"], generator=_generator(9))
    assert total.item() == pytest.approx((ce + samd + nld).item(), rel=1e-12)
    for name, value in (("ce", ce), ("samd", samd), ("nld", nld), ("total", total)):
        assert not terms[name].requires_grad
        assert terms[name].item() == pytest.approx(value.item(), rel=1e-12)


def test_total_weights_every_term_and_reports_unweighted_values():
    x = _total_inputs(24)
    torch.manual_seed(0)
    criterion = DistillationLoss(
        beta=0.5, gamma=2.0, alpha_kd=0.3, alpha_feat=0.7, kd_temperature=4.0,
        samd_temperature=3.0, nld_temperature=1.5, noise_weight=0.2,
        student_channels=4, teacher_channels=6,
    ).double()
    total, terms = criterion(**x, generator=_generator(10))
    assert set(terms) == {"ce", "samd", "nld", "kd", "feature_kd", "total"}
    ce = F.cross_entropy(x["student_logits"], x["labels"])
    samd = samd_loss(
        x["student_spikes"], x["teacher_features"], x["teacher_classifier_weight"],
        labels=x["labels"], temperature=3.0,
    )
    nld = nld_loss(
        x["student_logits"], x["teacher_logits"], temperature=1.5, noise_weight=0.2,
        generator=_generator(10),
    )
    kd = hinton_kd_loss(x["student_logits"], x["teacher_logits"], 4.0)
    projector = criterion.feature_kd.projector
    feat = feature_kd_loss(x["student_spikes"], x["teacher_features"], projector)
    expected = ce + 0.5 * samd + 2.0 * nld + 0.3 * kd + 0.7 * feat
    assert total.item() == pytest.approx(expected.item(), rel=1e-12)
    for name, value in (("ce", ce), ("samd", samd), ("nld", nld), ("kd", kd), ("feature_kd", feat)):
        assert terms[name].item() == pytest.approx(value.item(), rel=1e-12)
    assert terms["total"].item() == pytest.approx(total.item())


def test_total_skips_zero_weight_terms_and_their_inputs():
    x = _total_inputs(25)
    criterion = DistillationLoss(beta=0.0, gamma=0.0, alpha_kd=1.0)
    total, terms = criterion(x["student_logits"], x["labels"], teacher_logits=x["teacher_logits"])
    assert set(terms) == {"ce", "kd", "total"}
    expected = F.cross_entropy(x["student_logits"], x["labels"]) + hinton_kd_loss(
        x["student_logits"], x["teacher_logits"]
    )
    assert total.item() == pytest.approx(expected.item(), rel=1e-12)
    with pytest.raises(ValueError, match="teacher_logits"):
        DistillationLoss()(x["student_logits"], x["labels"], student_spikes=x["student_spikes"],
                           teacher_features=x["teacher_features"],
                           teacher_classifier_weight=x["teacher_classifier_weight"])


@pytest.mark.parametrize("variant", ["paper", "reference"])
def test_total_sends_no_gradient_to_the_teacher(variant):
    x = _total_inputs(26)
    criterion = DistillationLoss(
        alpha_kd=1.0, alpha_feat=1.0, student_channels=4, teacher_channels=6,
        samd_variant=variant, nld_variant=variant,
    ).double()
    total, _ = criterion(**x)
    total.backward()
    for name in ("teacher_logits", "teacher_features", "teacher_classifier_weight"):
        assert x[name].grad is None, name
    assert x["student_logits"].grad is not None
    assert x["student_spikes"].grad.abs().sum() > 0


# --- user errors ----------------------------------------------------------------------------

LOGITS = torch.randn(2, 3)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperatures_raise_user_errors(bad):
    maps = torch.rand(1, 2, 2)
    with pytest.raises(UserError, match="temperature"):
        hinton_kd_loss(LOGITS, LOGITS, bad)
    with pytest.raises(UserError, match="temperature"):
        nld_loss(LOGITS, LOGITS, temperature=bad)
    with pytest.raises(UserError, match="temperature"):
        samd_divergence(maps, maps, temperature=bad)
    for option in ("samd_temperature", "nld_temperature", "kd_temperature"):
        with pytest.raises(UserError, match=option):
            DistillationLoss(**{option: bad})


@pytest.mark.parametrize("option", ["beta", "gamma", "alpha_kd", "alpha_feat", "noise_weight"])
def test_negative_weights_raise_user_errors(option):
    with pytest.raises(UserError, match=option):
        DistillationLoss(**{option: -0.1})
    with pytest.raises(UserError, match=option):
        DistillationLoss(**{option: float("nan")})


def test_noise_weight_above_one_is_rejected_only_for_the_reference_mixture():
    with pytest.raises(UserError, match="noise_weight"):
        nld_loss(LOGITS, LOGITS, noise_weight=1.5, variant="reference")
    with pytest.raises(UserError, match="noise_weight"):
        DistillationLoss(noise_weight=1.5, nld_variant="reference")
    assert torch.isfinite(nld_loss(LOGITS, LOGITS, noise_weight=1.5))  # additive: any lambda >= 0


def test_unknown_names_raise_user_errors():
    maps = torch.rand(1, 2, 2)
    with pytest.raises(UserError, match="samd_variant"):
        DistillationLoss(samd_variant="papr")
    with pytest.raises(UserError, match="nld_variant"):
        DistillationLoss(nld_variant="code")
    with pytest.raises(UserError, match="samd_target_class"):
        DistillationLoss(samd_target_class="teacher")
    with pytest.raises(UserError, match="NLD variant"):
        nld_loss(LOGITS, LOGITS, variant="x")
    with pytest.raises(UserError, match="SAMD variant"):
        samd_divergence(maps, maps, variant="x")
    spikes, features, weight, labels, _ = _samd_inputs(27)
    with pytest.raises(UserError, match="target class"):
        samd_loss(spikes, features, weight, labels=labels, target_class="x")


def test_feature_kd_without_channels_raises_a_user_error():
    with pytest.raises(UserError, match="student_channels"):
        DistillationLoss(alpha_feat=1.0)
    with pytest.raises(UserError, match="teacher_channels"):
        DistillationLoss(alpha_feat=1.0, student_channels=4)
