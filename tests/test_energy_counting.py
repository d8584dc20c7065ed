"""Exact SOP/MAC counting against brute-force enumeration, and the energy presets."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
import torchvision
from torch import nn

from ckdsnn_events.energy.counting import SynapticOpCounter, count_ann_macs
from ckdsnn_events.energy.ops import conv_coverage, conv_macs, conv_sops, exact_sum, is_binary, linear_sops
from ckdsnn_events.energy.report_types import EnergyReport
from ckdsnn_events.energy.presets import PRESETS, EnergyCosts, energy_costs, energy_pj
from ckdsnn_events.errors import UserError


# ---------------------------------------------------------------------------------------------
# Brute force: enumerate output positions, output channels, input channels of the group and
# kernel taps; a tap that lands on a spike is one accumulate.


def _padded_index(i: int, size: int, mode: str) -> int | None:
    """Input index read by padded coordinate ``i`` (already shifted by -padding), or None."""
    if 0 <= i < size:
        return i
    if mode == "zeros":
        return None
    if mode == "reflect":
        return -i if i < 0 else 2 * (size - 1) - i
    if mode == "replicate":
        return min(max(i, 0), size - 1)
    if mode == "circular":
        return i % size
    raise AssertionError(mode)


def _explicit_padding(conv: nn.Module, spatial: tuple[int, ...]) -> list[int]:
    """Left padding per dimension ("same" pads total d*(k-1), the extra one on the right)."""
    if conv.padding == "same":
        return [d * (k - 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation)]
    if conv.padding == "valid":
        return [0] * len(spatial)
    return list(conv.padding)


def brute_force_conv(x: torch.Tensor, conv: nn.Module) -> tuple[int, int]:
    """(synaptic operations on the spikes of ``x``, taps that fall on zero padding)."""
    out_spatial = conv(x).shape[2:]
    spatial = x.shape[2:]
    left = _explicit_padding(conv, spatial)
    c_in_group = conv.in_channels // conv.groups
    c_out_group = conv.out_channels // conv.groups
    xs = x.tolist()
    sops = padding_taps = 0
    for n in range(x.shape[0]):
        for oc in range(conv.out_channels):
            group = oc // c_out_group
            for out_pos in itertools.product(*(range(o) for o in out_spatial)):
                for ic in range(group * c_in_group, (group + 1) * c_in_group):
                    for tap in itertools.product(*(range(k) for k in conv.kernel_size)):
                        index = []
                        for o, t, s, d, p, size in zip(out_pos, tap, conv.stride, conv.dilation, left, spatial):
                            index.append(_padded_index(o * s - p + t * d, size, conv.padding_mode))
                        if None in index:
                            padding_taps += 1
                            continue
                        value = xs[n][ic]
                        for i in index:
                            value = value[i]
                        sops += value != 0
    return sops, padding_taps


def brute_force_linear(x: torch.Tensor, linear: nn.Linear) -> int:
    flat = x.reshape(-1, linear.in_features).tolist()
    return sum(1 for row in flat for value in row for _ in range(linear.out_features) if value != 0)


def _count(module: nn.Module, *inputs: torch.Tensor, n_samples: int = 1, **options) -> EnergyReport:
    with SynapticOpCounter(module, **options) as counter, torch.no_grad():
        for x in inputs:
            module(x)
    return counter.report(n_samples=n_samples)


def _spikes(shape, rate=0.3, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=generator) < rate).float()


CONV_CASES = {
    "plain": dict(c_in=3, c_out=4, kernel_size=3),
    "stride-padding": dict(c_in=3, c_out=4, kernel_size=3, stride=2, padding=1),
    "dilation": dict(c_in=2, c_out=3, kernel_size=3, padding=2, dilation=2),
    "groups": dict(c_in=4, c_out=6, kernel_size=3, padding=1, groups=2),
    "depthwise": dict(c_in=4, c_out=4, kernel_size=3, stride=2, padding=1, groups=4),
    "asymmetric": dict(c_in=2, c_out=3, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
    "same": dict(c_in=2, c_out=2, kernel_size=4, padding="same"),
    "reflect": dict(c_in=2, c_out=3, kernel_size=3, padding=1, padding_mode="reflect"),
    "circular": dict(c_in=2, c_out=2, kernel_size=3, stride=2, padding=2, padding_mode="circular"),
    "replicate": dict(c_in=2, c_out=2, kernel_size=3, padding=1, padding_mode="replicate"),
}


def _conv2d(case: dict) -> nn.Conv2d:
    case = dict(case)
    return nn.Conv2d(case.pop("c_in"), case.pop("c_out"), **case)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv_sops_equal_brute_force(name):
    conv = _conv2d(CONV_CASES[name])
    x = _spikes((2, conv.in_channels, 7, 6), seed=len(name))
    expected, _ = brute_force_conv(x, conv)
    assert conv_sops(x, conv).item() == expected
    report = _count(conv, x, n_samples=2)
    (layer,) = report.layers
    assert layer.input_kind == "spikes"
    assert layer.sops == expected / 2
    assert layer.input_spikes == x.sum().item() / 2
    assert layer.input_firing_rate == pytest.approx(x.mean().item())
    assert layer.macs == 0


@pytest.mark.parametrize("layout", ["channels_last", "float64", "unbatched"])
def test_conv_sops_for_other_layouts_and_dtypes(layout):
    # channels_last goes through the torch reductions instead of the CPU numba pass.
    conv = _conv2d(CONV_CASES["stride-padding"])
    x = _spikes((2, 3, 7, 6), seed=7)
    expected, _ = brute_force_conv(x, conv)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    elif layout == "float64":
        conv, x = conv.double(), x.double()
    else:
        x, expected = x[0], brute_force_conv(x[:1], conv)[0]
    assert _count(conv, x).sops == expected


@pytest.mark.parametrize(
    "conv, shape",
    [
        (nn.Conv1d(3, 4, 3, stride=2, padding=1, dilation=2), (2, 3, 11)),
        (nn.Conv3d(2, 4, (2, 3, 3), stride=(1, 2, 1), padding=(1, 1, 0), groups=2), (1, 2, 3, 5, 4)),
    ],
)
def test_conv1d_conv3d_sops_equal_brute_force(conv, shape):
    x = _spikes(shape, seed=3)
    expected, _ = brute_force_conv(x, conv)
    assert _count(conv, x).sops == expected


def test_linear_sops_equal_brute_force():
    linear = nn.Linear(10, 7)
    x = _spikes((3, 4, 10), seed=5)  # extra leading dims: (T, B, in)
    expected = brute_force_linear(x, linear)
    assert linear_sops(x, linear).item() == expected
    (layer,) = _count(linear, x, n_samples=4).layers
    assert layer.sops == expected / 4
    assert layer.steps_per_sample == 3
    assert layer.input_shape == (10,)


def test_all_zero_input_costs_nothing():
    conv, linear = _conv2d(CONV_CASES["groups"]), nn.Linear(5, 3)
    (layer,) = _count(conv, torch.zeros(2, 4, 6, 6)).layers
    assert (layer.sops, layer.macs, layer.input_kind, layer.input_firing_rate) == (0, 0, "spikes", 0)
    assert _count(linear, torch.zeros(4, 5)).sops == 0


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("name", list(CONV_CASES))
def test_all_ones_input_is_dense_count_minus_padding_taps(name):
    # Every tap reads a spike except the taps on zero padding: SOPs = dense MACs - padding taps.
    conv = _conv2d(CONV_CASES[name])
    x = torch.ones(1, conv.in_channels, 7, 6)
    sops, padding_taps = brute_force_conv(x, conv)
    dense = conv_macs(conv, tuple(conv(x).shape))
    assert sops + padding_taps == dense
    (layer,) = _count(conv, x).layers
    assert layer.sops == dense - padding_taps
    assert layer.dense_ops == dense
    no_zero_padding = conv.padding_mode != "zeros" or conv.padding in ((0, 0), "valid")
    assert (padding_taps == 0) == no_zero_padding
    if no_zero_padding:
        assert layer.sops == dense


def test_approximation_equals_exact_count_for_uniform_spikes_without_padding():
    conv = nn.Conv2d(2, 3, kernel_size=2, stride=1)
    ones = torch.ones(2, 2, 6, 6)
    # A checkerboard: every 2x2 receptive field holds exactly two spikes.
    checker = ((torch.arange(6)[:, None] + torch.arange(6)[None, :]) % 2).float().expand(2, 2, 6, 6)
    for x in (ones, checker):
        (layer,) = _count(conv, x).layers
        assert layer.approx_sops == pytest.approx(layer.sops, rel=1e-12)
        assert layer.approx_sops == pytest.approx(layer.input_firing_rate * layer.dense_ops)
    # With zero padding the border taps cost nothing, and the approximation over-counts.
    padded = nn.Conv2d(2, 3, kernel_size=3, padding=1)
    (layer,) = _count(padded, ones).layers
    assert layer.approx_sops > layer.sops


def test_non_binary_inputs_count_macs():
    conv = nn.Conv2d(2, 4, 3, padding=1)
    dense = conv_macs(conv, (3, 4, 5, 5))
    inputs = {
        "normal": torch.randn(3, 2, 5, 5),
        "counts": 2 * _spikes((3, 2, 5, 5)),
        "nan": torch.zeros(3, 2, 5, 5).index_put_((torch.tensor([0]),) * 4, torch.tensor(float("nan"))),
        "inf": torch.ones(3, 2, 5, 5) * float("inf"),
    }
    for name, x in inputs.items():
        (layer,) = _count(conv, x, n_samples=3).layers
        assert (layer.input_kind, layer.sops, layer.macs) == ("real", 0, dense / 3), name
        assert layer.input_firing_rate is None and layer.input_spikes is None
        assert layer.approx_sops == 0


def test_mixed_calls_split_sops_and_macs():
    linear = nn.Linear(4, 2)
    spikes, real = _spikes((5, 4), seed=1), torch.rand(5, 4)
    (layer,) = _count(linear, spikes, real, spikes, n_samples=5).layers
    assert layer.input_kind == "mixed"
    assert layer.calls == 3
    assert layer.sops == 2 * brute_force_linear(spikes, linear) / 5
    assert layer.macs == 4 * 2
    assert layer.input_firing_rate == pytest.approx(spikes.mean().item())


# ---------------------------------------------------------------------------------------------
# Spiking models built of plain modules, as the students are


class Threshold(nn.Module):
    """Fires where the input exceeds 0.5 (a stateless stand-in for a LIF layer)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0.5).to(x.dtype)


