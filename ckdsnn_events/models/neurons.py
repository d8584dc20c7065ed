"""The ``fused`` neuron backend: the spiking neurons of the students, all T steps in one kernel.

The dynamics and options (LIF/IF, threshold, hard/subtract reset, triangle/atan/sigmoid surrogate,
``detach_reset``) are those of :mod:`.neuron_params`. With the defaults it is the ``LIFSpike`` of
the TET code (Deng et al., ICLR 2022, github.com/brain-intelligence-lab/temporal_efficient_training,
``models/layers.py``), which the CKDSNN public code's spiking ResNets use (``snn_models/
resnet_models.py`` imports ``LIFSpike`` from its ``snn_models/layers.py``; that file's source is not
in the repository, only its ``.pyc``): ``mem = mem * tau + x``, ``spike = ZIF(mem - thresh)``,
``mem = (1 - spike) * mem`` with ``tau = 0.5``, ``thresh = 1.0``, ``gama = 1.0``; its
``ZIF.backward``, ``(1 / gama) * (1 / gama) * (gama - |u - v_th|).clamp(min=0)``, is our triangle
of half-width ``gama``. Without ``detach_reset`` gradients flow through the reset, as in that code
and in Norse's ``reset_value``/``reset_subtract``: ``dv_t/du_t = (1 - s_t) + (v_reset - u_t) dS/du``
(hard) or ``1 - v_th dS/du`` (subtract); with it ``dv_t/du_t = 1 - s_t`` (hard) or ``1``.

The ``norse`` backend (:mod:`.norse_neurons`) runs the same neurons with Norse's own step
functions; :func:`.backends.make_neuron` picks one. The tests hold both to each other, to
:func:`lif_sequence_reference` and to SpikingJelly's ``LIFNode``/``IFNode``.

Speed: :func:`lif_sequence` is one ``torch.autograd.Function`` over all T steps. Its forward
saves only the pre-reset membranes ``u`` (spikes are ``u > v_th``); its backward runs the reverse
recurrence by hand::

    g_u[t] = dS/du[t] * (g_s[t] + g_v[t] * dR/ds) + g_v[t] * dR/du,   g_v[t-1] = decay * g_u[t],
    g_x[t] = g_u[t]                                           (dR/ds = 0 with detach_reset)

On CPU (float32/float64) both directions are numba kernels that read and write each element once,
in blocks of neurons that stay in cache over the T steps; elsewhere (CUDA, half precision) the
same recurrence runs as a loop of torch operations. :func:`lif_sequence_reference` is the plain
per-step form with autograd, kept as the specification the fused form is tested against.
"""

from __future__ import annotations

import math
from typing import Optional

import numba
import torch
from torch import nn

from ckdsnn_events.errors import UserError
from ckdsnn_events.models.neuron_params import RESETS, SURROGATES, LIFParameters, spike_fn, surrogate_grad, triangle_spike
from ckdsnn_events.models.time_major import is_constant_in_time

__all__ = ["RESETS", "LIFParameters", "LIF", "lif_sequence", "lif_sequence_reference", "triangle_spike"]

# Neurons handled together by one numba task: their membranes (a few KiB) stay in L1 over T steps.
_BLOCK = 4096


# ---------------------------------------------------------------------------------------------
# The reference: one step at a time, autograd does the backward


