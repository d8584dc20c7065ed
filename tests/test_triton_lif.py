"""The fused Triton LIF against plain-torch references, run on CPU tensors by Triton's interpreter.

Why the interpreter is switched on per test (``monkeypatch.setenv``) and not for the session:
``triton.jit`` reads ``TRITON_INTERPRET`` when it decorates a kernel, and ``triton_lif`` decorates
on first use, cached per value of the flag. So the kernels these tests run are interpreted ones,
whatever was imported before, and no other test file sees the variable or an interpreted kernel
(a session-wide setting in conftest would also reach other tests' triton users, e.g. torch's
inductor; a subprocess per test would cost a torch import each). Sizes are tiny: the interpreter
runs each kernel step as numpy calls.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

pytest.importorskip("triton")

from ckdsnn_events.errors import UserError  # noqa: E402
from ckdsnn_events.models import triton_lif  # noqa: E402
from ckdsnn_events.models.neurons import LIFParameters, lif_sequence_reference  # noqa: E402
from ckdsnn_events.models.triton_lif import KernelNeuron, lif_sequence_triton, triton_available  # noqa: E402

TOL = 1e-6  # absolute, plus the same relative: float32 sums in another order (see _assert_same)


@pytest.fixture(autouse=True)
def interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


# --- the reference: every option as a per-step loop with autograd -------------------------------
# SpikingJelly (activation_based/surrogate.py): ATan's primitive is arctan(pi/2 * alpha * z) / pi
# + 1/2, its gradient alpha / 2 / (1 + (pi/2 * alpha * z)^2); Sigmoid's primitive is
# sigmoid(alpha * z), its gradient alpha * s * (1 - s). The triangle is models/neurons.py's.
# detach_reset (activation_based/neuron.py, BaseNode.neuronal_reset): the reset uses spike.detach().


def surrogate_grad(z: torch.Tensor, neuron: KernelNeuron) -> torch.Tensor:
    a = neuron.alpha
    if neuron.surrogate == "triangle":
        return torch.clamp(1 - z.abs() / a, min=0) / a
    if neuron.surrogate == "atan":
        return a / 2 / (1 + (math.pi / 2 * a * z) ** 2)
    s = 1 / (1 + torch.exp(-a * z))  # the kernel's arithmetic: torch.sigmoid rounds differently
    return a * s * (1 - s)


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, neuron):
        ctx.save_for_backward(z)
        ctx.neuron = neuron
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        return grad * surrogate_grad(z, ctx.neuron), None


def reference_lif(x: torch.Tensor, neuron: KernelNeuron, v0=None):
    """(T, ...) -> (spikes, v_T), one step at a time; autograd does the backward."""
    v = torch.zeros_like(x[0]) if v0 is None else v0
    spikes = []
    for t in range(x.shape[0]):
        u = neuron.decay * v + x[t]
        s = _Spike.apply(u - neuron.v_th, neuron)
        r = s.detach() if neuron.detach_reset else s
        v = u * (1 - r) + neuron.v_reset * r if neuron.reset == "hard" else u - r * neuron.v_th
        spikes.append(s)
    return torch.stack(spikes), v


def _run(fn, x, v0, g_s, g_v, use_spikes=True, use_v=True):
    x = x.detach().clone().requires_grad_()
    v0 = v0.detach().clone().requires_grad_() if v0 is not None else None
    spikes, v = fn(x, v0)
    loss = (spikes.float() * g_s).sum() * use_spikes + (v.float() * g_v).sum() * use_v
    grads = torch.autograd.grad(loss, [x] + ([v0] if v0 is not None else []))
    return spikes.detach(), v.detach(), grads


def _case(steps: int, seed: int, shape=(3, 7)):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((steps, *shape), generator=g) * 1.3 + 0.3  # many spikes, many near-threshold membranes
    v0 = torch.randn(shape, generator=g) if seed % 2 else None
    return x, v0, torch.randn((steps, *shape), generator=g), torch.randn(shape, generator=g)


def _assert_same(ours, ref, tol=TOL):
    """Spikes exactly; v_T and gradients to ``tol`` absolute + ``tol`` relative. The relative part is
    needed for gradients: kernel and autograd add the same float32 terms in another order, and at
    T = 10 both are ~2e-6 from the float64 result on gradients of size ~1 (measured)."""
    assert torch.equal(ours[0], ref[0])
    torch.testing.assert_close(ours[1], ref[1], atol=tol, rtol=tol)
    for a, b in zip(ours[2], ref[2]):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)


OPTIONS = list(itertools.product(("hard", "subtract"), ("triangle", "atan", "sigmoid"), (False, True), (0.5, 1.0)))


@pytest.mark.parametrize("reset,surrogate,detach,decay", OPTIONS)
def test_every_option_matches_the_reference_loop(reset, surrogate, detach, decay):
    """Spikes equal, final membrane and gradients (x and v0) to 1e-6, T = 1..10."""
    neuron = KernelNeuron(decay=decay, v_th=0.9, v_reset=-0.2 if reset == "hard" else 0.0, reset=reset,
                          surrogate=surrogate, surrogate_width=0.8, detach_reset=detach)
    for steps in range(1, 11):
        x, v0, g_s, g_v = _case(steps, seed=steps)
        ours = _run(lambda a, b: lif_sequence_triton(a, neuron, b), x, v0, g_s, g_v)
        ref = _run(lambda a, b: reference_lif(a, neuron, b), x, v0, g_s, g_v)
        _assert_same(ours, ref)


@pytest.mark.parametrize("reset", ["hard", "subtract"])
@pytest.mark.parametrize("decay,width", [(0.5, 1.0), (1.0, 0.5), (0.2, 2.0)])
def test_matches_lif_sequence_reference_of_neurons(reset, decay, width):
    """Today's models/neurons.py specification, for the options it has (triangle, no detach)."""
    params = LIFParameters(decay=decay, v_th=1.0, v_reset=0.1 if reset == "hard" else 0.0, reset=reset,
                           surrogate_width=width)
    for steps in range(1, 11):
        x, v0, g_s, g_v = _case(steps, seed=100 + steps)
        ours = _run(lambda a, b: lif_sequence_triton(a, params, b), x, v0, g_s, g_v)
        ref = _run(lambda a, b: lif_sequence_reference(a, params, b), x, v0, g_s, g_v)
        _assert_same(ours, ref)


