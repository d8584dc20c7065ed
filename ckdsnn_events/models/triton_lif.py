"""A fused Triton LIF: one kernel for the forward over all T steps, one for the backward recurrence.

Same dynamics as :mod:`.neurons` (element-wise, step ``t = 1..T``, membrane ``v_0`` = 0 or given)::

    u_t = decay * v_{t-1} + x_t                  # decay = 1: IF (no leak)
    s_t = H(u_t - v_th)                          # H(z) = 1 if z > 0 else 0
    v_t = u_t * (1 - r_t) + v_reset * r_t        # reset="hard"
    v_t = u_t - r_t * v_th                       # reset="subtract"
    r_t = s_t, or s_t without gradient            # detach_reset=True (SpikingJelly's option)

Surrogate gradients ``dS/du`` at ``z = u - v_th``:

- ``triangle`` (half-width ``w = surrogate_width``, as :mod:`.neurons`): ``max(0, 1 - |z| / w) / w``
- ``atan`` (SpikingJelly ``surrogate.ATan``, default ``alpha = 2``): ``alpha / 2 / (1 + (pi / 2 * alpha * z)^2)``
- ``sigmoid`` (SpikingJelly ``surrogate.Sigmoid``, default ``alpha = 4``): ``alpha * s * (1 - s)``,
  ``s = sigmoid(alpha * z)``

(``spikingjelly/activation_based/surrogate.py``: ``atan_backward``, ``sigmoid_backward``; the
reset and ``detach_reset`` as in ``neuron.py``'s ``BaseNode.neuronal_reset``: the spike used by
the reset is ``spike.detach()``.) The backward kernel runs the reverse recurrence::

    dR/du = 1 - r_t (hard) or 1 (subtract);  dR/ds = v_reset - u_t (hard) or -v_th (subtract), 0 if detached
    g_u[t] = dS/du * (g_s[t] + g_v * dR/ds) + g_v * dR/du;  g_x[t] = g_u[t];  g_v <- decay * g_u[t]

ending with ``g_v`` = the gradient w.r.t. ``v_0``. The forward saves only the float32 pre-reset
membranes ``u`` (T, N). Inputs are float32, bfloat16 or float16; membranes are always integrated
in float32 (bf16 keeps 8 mantissa bits), spikes come out in the input's dtype.

Layout: each time slice ``x[t]`` may be any dense layout (contiguous or channels_last); the kernel
walks it in memory order and the spikes and gradients are written in the same layout, so no
copies are made. A slice repeated over time (stride 0 along T, an ``expand``) is read in place.

Kernels are decorated on first use, not at import: ``triton.jit`` decides at decoration time
whether it compiles (CUDA) or interprets (``TRITON_INTERPRET=1``, numpy on CPU tensors), and a
cache keyed by that flag lets tests turn the interpreter on for themselves only. For the same
reason the kernels call only Triton builtins: the library's own ``@triton.jit`` helpers
(``tl.zeros``, ``tl.sigmoid``, ...) are decorated when triton is imported, so they would stay
compiled-mode functions that the interpreter cannot call.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import Any, Optional

import torch

from ckdsnn_events.errors import UserError

try:  # triton ships with torch's Linux wheels; elsewhere the torch loop is the only backend
    import triton
    import triton.language as tl
except Exception:  # noqa: BLE001 - a broken install is as good as none
    triton = tl = None

__all__ = ["SURROGATES", "KernelNeuron", "triton_available", "lif_sequence_triton"]

SURROGATES = ("triangle", "atan", "sigmoid")
DEFAULT_ALPHA = {"atan": 2.0, "sigmoid": 4.0}  # SpikingJelly's defaults
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_BLOCK = 1024  # neurons per program: 4 KiB of float32 membrane, one warp-group's worth of loads


@dataclass(frozen=True)
class KernelNeuron:
    """The neuron as the kernels see it (dimensionless, see the module docstring).

    Attributes:
        decay: per-step membrane decay in [0, 1]; 1.0 is IF.
        v_th: threshold, > 0.
        v_reset: membrane after a spike with ``reset="hard"``.
        reset: "hard" or "subtract".
        surrogate: "triangle", "atan" or "sigmoid".
        surrogate_width: the triangle's half-width ``w`` (> 0).
        surrogate_alpha: alpha of atan / sigmoid; None is SpikingJelly's default (2 / 4).
        detach_reset: no gradient through the spike in the reset term.
    """

    decay: float = 0.5
    v_th: float = 1.0
    v_reset: float = 0.0
    reset: str = "hard"
    surrogate: str = "triangle"
    surrogate_width: float = 1.0
    surrogate_alpha: Optional[float] = None
    detach_reset: bool = False

    def __post_init__(self) -> None:
        if self.reset not in ("hard", "subtract"):
            raise UserError(f"unknown LIF reset {self.reset!r}; choose 'hard' or 'subtract'.")
        if self.surrogate not in SURROGATES:
            raise UserError(f"unknown surrogate {self.surrogate!r}; choose one of: {', '.join(SURROGATES)}.")
        if not (0.0 <= self.decay <= 1.0 and self.v_th > 0 and self.surrogate_width > 0):
            raise UserError(f"LIF parameters out of range: decay {self.decay} (in [0, 1]), v_th {self.v_th} "
                            f"(> 0), surrogate_width {self.surrogate_width} (> 0).")
        if self.surrogate_alpha is not None and not (math.isfinite(self.surrogate_alpha) and self.surrogate_alpha > 0):
            raise UserError(f"surrogate_alpha must be a positive number, got {self.surrogate_alpha!r}.")

    @property
    def alpha(self) -> float:
        """The surrogate's shape parameter: alpha for atan / sigmoid, the half-width for the triangle."""
        if self.surrogate == "triangle":
            return float(self.surrogate_width)
        return float(self.surrogate_alpha if self.surrogate_alpha is not None else DEFAULT_ALPHA[self.surrogate])

    @classmethod
    def from_params(cls, params: Any) -> "KernelNeuron":
        """From any parameter object with these attribute names (e.g. :class:`.neurons.LIFParameters`).

        Missing attributes take the defaults above; ``leak=False`` (if the object has it) means IF,
        i.e. decay 1.0.
        """
        if isinstance(params, cls):
            return params
        decay = 1.0 if getattr(params, "leak", True) is False else float(getattr(params, "decay", 0.5))
        return cls(decay=decay, v_th=float(getattr(params, "v_th", 1.0)),
                   v_reset=float(getattr(params, "v_reset", 0.0)), reset=getattr(params, "reset", "hard"),
                   surrogate=getattr(params, "surrogate", "triangle"),
                   surrogate_width=float(getattr(params, "surrogate_width", 1.0)),
                   surrogate_alpha=getattr(params, "surrogate_alpha", None),
                   detach_reset=bool(getattr(params, "detach_reset", False)))


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def triton_available(tensor: torch.Tensor) -> bool:
    """Whether :func:`lif_sequence_triton` can run on ``tensor``.

    True for float32 / bfloat16 / float16 tensors on a CUDA device when triton imports, and for
    CPU tensors when ``TRITON_INTERPRET=1`` is set (the interpreter; slow, for tests).
    """
    if tensor.dtype not in _DTYPES or triton is None:
        return False
    if tensor.device.type == "cuda":
        return True
    return tensor.device.type == "cpu" and _interpreting()