def lif_sequence_reference(
    x: torch.Tensor, params: LIFParameters = LIFParameters(), v0: Optional[torch.Tensor] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The LIF dynamics step by step with autograd: the specification :func:`lif_sequence` meets.

    Args:
        x: (T, ...) input currents, time-major.
        params: neuron parameters.
        v0: (...) initial membrane; None is 0.

    Returns:
        ``(spikes (T, ...), v_T (...))``: binary spikes in ``x``'s dtype and the final membrane.
    """
    v = torch.zeros_like(x[0]) if v0 is None else v0
    spikes = []
    for t in range(x.shape[0]):
        u = params.decay * v + x[t]
        s = spike_fn(u - params.v_th, params)
        r = s.detach() if params.detach_reset else s  # SpikingJelly's spike_d
        if params.reset == "hard":
            v = u * (1 - r) + params.v_reset * r
        else:
            v = u - r * params.v_th
        spikes.append(s)
    return torch.stack(spikes), v


# ---------------------------------------------------------------------------------------------
# The fused form


def lif_sequence(
    x: torch.Tensor, params: LIFParameters = LIFParameters(), v0: Optional[torch.Tensor] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """All T steps of the LIF dynamics in one autograd node (see the module docstring).

    Args:
        x: (T, ...) input currents, time-major, floating point. A tensor that is constant in
            time (stride 0 along T, an ``expand``) is read without being materialised.
        params: neuron parameters.
        v0: (...) initial membrane (explicit state, e.g. carried over from an earlier chunk of
            time steps); None is 0.

    Returns:
        ``(spikes (T, ...), v_T (...))``: binary spikes in ``x``'s dtype (contiguous) and the
        final post-reset membrane (float32 for half-precision inputs, else ``x``'s dtype).
        Gradients flow to ``x`` and ``v0`` through the surrogate. Without autograd (no_grad,
        inference_mode, or inputs that need no gradient) the membranes are not kept.
    """
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"LIF input must be time-major (T, ...) with T >= 1, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"LIF input must be floating point, got {x.dtype}")
    needs_grad = x.requires_grad or (v0 is not None and v0.requires_grad)
    if not (torch.is_grad_enabled() and needs_grad):
        spikes, v, _ = _lif_forward(x, v0, params, keep_membranes=False)
        return spikes, v
    return _FusedLIF.apply(x, v0, params)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Membranes of half-precision inputs are integrated in float32 (bf16 keeps 8 mantissa bits)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _as_rows(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(T, ...) -> (T, N) without copying when possible (also for stride-0-in-time inputs)."""
    x = x.to(dtype)
    if is_constant_in_time(x):
        inner = x[0].contiguous().reshape(-1)
        return inner.expand(x.shape[0], inner.numel())
    return x.reshape(x.shape[0], -1).contiguous()


def _numba_ok(*tensors: torch.Tensor) -> bool:
    return all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) for t in tensors)