@pytest.mark.parametrize("surrogate", ["atan", "sigmoid"])
def test_reference_surrogates_are_the_derivatives_of_spikingjellys_primitives(surrogate):
    neuron = KernelNeuron(surrogate=surrogate, surrogate_alpha=3.0)
    z = torch.linspace(-2, 2, 101, dtype=torch.float64, requires_grad=True)
    a = neuron.alpha
    primitive = torch.atan(math.pi / 2 * a * z) / math.pi + 0.5 if surrogate == "atan" else torch.sigmoid(a * z)
    (grad,) = torch.autograd.grad(primitive.sum(), z)
    torch.testing.assert_close(surrogate_grad(z.detach(), neuron), grad)


def test_gradient_through_only_spikes_or_only_the_final_membrane():
    neuron = KernelNeuron(surrogate="atan", reset="subtract")
    x, v0, g_s, g_v = _case(5, seed=7)
    for use_spikes, use_v in ((True, False), (False, True)):
        ours = _run(lambda a, b: lif_sequence_triton(a, neuron, b), x, v0, g_s, g_v, use_spikes, use_v)
        ref = _run(lambda a, b: reference_lif(a, neuron, b), x, v0, g_s, g_v, use_spikes, use_v)
        _assert_same(ours, ref)


def test_bfloat16_inputs_integrate_in_float32():
    """bf16 x: spikes in bf16 equal to the float32 reference on the same values, v_T float32,
    gradients in bf16 within one bf16 ulp (2**-7 relative) of the float32 reference: the
    interpreter's float32 -> bf16 conversion truncates (measured: up to 2**-7), CUDA rounds to nearest."""
    neuron = KernelNeuron(surrogate="sigmoid", reset="hard")
    for steps in (1, 4, 9, 10):
        x, v0, g_s, g_v = _case(steps, seed=50 + steps)
        xb = x.to(torch.bfloat16)
        spikes, v, grads = _run(lambda a, b: lif_sequence_triton(a, neuron, b), xb, v0, g_s, g_v)
        # the gradient arriving at bf16 spikes is bf16: the reference gets the same rounded values
        ref = _run(lambda a, b: reference_lif(a, neuron, b), xb.float(), v0, g_s.bfloat16().float(), g_v)
        assert spikes.dtype == torch.bfloat16 and v.dtype == torch.float32 and grads[0].dtype == torch.bfloat16
        assert torch.equal(spikes.float(), ref[0])
        torch.testing.assert_close(v, ref[1], atol=TOL, rtol=TOL)
        torch.testing.assert_close(grads[0].float(), ref[2][0], atol=1e-6, rtol=2**-7)
        if v0 is not None:  # the v0 gradient stays float32 all the way
            torch.testing.assert_close(grads[1], ref[2][1], atol=TOL, rtol=TOL)


