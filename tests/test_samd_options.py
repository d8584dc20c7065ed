"""SAMD's ablation options (normalisation, scaling, stage, student map) and NLD's noise kinds,
each checked against its formula written out here."""

import pytest
import torch
import torch.nn.functional as F

from ckdsnn_events.distill.losses import DistillationLoss, nld_loss, nld_noise, samd_divergence, samd_loss, stage_spikes
from ckdsnn_events.distill.samd import normalize_maps, student_grad_cam
from ckdsnn_events.errors import UserError

f64 = torch.float64


def _maps(seed: int, b: int = 3, h: int = 4, w: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, h, w, generator=g, dtype=f64) * 7, torch.rand(b, h, w, generator=g, dtype=f64) * 0.3


def _minmax_sample(m):
    out = torch.empty_like(m)
    for b in range(m.shape[0]):
        out[b] = (m[b] - m[b].min()) / (m[b].max() - m[b].min() + 1e-3)
    return out


def _minmax_batch(m):
    return (m - m.min()) / (m.max() - m.min() + 1e-3)


def _softmax_kl(s, t, tau):
    p_s = torch.exp(s / tau) / torch.exp(s / tau).sum(1, keepdim=True)
    p_t = torch.exp(t / tau) / torch.exp(t / tau).sum(1, keepdim=True)
    return tau**2 * (p_t * (p_t / p_s).log()).sum(1).mean()


def test_normalisations_match_their_formulas():
    m, _ = _maps(0)
    assert torch.equal(normalize_maps(m, "none"), m)
    assert torch.allclose(normalize_maps(m, "batch-minmax"), _minmax_batch(m))
    assert torch.allclose(normalize_maps(m, "sample-minmax"), _minmax_sample(m))
    # per sample: every map spans [0, 1) on its own; batch-global: only the batch as a whole does
    weak = torch.cat([m[:1], m[1:] * 0.01])
    per_sample = normalize_maps(weak, "sample-minmax").flatten(1)
    assert torch.all(per_sample.max(1).values > 0.95) and torch.all(per_sample.min(1).values == 0)
    assert normalize_maps(weak, "batch-minmax")[1:].max() < 0.02


@pytest.mark.parametrize("norm", ["none", "batch-minmax", "sample-minmax"])
def test_softmax_scaling_is_the_paper_kl_after_the_normalisation(norm):
    s, t = _maps(1)
    ns = {"none": lambda x: x, "batch-minmax": _minmax_batch, "sample-minmax": _minmax_sample}[norm]
    expected = _softmax_kl(ns(s).flatten(1), ns(t).flatten(1), 2.0)
    loss = samd_divergence(s, t, temperature=2.0, variant="paper", scaling="softmax", norm=norm)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)


def test_norm_defaults_to_the_variant_own():
    s, t = _maps(2)
    assert samd_divergence(s, t, variant="paper").item() == pytest.approx(
        samd_divergence(s, t, variant="paper", norm="none").item(), rel=1e-12)
    assert samd_divergence(s, t, variant="reference").item() == pytest.approx(
        samd_divergence(s, t, variant="reference", norm="batch-minmax").item(), rel=1e-12)


def test_none_zscore_l2_scalings_are_squared_distances_of_the_scaled_maps():
    s, t = _maps(3)
    fs, ft = s.flatten(1), t.flatten(1)

    def dist(a, b):
        return ((a - b) ** 2).sum(1).mean()

    def z(x):
        return (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True, unbiased=False) + 1e-6)

    def l2(x):
        return x / (x.norm(dim=1, keepdim=True) + 1e-6)

    for scaling, expected in (("none", dist(fs, ft)), ("zscore", dist(z(fs), z(ft))), ("l2", dist(l2(fs), l2(ft)))):
        got = samd_divergence(s, t, scaling=scaling, norm="none")
        assert got.item() == pytest.approx(expected.item(), rel=1e-10), scaling
    # z-score and L2 ignore the maps' scales: a map times 100 gives the same loss
    for scaling in ("zscore", "l2"):
        a = samd_divergence(s, t, scaling=scaling, norm="none")
        b = samd_divergence(100 * s, t, scaling=scaling, norm="none")
        assert a.item() == pytest.approx(b.item(), rel=1e-6)
    # L2 distance of non-negative unit vectors is at most 2
    assert samd_divergence(s, t, scaling="l2", norm="none").item() <= 2


def test_zscore_of_a_constant_map_is_zero_not_nan():
    s = torch.full((2, 3, 3), 4.0, dtype=f64)
    t = torch.zeros(2, 3, 3, dtype=f64)
    assert samd_divergence(s, t, scaling="zscore", norm="none").item() == 0.0
    assert samd_divergence(s, t, scaling="l2", norm="none").item() == pytest.approx(1.0, rel=1e-5)


def test_paper_form_on_raw_spike_counts_is_huge_and_normalised_form_is_small():
    # The scale gap that made the paper's form untrainable: spike counts up to T*C against a
    # Grad-CAM of about a logit / hw. Per-sample min-max puts both on [0, 1).
    g = torch.Generator().manual_seed(4)
    counts = torch.randint(0, 6 * 64, (4, 8, 8), generator=g).to(f64)
    cam = torch.rand(4, 8, 8, generator=g, dtype=f64) / 64
    raw = samd_divergence(counts, cam, variant="paper")
    normed = samd_divergence(counts, cam, variant="paper", norm="sample-minmax")
    assert raw.item() > 10 and normed.item() < 1


