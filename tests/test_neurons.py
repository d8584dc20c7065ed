"""The LIF neuron: parameters, dynamics against Norse, the fused kernels against the per-step form."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
from norse.torch.functional.lif_box import LIFBoxFeedForwardState, LIFBoxParameters, lif_box_feed_forward_step
from norse.torch.functional.reset import reset_subtract, reset_value

from ckdsnn_events.errors import UserError
from ckdsnn_events.models import LIF, LIFParameters, lif_sequence, lif_sequence_reference
from ckdsnn_events.models import neurons

# ---------------------------------------------------------------------------------------------
# Parameters


def test_parameters_defaults_and_asdict_round_trip():
    p = LIFParameters()
    assert (p.decay, p.v_th, p.v_reset, p.reset, p.surrogate_width) == (0.5, 1.0, 0.0, "hard", 1.0)
    q = LIFParameters(decay=0.25, v_th=0.5, v_reset=-0.1, reset="subtract", surrogate_width=0.3)
    assert LIFParameters(**asdict(q)) == q
    with pytest.raises(Exception):
        q.decay = 0.3  # frozen


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"decay": -0.1}, "[0, 1]"),
        ({"decay": 1.5}, "[0, 1]"),
        ({"v_th": 0.0}, "> 0"),
        ({"v_th": -1.0}, "> 0"),
        ({"surrogate_width": 0.0}, "> 0"),
        ({"reset": "soft"}, "'hard', 'subtract'"),
        ({"decay": float("nan")}, "finite"),
        ({"v_th": True}, "finite"),
        ({"v_reset": 1.0}, "below"),
    ],
)
def test_bad_parameters_are_user_errors(kwargs, words):
    with pytest.raises(UserError, match=None) as info:
        LIFParameters(**kwargs)
    assert words in str(info.value)


# ---------------------------------------------------------------------------------------------
# Dynamics


def test_reset_modes_by_hand():
    # constant input 0.6, decay 0.5: u = 0.6, 0.9, 1.05 (spike) ...
    x = torch.full((5, 1), 0.6, dtype=torch.float64)
    hard_s, hard_v = lif_sequence(x, LIFParameters(reset="hard"))
    # hard: after the spike v = 0, then u = 0.6, 0.9
    assert hard_s.flatten().tolist() == [0, 0, 1, 0, 0]
    assert hard_v.item() == pytest.approx(0.9)
    sub_s, sub_v = lif_sequence(x, LIFParameters(reset="subtract"))
    # subtract: v = 0.05 after the spike, then u = 0.625, 0.9125
    assert sub_s.flatten().tolist() == [0, 0, 1, 0, 0]
    assert sub_v.item() == pytest.approx(0.9125)
    to_minus, _ = lif_sequence(torch.full((4, 1), 1.2, dtype=torch.float64), LIFParameters(v_reset=-1.0))
    # hard reset to -1: u = 1.2 (spike), -0.5+1.2 = 0.7, 1.55 (spike), 0.7
    assert to_minus.flatten().tolist() == [1, 0, 1, 0]
    # threshold crossing is strict: u == v_th does not fire
    exact, _ = lif_sequence(torch.ones(1, 3, dtype=torch.float64), LIFParameters())
    assert exact.sum() == 0


def _norse_sequence(x: torch.Tensor, p: LIFParameters):
    """Norse's boxed LIF mapped onto ours: dt*tau_mem_inv = 1 - decay, v_leak = 0,
    i = x / (1 - decay); all potentials divided by w = surrogate_width so that Norse's triangle
    surrogate (half-width 1, height alpha = 1) becomes ours of half-width w.

    Returns spikes (T, ...) and the post-reset membranes (T, ...) in our units.
    """
    w = p.surrogate_width
    dt = 1e-3
    norse_p = LIFBoxParameters(
        tau_mem_inv=torch.as_tensor((1 - p.decay) / dt, dtype=x.dtype),
        v_leak=torch.as_tensor(0.0, dtype=x.dtype),
        v_th=torch.as_tensor(p.v_th / w, dtype=x.dtype),
        v_reset=torch.as_tensor(p.v_reset / w, dtype=x.dtype),
        method="triangle",
        alpha=1.0,
        reset_method=reset_value if p.reset == "hard" else reset_subtract,
    )
    state = LIFBoxFeedForwardState(v=torch.zeros_like(x[0]))
    spikes, membranes = [], []
    for t in range(x.shape[0]):
        z, state = lif_box_feed_forward_step(x[t] / ((1 - p.decay) * w), state, norse_p, dt=dt)
        spikes.append(z)
        membranes.append(state.v * w)
    return torch.stack(spikes), torch.stack(membranes)


@pytest.mark.parametrize("reset", ["hard", "subtract"])
@pytest.mark.parametrize("decay, width", [(0.5, 1.0), (0.25, 0.5), (0.9, 2.0), (0.0, 1.0)])
def test_matches_norse_spikes_membranes_and_gradients(reset, decay, width):
    p = LIFParameters(decay=decay, reset=reset, surrogate_width=width, v_reset=-0.2 if reset == "hard" else 0.0)
    torch.manual_seed(0)
    x = (torch.rand(12, 6, 7, dtype=torch.float64) * 1.6 - 0.2).requires_grad_()
    weights = torch.randn(12, 6, 7, dtype=torch.float64)

    norse_s, norse_v = _norse_sequence(x, p)
    (norse_grad,) = torch.autograd.grad((norse_s * weights).sum(), x)

    ours_s, ours_v = lif_sequence(x, p)
    (ours_grad,) = torch.autograd.grad((ours_s * weights).sum(), x)
    assert torch.equal(ours_s, norse_s)
    assert 0.05 < ours_s.mean() < 0.95  # both regimes exercised
    torch.testing.assert_close(ours_v, norse_v[-1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours_grad, norse_grad, rtol=1e-10, atol=1e-12)
    assert ours_grad.abs().sum() > 0

    # membrane after every step: the fused form stepped one step at a time with explicit state
    v = None
    for t in range(x.shape[0]):
        s, v = lif_sequence(x[t : t + 1].detach(), p, v0=v)
        assert torch.equal(s[0], norse_s[t])
        torch.testing.assert_close(v, norse_v[t].detach(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Fused kernels against the per-step reference


def _compare_fused_and_reference(x, p, with_v0, atol):
    torch.manual_seed(1)
    v0 = torch.randn(x.shape[1:], dtype=x.dtype).requires_grad_() if with_v0 else None
    x = x.clone().requires_grad_()
    g_s = torch.randn(x.shape, dtype=x.dtype)
    g_v = torch.randn(x.shape[1:], dtype=x.dtype)
    inputs = (x, v0) if with_v0 else (x,)

    s_ref, v_ref = lif_sequence_reference(x, p, v0)
    grads_ref = torch.autograd.grad((s_ref * g_s).sum() + (v_ref * g_v).sum(), inputs)
    s, v = lif_sequence(x, p, v0)
    grads = torch.autograd.grad((s * g_s).sum() + (v * g_v).sum(), inputs)

    assert torch.equal(s, s_ref)
    torch.testing.assert_close(v, v_ref, rtol=0, atol=atol)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=0, atol=atol)


@pytest.mark.parametrize("reset", ["hard", "subtract"])
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("with_v0", [False, True])
def test_fused_equals_per_step_reference(reset, dtype, atol, with_v0):
    p = LIFParameters(decay=0.6, reset=reset, surrogate_width=0.8, v_reset=0.1 if reset == "hard" else 0.0)
    torch.manual_seed(0)
    # 9000 neurons: more than one numba block, and a partial last block
    x = torch.randn(7, 3, 3000, dtype=dtype) + 0.5
    _compare_fused_and_reference(x, p, with_v0, atol)


def test_torch_fallback_equals_reference(monkeypatch):
    """The path CUDA and half precision take, forced on CPU."""
    monkeypatch.setattr(neurons, "_numba_ok", lambda *tensors: False)
    for reset in ("hard", "subtract"):
        p = LIFParameters(decay=0.3, reset=reset, surrogate_width=1.5)
        _compare_fused_and_reference(torch.randn(6, 50, dtype=torch.float64) + 0.6, p, True, 1e-12)


@pytest.mark.parametrize("reset", ["hard", "subtract"])
def test_gradcheck_where_the_dynamics_are_smooth(reset):
    """float64 gradcheck of the hand-written backward against finite differences.

    The spike function is a step, so finite differences see its true derivative (0) and the
    surrogate only where no membrane is within ``surrogate_width`` of the threshold; with a
    narrow surrogate and membranes kept away from the threshold, the two agree and gradcheck
    checks the recurrence: decay, the reset gate, the gradient through to ``v0``.
    """
    p = LIFParameters(decay=0.7, surrogate_width=0.01, reset=reset)
    gen = torch.Generator().manual_seed(3)
    for _ in range(200):
        x = torch.rand(5, 8, dtype=torch.float64, generator=gen) * 1.2
        v0 = torch.rand(8, dtype=torch.float64, generator=gen) * 0.5
        u = _pre_reset_membranes(x, v0, p)
        if (u - p.v_th).abs().min() > 0.05:
            break
    else:  # pragma: no cover
        pytest.fail("no input with membranes away from the threshold")
    spikes, _ = lif_sequence(x, p, v0)
    assert 0 < spikes.sum() < spikes.numel()  # resets happen
    x.requires_grad_()
    v0.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: lif_sequence(a, p, b), (x, v0), eps=1e-6, atol=1e-8)


def _pre_reset_membranes(x, v0, p):
    v, us = v0.clone(), []
    for t in range(x.shape[0]):
        u = p.decay * v + x[t]
        us.append(u)
        fired = u > p.v_th
        v = torch.where(fired, torch.full_like(u, p.v_reset), u) if p.reset == "hard" else u - fired * p.v_th
    return torch.stack(us)


def test_constant_in_time_input_is_not_materialised_and_gives_the_same_result():
    torch.manual_seed(0)
    frame = (torch.randn(4, 5, 6) + 0.7).requires_grad_()
    expanded = frame.expand(6, 4, 5, 6)
    assert expanded.stride(0) == 0
    copied = frame.detach().repeat(6, 1, 1, 1).requires_grad_()
    s1, _ = lif_sequence(expanded)
    s2, _ = lif_sequence(copied)
    assert torch.equal(s1, s2)
    g = torch.randn_like(s1)
    (grad_frame,) = torch.autograd.grad((s1 * g).sum(), frame)
    (grad_copies,) = torch.autograd.grad((s2 * g).sum(), copied)
    torch.testing.assert_close(grad_frame, grad_copies.sum(0))


def test_without_autograd_the_same_spikes_and_no_graph():
    torch.manual_seed(0)
    x = torch.randn(5, 3, 700) + 0.6
    p = LIFParameters(reset="subtract")
    s_grad, v_grad = lif_sequence(x.clone().requires_grad_(), p)
    with torch.no_grad():
        s_plain, v_plain = lif_sequence(x, p)
    assert s_grad.grad_fn is not None and s_plain.grad_fn is None
    assert torch.equal(s_plain, s_grad) and torch.equal(v_plain, v_grad.detach())
    with torch.inference_mode():
        assert torch.equal(lif_sequence(x, p)[0], s_plain)


def test_half_precision_integrates_in_float32():
    torch.manual_seed(0)
    x = torch.randn(5, 100) + 0.8
    s32, _ = lif_sequence(x)
    s16, v16 = lif_sequence(x.to(torch.bfloat16))
    assert s16.dtype == torch.bfloat16 and v16.dtype == torch.float32
    assert torch.equal(s16.float(), lif_sequence(x.to(torch.bfloat16).float())[0])
    assert (s16.float() != s32).float().mean() < 0.05  # bf16 rounding of the inputs only


def test_lif_module():
    layer = LIF(LIFParameters(decay=0.25))
    seen = []
    layer.register_forward_hook(lambda m, a, out: seen.append(out))
    x = torch.randn(3, 2, 4, 5, 5) * 2
    out = layer(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert len(seen) == 1 and seen[0] is out
    assert "decay=0.25" in repr(layer)
    assert list(layer.state_dict()) == []
    with pytest.raises(UserError):
        LIF({"decay": 0.5})


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu():
    torch.manual_seed(0)
    p = LIFParameters(surrogate_width=0.7)
    x = torch.randn(6, 1000, dtype=torch.float64) + 0.5
    g = torch.randn_like(x)
    xc = x.clone().requires_grad_()
    xg = x.cuda().requires_grad_()
    sc, vc = lif_sequence(xc, p)
    sg, vg = lif_sequence(xg, p)
    assert torch.equal(sc, sg.cpu())
    torch.testing.assert_close(vc, vg.cpu())
    (gc,) = torch.autograd.grad((sc * g).sum(), xc)
    (gg,) = torch.autograd.grad((sg * g.cuda()).sum(), xg)
    torch.testing.assert_close(gc, gg.cpu())