def test_channels_last_and_constant_in_time_inputs_are_read_in_place():
    neuron = KernelNeuron(reset="subtract", detach_reset=True)
    g = torch.Generator().manual_seed(3)
    frames = torch.randn(4 * 2, 3, 5, 6, generator=g).to(memory_format=torch.channels_last) * 1.5
    x = frames.unflatten(0, (4, 2))  # (T, B, C, H, W), each time slice channels_last
    g_s = torch.randn(x.shape, generator=g)
    ours = _run(lambda a, b: lif_sequence_triton(a, neuron, b), x, None, g_s, 0.0, use_v=False)
    ref = _run(lambda a, b: reference_lif(a, neuron, b), x.contiguous(), None, g_s, 0.0, use_v=False)
    _assert_same(ours, ref)
    assert ours[0].stride() == x.stride()  # the spikes keep the channels_last layout
    assert ours[2][0].stride() == x.stride()

    once = torch.randn(2, 3, 4, generator=g) * 2
    expanded = once.expand(6, *once.shape)  # stride 0 along T: direct encoding
    g_s = torch.randn(expanded.shape, generator=g)
    ours = _run(lambda a, b: lif_sequence_triton(a, neuron, b), expanded, None, g_s, 0.0, use_v=False)
    ref = _run(lambda a, b: reference_lif(a, neuron, b), expanded.contiguous(), None, g_s, 0.0, use_v=False)
    _assert_same(ours, ref)


def test_no_grad_path_gives_the_same_outputs():
    neuron = KernelNeuron(surrogate="atan")
    x, v0, _, _ = _case(6, seed=11)
    with torch.no_grad():
        spikes, v = lif_sequence_triton(x, neuron, v0)
    ref_spikes, ref_v = reference_lif(x, neuron, v0)
    assert torch.equal(spikes, ref_spikes)
    torch.testing.assert_close(v, ref_v, atol=TOL, rtol=TOL)


def test_availability_follows_device_dtype_and_the_interpreter_flag(monkeypatch):
    cpu = torch.zeros(2, 3)
    assert triton_available(cpu) and triton_available(cpu.bfloat16())
    assert not triton_available(cpu.double())
    monkeypatch.delenv("TRITON_INTERPRET")
    assert not triton_available(cpu)
    with pytest.raises(ValueError, match="CUDA tensor"):
        lif_sequence_triton(cpu)


def test_kernels_are_jitted_per_interpreter_setting():
    from triton.runtime.interpreter import InterpretedFunction

    forward, backward = triton_lif._kernels(True)
    assert isinstance(forward, InterpretedFunction) and isinstance(backward, InterpretedFunction)


def test_parameters_from_lif_parameters_and_invalid_options():
    neuron = KernelNeuron.from_params(LIFParameters(decay=0.3, v_th=0.7, v_reset=0.1, reset="subtract",
                                                    surrogate_width=0.4))
    assert neuron == KernelNeuron(decay=0.3, v_th=0.7, v_reset=0.1, reset="subtract", surrogate_width=0.4)

    class IFOptions:
        leak = False
        decay = 0.5
        surrogate = "sigmoid"
        detach_reset = True

    neuron = KernelNeuron.from_params(IFOptions())
    assert neuron.decay == 1.0 and neuron.alpha == 4.0 and neuron.detach_reset
    assert KernelNeuron(surrogate="atan").alpha == 2.0
    for bad in ({"surrogate": "erf"}, {"reset": "soft"}, {"decay": 1.5}, {"v_th": 0.0},
                {"surrogate_width": 0.0}, {"surrogate_alpha": -1.0}):
        with pytest.raises(UserError):
            KernelNeuron(**bad)