# ---------------------------------------------------------------------------------------------
# The kernels (plain functions here, jitted by _kernels()). One program owns BLOCK neurons and
# walks them through time, sequentially, as the recurrence is. Row pointers advance by adding the
# row length to a pointer (64-bit address arithmetic), so T * N may exceed 2**31.


def _lif_forward_kernel(x_ptr, v0_ptr, s_ptr, u_ptr, v_ptr, n, steps, x_stride_t,
                        decay, v_th, v_reset,
                        HAS_V0: tl.constexpr, KEEP_U: tl.constexpr, SUBTRACT: tl.constexpr,
                        BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    if HAS_V0:
        v = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        v = tl.full((BLOCK,), 0.0, tl.float32)
    xp, sp, up = x_ptr + offs, s_ptr + offs, u_ptr + offs
    for _ in range(steps):
        u = decay * v + tl.load(xp, mask=mask, other=0.0).to(tl.float32)
        fired = u > v_th
        # via float32: the interpreter cannot convert int1 to bfloat16
        tl.store(sp, tl.where(fired, 1.0, 0.0).to(s_ptr.dtype.element_ty), mask=mask)
        if KEEP_U:
            tl.store(up, u, mask=mask)
            up += n
        if SUBTRACT:
            v = tl.where(fired, u - v_th, u)
        else:
            v = tl.where(fired, v_reset, u)
        xp += x_stride_t
        sp += n
    tl.store(v_ptr + offs, v, mask=mask)


def _lif_backward_kernel(u_ptr, gs_ptr, gv_ptr, gx_ptr, n, steps, last_u, last_gs, gs_stride_t,
                         decay, v_th, v_reset, alpha,
                         HAS_GS: tl.constexpr, SUBTRACT: tl.constexpr, DETACH: tl.constexpr,
                         SURROGATE: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    g_v = tl.load(gv_ptr + offs, mask=mask, other=0.0)  # gradient w.r.t. v_T (zeros if unused)
    # the last row first: last_u = (T - 1) * N, last_gs = (T - 1) * gs_stride_t, from the host
    up, gxp, gsp = u_ptr + last_u + offs, gx_ptr + last_u + offs, gs_ptr + last_gs + offs
    for _ in range(steps):
        u = tl.load(up, mask=mask, other=0.0)
        z = u - v_th
        if SURROGATE == 0:    # triangle, half-width alpha
            sg = tl.maximum(1.0 - tl.abs(z) / alpha, 0.0) / alpha
        elif SURROGATE == 1:  # atan
            k = 1.5707963267948966 * alpha * z
            sg = (0.5 * alpha) / (1.0 + k * k)
        else:                 # sigmoid
            sig = 1.0 / (1.0 + tl.exp(-alpha * z))
            sg = alpha * sig * (1.0 - sig)
        if HAS_GS:
            g = tl.load(gsp, mask=mask, other=0.0).to(tl.float32)
        else:
            g = tl.full((BLOCK,), 0.0, tl.float32)
        if SUBTRACT:
            if DETACH:
                g_u = sg * g + g_v
            else:
                g_u = sg * (g - g_v * v_th) + g_v
        else:
            keep = tl.where(u > v_th, 0.0, g_v)  # through (1 - r): the membrane survives only without a spike
            if DETACH:
                g_u = sg * g + keep
            else:
                g_u = sg * (g + g_v * (v_reset - u)) + keep
        tl.store(gxp, g_u.to(gx_ptr.dtype.element_ty), mask=mask)
        g_v = decay * g_u
        up -= n
        gxp -= n
        gsp -= gs_stride_t
    tl.store(gv_ptr + offs, g_v, mask=mask)


@functools.lru_cache(maxsize=2)
def _kernels(interpret: bool):
    """(forward, backward) jitted for the current TRITON_INTERPRET setting (see the module docstring)."""
    assert interpret == _interpreting()
    return triton.jit(_lif_forward_kernel), triton.jit(_lif_backward_kernel)


# ---------------------------------------------------------------------------------------------
# Layouts: a time slice in memory order


def _is_dense(t: torch.Tensor) -> bool:
    """Whether ``t``'s elements fill exactly ``t.numel()`` consecutive slots (any dimension order)."""
    expected = 1
    for size, stride in sorted(((s, st) for s, st in zip(t.shape, t.stride()) if s != 1), key=lambda p: p[1]):
        if stride != expected:
            return False
        expected *= size
    return True


def _slice_layout(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``x`` (T, ...) with dense time slices (copied if they are not), and the slices' strides.

    A dense slice with non-negative strides starts at its first element's address and fills
    ``numel`` slots, so the kernel can walk it as a flat row; any time stride works (0 included).
    """
    if not _is_dense(x[0]):
        x = x.contiguous()
    return x, x[0].stride()


def _like_slice(shape: torch.Size, strides: tuple[int, ...], dtype: torch.dtype, device) -> torch.Tensor:
    return torch.empty_strided(tuple(shape), strides, dtype=dtype, device=device)


def _in_layout(t: torch.Tensor, strides: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """``t`` (..., same shape as the slice layout) converted to ``dtype`` and those strides (copy if needed)."""
    if t.dtype == dtype and t.stride() == strides:
        return t
    out = _like_slice(t.shape, strides, dtype, t.device)
    out.copy_(t)
    return out


def _grad_in_layout(g: torch.Tensor, strides: tuple[int, ...]) -> tuple[torch.Tensor, int]:
    """The spikes' gradient (T, ...) with slices in ``strides`` (copied if not), and its time stride."""
    if g[0].stride() != strides:
        g = _in_layout(g, (g[0].numel(), *strides), g.dtype)
    return g, (g.stride(0) if g.shape[0] > 1 else 0)


# ---------------------------------------------------------------------------------------------
# Launchers and the autograd node


def _forward(x: torch.Tensor, v0: Optional[torch.Tensor], neuron: KernelNeuron, keep_u: bool):
    """Spikes (T, ...) in x's layout and dtype, v_T (...) float32, and the u (T, N) float32 (or None)."""
    forward_kernel, _ = _kernels(_interpreting())
    x, strides = _slice_layout(x)
    steps, n = x.shape[0], x[0].numel()
    spikes = _like_slice(x.shape, (n, *strides), x.dtype, x.device)
    v = _like_slice(x.shape[1:], strides, torch.float32, x.device)
    u = torch.empty((steps, n) if keep_u else (1,), dtype=torch.float32, device=x.device)
    v0_in = _in_layout(v0.detach(), strides, torch.float32) if v0 is not None else v
    if n:
        forward_kernel[(_grid(n),)](
            x, v0_in, spikes, u, v, n, steps, x.stride(0) if steps > 1 else 0,
            float(neuron.decay), float(neuron.v_th), float(neuron.v_reset),
            HAS_V0=v0 is not None, KEEP_U=keep_u, SUBTRACT=neuron.reset == "subtract", BLOCK=_BLOCK)
    return spikes, v, (u if keep_u else None), strides


def _grid(n: int) -> int:
    """Programs for ``n`` neurons."""
    return (n + _BLOCK - 1) // _BLOCK


class TritonLIF(torch.autograd.Function):
    """``apply(x, v0, neuron) -> (spikes, v_T)``; the autograd node of :func:`lif_sequence_triton`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, v0: Optional[torch.Tensor], neuron: KernelNeuron):
        spikes, v, u, strides = _forward(x, v0, neuron, keep_u=True)
        ctx.save_for_backward(u)
        ctx.set_materialize_grads(False)  # v_T's gradient stays None when v_T is unused
        ctx.neuron, ctx.strides, ctx.x_shape, ctx.x_dtype = neuron, strides, x.shape, x.dtype
        ctx.v0_dtype = v0.dtype if v0 is not None else None
        return spikes, v

    @staticmethod
    def backward(ctx, grad_spikes: Optional[torch.Tensor], grad_v: Optional[torch.Tensor]):
        (u,) = ctx.saved_tensors
        neuron: KernelNeuron = ctx.neuron
        strides, steps, n = ctx.strides, u.shape[0], u.shape[1]
        _, backward_kernel = _kernels(_interpreting())
        if grad_v is None:
            g_v = _like_slice(ctx.x_shape[1:], strides, torch.float32, u.device).zero_()
        else:  # the kernel overwrites g_v with the v0 gradient: never hand it autograd's own tensor
            g_v = _in_layout(grad_v, strides, torch.float32)
            g_v = g_v.clone() if g_v is grad_v else g_v
        g_x = _like_slice(ctx.x_shape, (n, *strides), ctx.x_dtype, u.device)
        g_s, gs_stride = (_grad_in_layout(grad_spikes, strides) if grad_spikes is not None else (u, 0))
        if n:
            backward_kernel[(_grid(n),)](
                u, g_s, g_v, g_x, n, steps, (steps - 1) * n, (steps - 1) * gs_stride, gs_stride,
                float(neuron.decay), float(neuron.v_th), float(neuron.v_reset), neuron.alpha,
                HAS_GS=grad_spikes is not None, SUBTRACT=neuron.reset == "subtract",
                DETACH=neuron.detach_reset, SURROGATE=SURROGATES.index(neuron.surrogate), BLOCK=_BLOCK)
        g_v0 = g_v.to(ctx.v0_dtype) if ctx.v0_dtype is not None else None
        return g_x, g_v0, None


def lif_sequence_triton(
    x: torch.Tensor, params: Any = None, v0: Optional[torch.Tensor] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """All T steps of the LIF in one Triton kernel each way: the call of :func:`.neurons.lif_sequence`.

    Args:
        x: (T, ...) input currents, time-major; float32, bfloat16 or float16, on a device where
            :func:`triton_available` holds. Constant in time (stride 0 along T) is read in place.
        params: a :class:`KernelNeuron`, or any object with its attribute names
            (:class:`.neurons.LIFParameters`); None is the default neuron.
        v0: (...) initial membrane; None is 0.

    Returns:
        ``(spikes (T, ...), v_T (...))``: binary spikes in ``x``'s dtype and layout, and the final
        post-reset membrane in float32. Gradients flow to ``x`` and ``v0`` through the surrogate;
        without autograd the membranes are not kept.
    """
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"LIF input must be time-major (T, ...) with T >= 1, got {tuple(x.shape)}")
    if not triton_available(x):
        raise ValueError(f"the Triton LIF needs a float32/bfloat16/float16 CUDA tensor (or TRITON_INTERPRET=1 "
                         f"on CPU), got {x.dtype} on {x.device}")
    if v0 is not None and v0.shape != x.shape[1:]:
        raise ValueError(f"v0 must have shape {tuple(x.shape[1:])}, got {tuple(v0.shape)}")
    neuron = KernelNeuron.from_params(params) if params is not None else KernelNeuron()
    needs_grad = x.requires_grad or (v0 is not None and v0.requires_grad)
    if not (torch.is_grad_enabled() and needs_grad):
        spikes, v, _, _ = _forward(x, v0, neuron, keep_u=False)
        return spikes, v
    return TritonLIF.apply(x, v0, neuron)