def _lif_forward(
    x: torch.Tensor, v0: Optional[torch.Tensor], params: LIFParameters, keep_membranes: bool
) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Spikes (T, ...), final membrane (...) and, if asked, the pre-reset membranes (T, N)."""
    steps, shape = x.shape[0], x.shape[1:]
    dtype = compute_dtype(x.dtype)
    rows = _as_rows(x, dtype)
    n = rows.shape[1]
    v = (torch.zeros(n, dtype=dtype, device=x.device) if v0 is None
         else v0.detach().to(dtype).reshape(n).clone())
    u = torch.empty((steps, n) if keep_membranes else (1, 1), dtype=dtype, device=x.device)
    spikes = torch.empty((steps, n), dtype=x.dtype, device=x.device)
    if _numba_ok(rows) and spikes.dtype == dtype:
        scalar = rows.numpy().dtype.type
        args = (rows.numpy(), v.numpy(), u.numpy(), spikes.numpy(), scalar(params.decay), scalar(params.v_th),
                scalar(params.v_reset), params.reset == "subtract", keep_membranes)
        # one block: run it on this thread (waking numba's thread pool costs more than the work)
        if n <= _BLOCK:
            _lif_forward_block(*args, 0, n)
        else:
            _lif_forward_kernel(*args)
    else:
        _lif_forward_torch(rows, v, u if keep_membranes else None, spikes, params)
    return spikes.view(steps, *shape), v.view(shape), (u if keep_membranes else None)


class _FusedLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, v0: Optional[torch.Tensor], params: LIFParameters):
        spikes, v, u = _lif_forward(x, v0, params, keep_membranes=True)
        ctx.save_for_backward(u)
        # the final membrane is rarely used: its gradient stays None instead of a zero tensor
        ctx.set_materialize_grads(False)
        ctx.params = params
        ctx.x_dtype, ctx.shape, ctx.has_v0 = x.dtype, x.shape, v0 is not None
        ctx.v0_dtype = v0.dtype if v0 is not None else None
        return spikes, v

    @staticmethod
    def backward(ctx, grad_spikes: Optional[torch.Tensor], grad_v: Optional[torch.Tensor]):
        (u,) = ctx.saved_tensors
        params: LIFParameters = ctx.params
        steps, n = u.shape
        if grad_spikes is None:
            g_s = torch.zeros_like(u)
        else:
            g_s = grad_spikes.reshape(steps, n).to(u.dtype).contiguous()
        # the kernels' running gradient w.r.t. the membrane; it ends as the gradient w.r.t. v0
        g_v = torch.zeros(n, dtype=u.dtype, device=u.device)
        if grad_v is not None:
            g_v.copy_(grad_v.reshape(n))
        g_x = torch.empty_like(u)
        if _numba_ok(u):
            scalar = u.numpy().dtype.type
            kind, c1, c2 = _surrogate_constants(params)
            args = (_SURROGATE_KERNELS[kind], u.numpy(), g_s.numpy(), g_v.numpy(), g_x.numpy(),
                    scalar(params.decay), scalar(params.v_th), scalar(params.v_reset), scalar(c1), scalar(c2),
                    params.reset == "subtract", params.detach_reset)
            if n <= _BLOCK:  # as in the forward
                _lif_backward_block(*args, 0, n)
            else:
                _lif_backward_kernel(*args)
        else:
            _lif_backward_torch(u, g_s, g_v, g_x, params)
        g_x = g_x.view(ctx.shape).to(ctx.x_dtype)
        g_v0 = g_v.view(ctx.shape[1:]).to(ctx.v0_dtype) if ctx.has_v0 else None
        return g_x, g_v0, None


# numba kernels: blocks of neurons in parallel, time sequential inside a block. The per-block
# work is a separate function that slices rows itself (``x[t, lo:hi]`` is a contiguous 1-D array
# to numba): written inline in the prange body, or given ``x[:, lo:hi]`` (a non-contiguous 2-D
# view), LLVM did not vectorise the neuron loop (3-7x slower, measured). Scalars arrive in the
# arrays' dtype so that float32 arithmetic stays float32 (a Python float would promote it).


@numba.njit(cache=True, nogil=True, inline="never")
def _lif_forward_block(x, v_all, u_out, s_out, decay, v_th, v_reset, subtract, keep, lo, hi):
    one = s_out.dtype.type(1)
    zero = s_out.dtype.type(0)
    v = v_all[lo:hi]
    for t in range(x.shape[0]):
        xt, st = x[t, lo:hi], s_out[t, lo:hi]
        ut = u_out[t, lo:hi] if keep else u_out[0, 0:1]
        for i in range(hi - lo):
            u = decay * v[i] + xt[i]
            fired = u > v_th
            if keep:
                ut[i] = u
            st[i] = one if fired else zero
            if subtract:
                v[i] = u - v_th if fired else u
            else:
                v[i] = v_reset if fired else u


@numba.njit(cache=True, parallel=True, nogil=True)
def _lif_forward_kernel(x, v, u_out, s_out, decay, v_th, v_reset, subtract, keep):
    """Spikes into ``s_out`` (T, N), membranes ``v`` (N,) updated in place, pre-reset membranes
    into ``u_out`` (T, N) when ``keep`` (else ``u_out`` is a (1, 1) placeholder)."""
    n = x.shape[1]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        lo, hi = b * _BLOCK, min(n, (b + 1) * _BLOCK)
        _lif_forward_block(x, v, u_out, s_out, decay, v_th, v_reset, subtract, keep, lo, hi)


# The surrogates g(z) of the backward kernel, one jitted function each: the kernel takes one as an
# argument and numba compiles a version per surrogate, so the neuron loop has no branch on the
# kind (a branch there, with the sigmoid's exp in one arm, kept LLVM from vectorising it: the
# triangle's backward took 2.3x as long, measured).


@numba.njit(cache=True, nogil=True, inline="always")
def _triangle_grad(z, c1, c2, one, zero):  # c1 = w; one, zero: in the arrays' dtype, as all scalars
    return max(zero, one - abs(z) / c1) / c1


@numba.njit(cache=True, nogil=True, inline="always")
def _atan_grad(z, c1, c2, one, zero):  # c1 = a / 2, c2 = pi / 2 * a
    h = c2 * z
    return c1 / (one + h * h)


@numba.njit(cache=True, nogil=True, inline="always")
def _sigmoid_grad(z, c1, c2, one, zero):  # c1 = a
    e = one / (one + math.exp(-c1 * z))
    return c1 * e * (one - e)


_SURROGATE_KERNELS = (_triangle_grad, _atan_grad, _sigmoid_grad)  # in the order of SURROGATES


@numba.njit(cache=True, nogil=True, inline="never")
def _lif_backward_block(sg_fn, u_in, g_s, g_v_all, g_x, decay, v_th, v_reset, c1, c2, subtract, detach, lo, hi):
    one = u_in.dtype.type(1)
    zero = u_in.dtype.type(0)
    g_v = g_v_all[lo:hi]
    for t in range(u_in.shape[0] - 1, -1, -1):
        ut, gst, gxt = u_in[t, lo:hi], g_s[t, lo:hi], g_x[t, lo:hi]
        for i in range(hi - lo):
            u = ut[i]
            gv = g_v[i]
            sg = sg_fn(u - v_th, c1, c2, one, zero)
            if subtract:
                gu = sg * gst[i] + gv if detach else sg * (gst[i] - gv * v_th) + gv
            else:
                keep = zero if u > v_th else gv  # d v / d u through (1 - s)
                gu = sg * gst[i] + keep if detach else sg * (gst[i] + gv * (v_reset - u)) + keep
            gxt[i] = gu
            g_v[i] = decay * gu


@numba.njit(cache=True, parallel=True, nogil=True)
def _lif_backward_kernel(sg_fn, u_in, g_s, g_v, g_x, decay, v_th, v_reset, c1, c2, subtract, detach):
    n = u_in.shape[1]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        lo, hi = b * _BLOCK, min(n, (b + 1) * _BLOCK)
        _lif_backward_block(sg_fn, u_in, g_s, g_v, g_x, decay, v_th, v_reset, c1, c2, subtract, detach, lo, hi)


def _surrogate_constants(p: LIFParameters) -> tuple[int, float, float]:
    """(kind, c1, c2) of the backward kernel's surrogate (see ``_lif_backward_block``)."""
    a = p.surrogate_shape
    kind = SURROGATES.index(p.surrogate)
    return kind, (a, a / 2, a)[kind], (0.0, math.pi / 2 * a, 0.0)[kind]