# --- on a GPU: the compiled kernels (pytest -m cuda; benchmarks/gpu_check.sh runs these) ----------


@pytest.mark.cuda
@pytest.mark.parametrize("reset,surrogate,detach,decay", OPTIONS)
def test_compiled_kernels_on_cuda_match_the_reference(monkeypatch, reset, surrogate, detach, decay):
    monkeypatch.delenv("TRITON_INTERPRET")  # compiled, not interpreted
    neuron = KernelNeuron(decay=decay, v_th=0.9, v_reset=-0.2 if reset == "hard" else 0.0, reset=reset,
                          surrogate=surrogate, detach_reset=detach)
    for steps in (1, 4, 10):
        x, v0, g_s, g_v = (t.cuda() if t is not None else None for t in _case(steps, seed=steps, shape=(5, 700)))
        ours = _run(lambda a, b: lif_sequence_triton(a, neuron, b), x, v0, g_s, g_v)
        ref = _run(lambda a, b: reference_lif(a, neuron, b), x, v0, g_s, g_v)
        # spikes may differ where a membrane is within an ulp of threshold (FMA on the GPU): allow 1e-4 of them
        assert (ours[0] != ref[0]).float().mean() <= 1e-4
        if torch.equal(ours[0], ref[0]):
            _assert_same(ours, ref, tol=1e-5)


@pytest.mark.cuda
def test_compiled_bf16_and_channels_last_on_cuda(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET")
    neuron = KernelNeuron(surrogate="atan", reset="subtract")
    frames = torch.randn(10 * 4, 16, 12, 12, device="cuda").to(memory_format=torch.channels_last) * 1.5
    x = frames.unflatten(0, (10, 4)).to(torch.bfloat16)
    spikes, v = lif_sequence_triton(x, neuron)
    ref_spikes, ref_v = reference_lif(x.float(), neuron)
    assert spikes.dtype == torch.bfloat16 and v.dtype == torch.float32 and spikes.stride() == x.stride()
    assert (spikes.float() != ref_spikes).float().mean() <= 1e-4


@pytest.mark.parametrize("dtype", ["*fp32", "*bf16"])
def test_kernels_compile_for_a_cuda_gpu_without_one(monkeypatch, dtype):
    """The compiled path, not only the interpreter: Triton lowers both kernels to sm_90 machine code
    (its bundled ptxas) on this GPU-less machine. (All 96 option x dtype variants compiled when last
    checked by hand; here one forward and two backward variants per dtype, to stay quick.)"""
    compiler = pytest.importorskip("triton.compiler")
    from triton.backends.compiler import GPUTarget

    monkeypatch.delenv("TRITON_INTERPRET")
    forward, backward = triton_lif._kernels(False)
    target = GPUTarget("cuda", 90, 32)
    fwd_sig = {"x_ptr": dtype, "v0_ptr": "*fp32", "s_ptr": dtype, "u_ptr": "*fp32", "v_ptr": "*fp32", "n": "i32",
               "steps": "i32", "x_stride_t": "i32", "decay": "fp32", "v_th": "fp32", "v_reset": "fp32"}
    consts = {"HAS_V0": True, "KEEP_U": True, "SUBTRACT": False, "BLOCK": 1024}
    kernel = compiler.compile(compiler.ASTSource(forward, {**fwd_sig, **dict.fromkeys(consts, "constexpr")}, consts),
                              target=target)
    assert kernel.asm["cubin"]
    bwd_sig = {"u_ptr": "*fp32", "gs_ptr": dtype, "gv_ptr": "*fp32", "gx_ptr": dtype, "n": "i32", "steps": "i32",
               "last_u": "i64", "last_gs": "i64", "gs_stride_t": "i32", "decay": "fp32", "v_th": "fp32",
               "v_reset": "fp32", "alpha": "fp32"}
    for surrogate, subtract in ((1, False), (2, True)):
        consts = {"HAS_GS": True, "SUBTRACT": subtract, "DETACH": subtract, "SURROGATE": surrogate, "BLOCK": 1024}
        kernel = compiler.compile(compiler.ASTSource(backward, {**bwd_sig, **dict.fromkeys(consts, "constexpr")},
                                                     consts), target=target)
        assert kernel.asm["cubin"]