class TupleNeuron(Threshold):
    """Returns ``(spikes, state)`` like Norse's modules."""

    def forward(self, x):
        return super().forward(x), None


class TinySNN(nn.Module):
    """stem conv -> BN -> neuron -> conv -> neuron -> pool -> flatten -> fc, on (T*B, ...).

    A constant-in-time input (stride 0 along T) runs the stem once on (B, C, H, W).
    """

    def __init__(self, pool: nn.Module | None = None, inplace_after_pool: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.lif1 = Threshold()
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False)
        self.lif2 = TupleNeuron()
        self.pool = pool if pool is not None else nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.inplace_after_pool = inplace_after_pool
        self.fc = nn.Linear(6 * self._pooled_positions(), 3)

    def _pooled_positions(self) -> int:
        return math.prod(self.pool(torch.zeros(1, 1, 4, 4)).shape[2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, batch = x.shape[:2]
        if x.stride(0) == 0:
            current = self.bn1(self.conv1(x[0])).expand(steps, -1, -1, -1, -1).flatten(0, 1)
        else:
            current = self.bn1(self.conv1(x.flatten(0, 1)))
        spikes = self.lif2(self.conv2(self.lif1(current)))[0]
        pooled = self.pool(spikes)
        if self.inplace_after_pool:
            pooled.add_(1.0)
        return self.fc(self.flatten(pooled)).unflatten(0, (steps, batch)).mean(0)


def _model(**kwargs) -> TinySNN:
    torch.manual_seed(0)
    model = TinySNN(**kwargs).eval()
    model.bn1.weight.data.fill_(2.0)  # make the first neurons fire now and then
    return model


def _hidden_spikes(model: TinySNN, x: torch.Tensor) -> dict[str, torch.Tensor]:
    seen = {}
    hooks = [
        model.conv2.register_forward_hook(lambda m, a, o: seen.__setitem__("conv2", a[0])),
        model.pool.register_forward_hook(lambda m, a, o: seen.__setitem__("pool", a[0])),
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return seen


def test_spiking_model_counts_and_samples_from_time_major_input():
    model = _model()
    batches = [torch.randn(4, 3, 2, 8, 8), torch.randn(4, 2, 2, 8, 8)]
    with SynapticOpCounter(model, timesteps=4, neurons=(Threshold,)) as counter, torch.no_grad():
        for x in batches:
            model(x)
    report = counter.report()
    assert report.n_samples == 5 and counter.samples_seen == 5
    layers = {layer.name: layer for layer in report.layers}
    assert list(layers) == ["conv1", "conv2", "fc"]
    stem = layers["conv1"]
    assert stem.input_kind == "real" and stem.steps_per_sample == 4
    assert stem.macs == 4 * (4 * 8 * 8 * 2 * 9)  # T steps of the dense stem per sample
    expected_conv2 = expected_fc = spikes_fc = 0
    for x in batches:
        seen = _hidden_spikes(model, x)
        expected_conv2 += brute_force_conv(seen["conv2"], model.conv2)[0]
        spikes_fc += seen["pool"].sum().item()
        expected_fc += 3 * seen["pool"].sum().item()  # pool folded: out_features per spike
    assert layers["conv2"].input_kind == "spikes"
    assert layers["conv2"].sops == pytest.approx(expected_conv2 / 5, rel=1e-12)
    fc = layers["fc"]
    assert (fc.input_kind, fc.input_shape, fc.steps_per_sample) == ("pooled-spikes", (6, 4, 4), 4)
    assert fc.sops == pytest.approx(expected_fc / 5, rel=1e-12)
    assert fc.input_spikes == pytest.approx(spikes_fc / 5)
    assert fc.approx_sops == pytest.approx(fc.sops)  # adaptive pool covers every position
    assert report.sops == pytest.approx(layers["conv2"].sops + fc.sops)
    # Neurons selected by class: Threshold and its subclass TupleNeuron (tuple output).
    assert [n.name for n in report.neurons] == ["lif1", "lif2"]
    assert report.neurons[1].output_spikes == pytest.approx(spikes_fc / 5)
    assert report.neurons[1].output_elements == 4 * 6 * 4 * 4


def test_constant_input_stem_runs_once_and_counts_macs_once_per_sample():
    model = _model()
    image = torch.randn(3, 2, 8, 8)
    constant = image.expand(4, -1, -1, -1, -1)
    with SynapticOpCounter(model, timesteps=4) as counter, torch.no_grad():
        model(constant)
    once = {layer.name: layer for layer in counter.report().layers}
    with SynapticOpCounter(model, timesteps=4) as counter, torch.no_grad():
        model(constant.contiguous())
    every_step = {layer.name: layer for layer in counter.report().layers}
    dense_image = 4 * 8 * 8 * 2 * 9
    assert (once["conv1"].steps_per_sample, once["conv1"].macs) == (1, dense_image)
    assert (every_step["conv1"].steps_per_sample, every_step["conv1"].macs) == (4, 4 * dense_image)
    assert once["conv2"].sops == every_step["conv2"].sops  # same spikes either way


def test_pooled_linear_macs_mode_and_broken_links():
    x = torch.randn(4, 2, 2, 8, 8)
    fc_macs = 4 * 6 * 3  # T steps of in_features * out_features per sample
    (macs_mode,) = [l for l in _count(_model(), x, n_samples=2, pooled_linear="macs").layers if l.name == "fc"]
    assert (macs_mode.input_kind, macs_mode.macs, macs_mode.sops) == ("real", fc_macs, 0)
    # An in-place change of the pooled values between pool and fc breaks the folding, also under
    # inference_mode (no version counters there: values are compared).
    changing = _model(inplace_after_pool=True)
    (changed,) = [l for l in _count(changing, x, n_samples=2).layers if l.name == "fc"]
    assert (changed.input_kind, changed.macs) == ("real", fc_macs)
    with SynapticOpCounter(changing) as counter, torch.inference_mode():
        changing(x)
    (changed,) = [l for l in counter.report(n_samples=2).layers if l.name == "fc"]
    assert (changed.input_kind, changed.macs) == ("real", fc_macs)


def test_pooled_linear_fold_with_partial_windows_equals_folded_weights():
    # AvgPool2d(3, stride=3) on 4x4 reads only the top-left 3x3: spikes elsewhere reach nothing.
    model = _model(pool=nn.AvgPool2d(3, stride=3))
    x = torch.randn(4, 2, 2, 8, 8)
    spikes = _hidden_spikes(model, x)["pool"]  # (T*B, 6, 4, 4)
    # The folded layer W' = W P: a synapse from input position p to every output o whenever
    # some pooling window reads p, i.e. column p of the pooling Jacobian P is nonzero.
    jacobian = torch.autograd.functional.jacobian(lambda s: model.pool(s).flatten(), torch.zeros(1, 6, 4, 4))
    reaches = (jacobian.reshape(-1, 6 * 16) != 0).any(0).reshape(6, 4, 4)
    expected = sum(model.fc.out_features * (row * reaches).sum().item() for row in spikes)
    (fc,) = [l for l in _count(model, x, n_samples=2).layers if l.name == "fc"]
    assert fc.input_kind == "pooled-spikes"
    assert fc.sops == pytest.approx(expected / 2, rel=1e-12)


def test_neuron_predicate_and_linear_fed_directly_by_spikes():
    model = nn.Sequential(nn.Linear(6, 5), Threshold(), nn.Linear(5, 2))
    x = torch.rand(4, 3, 6) * 2
    with torch.no_grad():
        hidden = (model[0](x) > 0.5).float()
    with SynapticOpCounter(model, timesteps=4, neurons=lambda m: isinstance(m, Threshold)) as counter:
        with torch.no_grad():
            model(x)
    report = counter.report()
    first, second = report.layers
    assert first.input_kind == "real" and first.macs == 4 * 6 * 5
    assert second.input_kind == "spikes" and second.sops == 2 * hidden.sum().item() / 3
    (neuron,) = report.neurons
    assert neuron.firing_rate == pytest.approx(hidden.mean().item())


def test_counter_options_and_sample_errors():
    model = _model()
    with pytest.raises(UserError, match="timesteps"):
        SynapticOpCounter(model, timesteps=0)
    with pytest.raises(UserError, match="pooled_linear"):
        SynapticOpCounter(model, pooled_linear="fuse")
    with pytest.raises(UserError, match="neurons"):
        SynapticOpCounter(model, neurons="LIF")
    with pytest.raises(UserError, match="nn.Module"):
        SynapticOpCounter(lambda x: x)
    counter = SynapticOpCounter(model, timesteps=4)
    with pytest.raises(UserError, match="nothing was counted"):
        counter.report()
    with pytest.raises(UserError, match="n_samples"):
        counter.report(n_samples=0)
    with pytest.raises(UserError, match="n_samples"):
        SynapticOpCounter(model).report()
    with counter, torch.no_grad():
        model(torch.randn(2, 3, 2, 8, 8))  # T=2 where the counter expects 4
    with pytest.raises(UserError, match="time-major"):
        counter.report()
    assert counter.report(n_samples=3).n_samples == 3


def test_hooks_are_removed_and_reset_forgets():
    model = _model()
    x = torch.randn(4, 2, 2, 8, 8)
    counter = SynapticOpCounter(model, timesteps=4)
    with counter, torch.no_grad():
        model(x)
    first = counter.report()
    with torch.no_grad():
        model(x)  # detached: not counted
    assert counter.report() == first
    counter.reset()
    with counter, torch.no_grad():
        model(x)
        model(x)
    assert counter.report().sops == pytest.approx(first.sops)  # per sample, over twice the samples
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_counting_under_inference_mode_and_reset_while_attached():
    model = _model()
    x = torch.randn(4, 2, 2, 8, 8)
    with SynapticOpCounter(model, timesteps=4, neurons=Threshold) as counter:
        with torch.no_grad():
            model(x)
        reference = counter.report()
        counter.reset()
        with torch.inference_mode():
            model(x)
        with torch.no_grad():
            model(x)
        report = counter.report()
    assert report.n_samples == 4
    assert report.sops == pytest.approx(reference.sops)
    assert [n.output_spikes for n in report.neurons] == pytest.approx([n.output_spikes for n in reference.neurons])


# ---------------------------------------------------------------------------------------------
# ANN teacher


def test_ann_macs_of_a_tiny_conv_net_equal_hand_computation():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    ).train()
    report = count_ann_macs(model, (3, 8, 8))
    per_layer = [layer.macs for layer in report.layers]
    # conv: C_out * H_out * W_out * (C_in / groups) * k*k; BN excluded; fc: in * out.
    assert per_layer == [8 * 8 * 8 * 3 * 9, 16 * 4 * 4 * 4 * 9, 16 * 10]
    assert report.macs == 13824 + 9216 + 160 and report.sops == 0
    assert report.energy_pj == pytest.approx(4.6 * report.macs)
    assert model.training  # mode restored


def test_ann_macs_match_torchvision_reference_count():
    # torchvision publishes each model's multiply-adds (GOPS) at 224x224 in its weights' meta.
    weights = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1
    report = count_ann_macs(torchvision.models.mobilenet_v2(), (3, 224, 224))
    assert round(report.macs / 1e9, 3) == weights.meta["_ops"]


def test_ann_macs_rejects_bad_input_shape():
    with pytest.raises(UserError, match="input_shape"):
        count_ann_macs(nn.Linear(3, 2), (0, 3))


# ---------------------------------------------------------------------------------------------
# Pure helpers


def test_coverage_is_the_receptive_field_count():
    conv = nn.Conv2d(1, 1, 3, stride=1, padding=1)
    coverage = conv_coverage(conv, (4, 4))
    # Interior pixels are read by all 9 taps, edges by 6, corners by 4.
    assert coverage.tolist() == [[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]]


def test_is_binary_on_large_and_strided_tensors():
    big = _spikes((3, 5, 300, 300))  # more than one CPU chunk
    assert is_binary(big).item()
    big[-1, -1, -1, -1] = 0.5
    assert not is_binary(big).item()
    assert is_binary(_spikes((2, 3, 4, 4)).to(memory_format=torch.channels_last)).item()
    assert is_binary(_spikes((6, 4)).t()).item()
    assert is_binary(torch.tensor([-0.0, 1.0])).item()
    assert not is_binary(torch.tensor([0.0, -1.0])).item()


def test_exact_sum_beyond_float32_integer_range():
    assert exact_sum(torch.ones(2**24 + 3)).item() == 2**24 + 3
    assert exact_sum(torch.ones(3, 2**23 + 1)).item() == 3 * (2**23 + 1)


# ---------------------------------------------------------------------------------------------
# Energy


def test_presets_follow_horowitz_2014():
    # (add, mult) at 45 nm: MAC = mult + add, AC = add.
    table = {"45nm-fp32": (0.9, 3.7), "45nm-fp16": (0.4, 1.1), "45nm-int32": (0.1, 3.1), "45nm-int8": (0.03, 0.2)}
    assert set(PRESETS) == set(table)
    for name, (add, mult) in table.items():
        costs = energy_costs(name)
        assert costs.name == name
        assert costs.e_ac_pj == add and costs.e_mac_pj == pytest.approx(add + mult)
    assert energy_costs() == PRESETS["45nm-fp32"] == EnergyCosts(0.9, 4.6, "45nm-fp32")


def test_energy_arithmetic_and_custom_costs():
    assert energy_pj(1000, 10) == pytest.approx(0.9 * 1000 + 4.6 * 10)
    assert energy_pj(1000, 10, "45nm-int8") == pytest.approx(0.03 * 1000 + 0.23 * 10)
    custom = energy_costs("custom", e_ac_pj=0.5, e_mac_pj=2.0)
    assert (custom.name, energy_pj(4, 2, custom)) == ("custom", 6.0)
    partial = energy_costs("45nm-fp16", e_ac_pj=0.2)
    assert (partial.name, partial.e_ac_pj, partial.e_mac_pj) == ("custom", 0.2, 1.5)
    assert energy_costs(custom) is custom


def test_energy_errors():
    with pytest.raises(UserError, match="45nm-fp32, 45nm-fp16, 45nm-int32, 45nm-int8"):
        energy_costs("7nm")
    with pytest.raises(UserError, match="e_ac_pj"):
        energy_costs("custom", e_ac_pj=-0.1, e_mac_pj=1.0)
    with pytest.raises(UserError, match="e_mac_pj"):
        EnergyCosts(0.9, float("nan"))
    with pytest.raises(UserError, match="needs both"):
        energy_costs("custom", e_ac_pj=1.0)
    with pytest.raises(UserError, match=">= 0"):
        energy_pj(-1, 0)


def test_report_energy_and_json_round_trip():
    model = _model()
    with SynapticOpCounter(model, timesteps=4, neurons=Threshold) as counter, torch.no_grad():
        model(torch.randn(4, 2, 2, 8, 8))
    report = counter.report(costs="45nm-fp16")
    for layer in report.layers:
        assert layer.energy_pj == pytest.approx(0.4 * layer.sops + 1.5 * layer.macs)
        assert layer.approx_energy_pj == pytest.approx(0.4 * layer.approx_sops + 1.5 * layer.macs)
    assert report.energy_pj == pytest.approx(sum(layer.energy_pj for layer in report.layers))
    text = report.to_json()
    data = json.loads(text)
    assert data["totals"]["energy_pj"] == report.energy_pj
    assert data["costs"] == {"e_ac_pj": 0.4, "e_mac_pj": 1.5, "name": "45nm-fp16"}
    assert EnergyReport.from_json(text) == report
    repriced = report.with_costs("45nm-fp32")
    assert repriced.energy_pj == pytest.approx(0.9 * report.sops + 4.6 * report.macs)
    assert repriced.with_costs("45nm-fp16") == report
