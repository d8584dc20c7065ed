"""Spike encoders: shapes, stride-0 direct coding, rate statistics, latency timing, seeding, errors."""

from __future__ import annotations

import pytest
import torch

from ckdsnn_events.data.batch import is_constant_in_time
from ckdsnn_events.data.encoders import (
    ENCODERS,
    DirectEncoder,
    LatencyEncoder,
    RateEncoder,
    build_encoder,
)
from ckdsnn_events.errors import UserError


def images(b=4, c=3, h=5, w=6, seed=0) -> torch.Tensor:
    return torch.rand((b, c, h, w), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ENCODERS)
def test_every_encoder_makes_time_major_float32(name):
    x = images()
    out = build_encoder(name, 7)(x)
    assert out.shape == (7, *x.shape) and out.dtype == torch.float32
    if name != "direct":
        assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_direct_is_a_stride_zero_view_of_the_image():
    x = images()
    out = DirectEncoder(4)(x)
    assert out.stride(0) == 0 and is_constant_in_time(out)
    assert out.data_ptr() == x.data_ptr()  # no copy
    for t in range(4):
        assert torch.equal(out[t], x)
    assert DirectEncoder(1)(x).shape == (1, *x.shape)
    assert DirectEncoder(3)(x.double()).dtype == torch.float32


def test_rate_spike_rates_match_intensities():
    levels = torch.tensor([0.0, 0.05, 0.25, 0.5, 0.8, 0.97, 1.0])
    x = levels.view(1, 1, 1, -1).expand(200, 1, 1, -1).contiguous()  # 200 pixels per level
    steps = 100
    spikes = RateEncoder(steps)(x, generator=torch.Generator().manual_seed(3))
    rate = spikes.mean(dim=(0, 1, 2, 3))  # per level, over 20,000 Bernoulli draws
    sigma = (levels * (1 - levels) / (steps * 200)).sqrt()
    assert torch.all((rate - levels).abs() <= 5 * sigma + 1e-4), (rate, levels)
    assert rate[0] == 0 and rate[-1] == 1  # black never fires, white always
    # steps are independent: P(spike at t and at t + 1) = x^2
    both = (spikes[1:] * spikes[:-1]).mean(dim=(0, 1, 2, 3))
    assert torch.all((both - levels**2).abs() < 0.01), both


def test_rate_clamps_out_of_range_and_takes_any_layout():
    x = torch.tensor([-0.5, 2.0]).view(1, 1, 1, 2).expand(3, 2, 4, 2).permute(0, 1, 3, 2)  # non-contiguous
    out = RateEncoder(5)(x)
    assert out.shape == (5, 3, 2, 2, 4)
    assert torch.all(out[..., 0, :] == 0) and torch.all(out[..., 1, :] == 1)


def test_rate_is_reproducible_from_a_generator_or_the_global_seed():
    x = images()
    enc = RateEncoder(4)
    a = enc(x, generator=torch.Generator().manual_seed(5))
    b = enc(x, generator=torch.Generator().manual_seed(5))
    c = enc(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(11)
    d = enc(x)
    torch.manual_seed(11)
    assert torch.equal(d, enc(x))
    assert not torch.equal(d, enc(x))  # the global RNG moved on


def test_latency_fires_once_per_lit_pixel_brighter_earlier():
    steps = 5
    x = torch.tensor([0.0, 0.01, 0.2, 0.49, 0.51, 0.75, 1.0]).view(1, 1, 1, -1)
    out = LatencyEncoder(steps)(x)
    counts = out.sum(0).flatten()
    assert counts.tolist() == [0, 1, 1, 1, 1, 1, 1]  # black never fires, every lit pixel once
    first = out.argmax(0).flatten()[1:]
    assert first.tolist() == [4, 3, 2, 2, 1, 0]  # round((1 - x) * (T - 1))
    assert torch.all(first[1:] <= first[:-1])  # brighter -> no later
    # on random images: exactly the formula, and monotone in intensity
    x = images(seed=1)
    out = LatencyEncoder(8)(x)
    assert torch.all(out.sum(0) == (x > 0).float())
    expected = ((1 - x) * 7).round()
    assert torch.equal(out.argmax(0).float(), expected)
    assert LatencyEncoder(1)(x).sum(0).eq(1).all()
    assert LatencyEncoder(4, threshold=0.5)(x).sum(0).eq((x > 0.5).float()).all()


@pytest.mark.parametrize("name, steps, fragment", [
    ("poisson", 4, "data.encoder 'poisson'"),
    ("direct", 0, "at least 1"),
    ("rate", -3, "at least 1"),
    ("latency", 0, "at least 1"),
])
def test_build_encoder_rejects_bad_names_and_timesteps(name, steps, fragment):
    with pytest.raises(UserError, match=fragment):
        build_encoder(name, steps)