def _lif_forward_torch(x: torch.Tensor, v: torch.Tensor, u_out: Optional[torch.Tensor], s_out: torch.Tensor,
                       p: LIFParameters) -> None:
    """The forward kernel as torch operations (any device/dtype); updates ``v`` in place."""
    for t in range(x.shape[0]):
        u = torch.empty_like(v) if u_out is None else u_out[t]
        torch.add(v.mul_(p.decay), x[t], out=u)
        fired = u > p.v_th
        s_out[t].copy_(fired)
        if p.reset == "subtract":
            torch.sub(u, fired.to(u.dtype), alpha=p.v_th, out=v)
        else:
            torch.where(fired, torch.as_tensor(p.v_reset, dtype=u.dtype, device=u.device), u, out=v)


def _lif_backward_torch(u_in: torch.Tensor, g_s: torch.Tensor, g_v: torch.Tensor, g_x: torch.Tensor,
                        p: LIFParameters) -> None:
    """The backward kernel as torch operations; leaves the gradient w.r.t. ``v0`` in ``g_v``."""
    for t in range(u_in.shape[0] - 1, -1, -1):
        u = u_in[t]
        sg = surrogate_grad(u - p.v_th, p)
        through_spike = 0.0 if p.detach_reset else 1.0
        if p.reset == "subtract":
            gu = sg * (g_s[t] - through_spike * g_v * p.v_th) + g_v
        else:
            gu = sg * (g_s[t] + through_spike * g_v * (p.v_reset - u)) + torch.where(u > p.v_th, 0.0, g_v)
        g_x[t] = gu
        torch.mul(gu, p.decay, out=g_v)


# ---------------------------------------------------------------------------------------------
# The module


class LIF(nn.Module):
    """A layer of spiking neurons: time-major currents (T, ...) in, binary spikes (T, ...) out.

    Any neuron of :class:`LIFParameters` (LIF or IF, every reset and surrogate), run by the
    ``fused`` backend (:func:`lif_sequence`). :class:`.norse_neurons.NorseLIF` is the same layer
    run by Norse; :func:`.backends.make_neuron` builds either. Stateless between calls: every
    call starts from membrane 0 and runs all T steps. The energy counter and the firing-rate
    meter find these modules by type (``isinstance(m, LIF)``, true for both backends) and read
    their outputs; a student may give each a ``spike_key`` attribute (its name in spike records).

    Attributes:
        params: the neuron's :class:`LIFParameters`.
        backend: "fused" here, "norse" in the subclass.
    """

    backend = "fused"

    def __init__(self, params: LIFParameters = LIFParameters()):
        super().__init__()
        if not isinstance(params, LIFParameters):
            raise UserError(f"neuron parameters must be a LIFParameters, got {type(params).__name__}.")
        self.params = params

    def sequence(self, x: torch.Tensor, v0: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(spikes (T, ...), v_T (...))`` from currents x (T, ...) and initial membrane v0 (... or None = 0)."""
        return lif_sequence(x, self.params, v0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (T, ...) float -> spikes (T, ...) of 0.0/1.0 in ``x``'s dtype."""
        return self.sequence(x)[0]

    def extra_repr(self) -> str:
        p = self.params
        shape = (f"surrogate_width={p.surrogate_width}" if p.surrogate == "triangle"
                 else f"surrogate_alpha={p.surrogate_alpha}")
        return (f"neuron={p.neuron!r}, decay={p.decay}, v_th={p.v_th}, v_reset={p.v_reset}, reset={p.reset!r}, "
                f"surrogate={p.surrogate!r}, {shape}, detach_reset={p.detach_reset}, backend={self.backend!r}")