def _spike_record(seed: int, t=3, b=2):
    g = torch.Generator().manual_seed(seed)
    shapes = {"lif": (4, 8, 8), "layer1.0.lif1": (4, 8, 8), "layer1.0.lif2": (4, 8, 8),
              "layer2.0.lif1": (6, 4, 4), "layer2.0.lif2": (6, 4, 4)}
    return {k: (torch.rand(t, b, *s, generator=g) > 0.5).to(f64) for k, s in shapes.items()}


def test_stage_spikes_picks_each_stage_output():
    rec = _spike_record(5)
    assert stage_spikes(rec) is rec["layer2.0.lif2"]
    assert stage_spikes(rec, 1) is rec["layer1.0.lif2"]
    assert stage_spikes(rec, 2) is rec["layer2.0.lif2"]
    with pytest.raises(UserError, match="samd_stage 3"):
        stage_spikes(rec, 3)
    assert stage_spikes(rec["layer2.0.lif2"]) is rec["layer2.0.lif2"]


def test_samd_stage_one_compares_the_resized_teacher_cam_with_stage_one():
    rec = _spike_record(6)
    g = torch.Generator().manual_seed(7)
    features, weight = torch.rand(2, 5, 2, 2, generator=g, dtype=f64), torch.randn(3, 5, generator=g, dtype=f64)
    labels = torch.tensor([0, 2])
    loss = DistillationLoss(gamma=0, samd_stage=1, samd_norm="sample-minmax")
    _, terms = loss(torch.randn(2, 3, dtype=f64), labels, student_spikes=rec, teacher_features=features,
                    teacher_classifier_weight=weight)
    direct = samd_loss(rec["layer1.0.lif2"], features, weight, labels=labels, norm="sample-minmax")
    assert terms["samd"].item() == pytest.approx(direct.item(), rel=1e-12)


def test_student_grad_cam_is_the_student_cam_over_spike_counts():
    g = torch.Generator().manual_seed(8)
    steps, batch, channels, classes = 3, 2, 4, 5
    spikes = (torch.rand(steps, batch, channels, 4, 4, generator=g) > 0.5).to(f64).requires_grad_()
    fc = torch.nn.Linear(channels, classes).double()
    logits = fc(spikes.mean(dim=(3, 4))).mean(0)  # per-step GAP + linear, averaged over T
    k = torch.tensor([1, 4])
    got = student_grad_cam(spikes, logits, k)
    w = fc.weight.detach()[k]  # (B, C)
    expected = torch.einsum("bc,bchw->bhw", w, spikes.detach().sum(0)).relu() / (steps * 16)
    assert torch.allclose(got, expected, atol=1e-12)
    got.sum().backward()  # the map keeps the graph of the spikes
    assert spikes.grad is not None


def test_gradcam_student_map_trains_through_the_total():
    g = torch.Generator().manual_seed(9)
    spikes = torch.rand(2, 3, 4, 4, 4, generator=g, dtype=f64).requires_grad_()
    head = torch.nn.Linear(4, 3).double()
    logits = head(spikes.mean(dim=(3, 4))).mean(0)
    features, weight = torch.rand(3, 6, 2, 2, generator=g, dtype=f64), torch.randn(3, 6, generator=g, dtype=f64)
    loss = DistillationLoss(gamma=0, samd_map="gradcam", samd_norm="sample-minmax")
    total, terms = loss(logits, torch.tensor([0, 1, 2]), student_spikes=spikes, teacher_features=features,
                        teacher_classifier_weight=weight)
    total.backward()
    assert "samd" in terms and spikes.grad is not None and torch.isfinite(total)


def test_fixed_noise_has_the_fixed_std_and_zero_mean():
    logits = torch.randn(4000, 10, dtype=f64) * 9 + 3
    eps = nld_noise(logits, noise="fixed", noise_std=2.5, generator=torch.Generator().manual_seed(0))
    assert eps.mean().item() == pytest.approx(0.0, abs=0.05)
    assert eps.std().item() == pytest.approx(2.5, rel=0.02)
    assert torch.equal(nld_noise(logits, noise="none"), torch.zeros_like(logits))


def test_nld_noise_kinds_match_their_formulas():
    g = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(5, 6, generator=g, dtype=f64), torch.randn(5, 6, generator=g, dtype=f64)
    n = torch.randn(5, 6, generator=torch.Generator().manual_seed(3), dtype=f64)
    fixed = nld_loss(student, teacher, noise="fixed", noise_std=1.5, generator=torch.Generator().manual_seed(3))
    log_s = F.log_softmax((student + 0.1 * 1.5 * n) / 2, 1)
    p_t = F.softmax(teacher / 2, 1)
    assert fixed.item() == pytest.approx((4 * (p_t * (p_t.log() - log_s)).sum(1).mean()).item(), rel=1e-10)
    none = nld_loss(student, teacher, noise="none")
    log_s = F.log_softmax(student / 2, 1)
    assert none.item() == pytest.approx((4 * (p_t * (p_t.log() - log_s)).sum(1).mean()).item(), rel=1e-10)


@pytest.mark.parametrize("kwargs,match", [
    ({"samd_scaling": "sigmoid"}, "samd_scaling"),
    ({"samd_norm": "minmax"}, "samd_norm"),
    ({"samd_map": "cam"}, "samd_map"),
    ({"samd_stage": 0}, "samd_stage"),
    ({"nld_noise": "uniform"}, "nld_noise"),
    ({"nld_noise_std": 0.0}, "nld_noise_std"),
])
def test_bad_ablation_options_raise_user_errors(kwargs, match):
    with pytest.raises(UserError, match=match):
        DistillationLoss(**kwargs)
