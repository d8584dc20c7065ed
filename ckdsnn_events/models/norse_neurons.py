"""The ``norse`` neuron backend: each spiking layer stepped over T by Norse's own neuron step.

:class:`NorseLIF` is the layer of :class:`.neurons.LIF` (same parameters, same results up to
rounding, tested) whose dynamics Norse computes: every time step is one call of
``norse.torch.functional.lif_box.lif_box_feed_forward_step`` (LIF) or
``norse.torch.functional.iaf.iaf_feed_forward_step`` (IF: no leak), with Norse's ``threshold``
(its surrogate) and, for the boxed LIF, Norse's ``reset_value``/``reset_subtract``.

Parameter mapping. Norse's boxed LIF integrates ``v + dt * tau_mem_inv * (i + v_leak - v)``; its
IAF ``v + i``; both fire at ``threshold(v - v_th, method, alpha)`` and reset to ``v_reset``
(``reset_value``: ``(1 - z) v + z v_reset``) or, the boxed LIF only, by ``reset_subtract``
(``(1 - z) v + z (v - v_th)``). Our neuron with membrane ``v`` is Norse's with membrane
``v' = v / c``, where ``c`` turns one of Norse's surrogates into ours:

=====================  ================================================================
ours                   Norse
=====================  ================================================================
decay < 1 (LIF)        LIFBox, ``dt = 1``, ``tau_mem_inv = 1 - decay``, ``v_leak = 0``,
                       input ``i = x / ((1 - decay) c)``
decay = 1 (IF)         IAF, input ``i = x / c`` (LIFBox with ``tau_mem_inv = 0`` ignores input)
v_th, v_reset          ``v_th / c``, ``v_reset / c``
triangle, width w      ``method="triangle", alpha=1``, ``c = w``: Norse's ``relu(1 - |z'|)``
                       at ``z' = z / w`` is ``w`` times ours, and ``dz'/dz = 1 / w``
sigmoid, alpha a       ``method="tanh", alpha=2``, ``c = 4 / a``: Norse's ``1 - tanh(2 z')^2``
                       = ``4 sigmoid(a z)(1 - sigmoid(a z))`` at ``z' = a z / 4``, and
                       ``dz'/dz = a / 4``
reset hard / subtract  ``reset_method=reset_value`` / ``reset_subtract``
detach_reset           ``reset_method`` called with the spike detached (a two-line wrapper
                       around Norse's reset; SpikingJelly's ``spike_d = spike.detach()``)
=====================  ================================================================

What Norse lacks (:func:`check_norse_supports` raises a UserError naming it): an arctangent
surrogate (``threshold`` knows heaviside, super, triangle, tanh, circ, heavi_erfc; none has
SpikingJelly's ATan shape), and a reset method for the IAF neuron (``iaf_feed_forward_step``
always resets to ``v_reset``), so no IF neuron with ``reset="subtract"`` or ``detach_reset``.

Cost: Norse's step is a few torch operations per time step, each one an autograd node that
keeps its tensors for the backward pass; ``benchmarks/bench_student_step.py`` measured a
ResNet-20 training step (T=10, B=32, 2x48x48, CPU) 5.0-5.5x as long as with the ``fused``
backend, and twice its peak memory, so ``fused`` is the default.
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch

# Norse 1.1.0 decorates its functions with torch.jit.script, which torch 2.14 deprecates: a
# FutureWarning on every start of the CLI that no user of ours can act on. Only that message.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

from norse.torch.functional.iaf import IAFFeedForwardState, IAFParameters, iaf_feed_forward_step
from norse.torch.functional.lif_box import LIFBoxFeedForwardState, LIFBoxParameters, lif_box_feed_forward_step
from norse.torch.functional.reset import reset_subtract, reset_value

from ckdsnn_events.errors import UserError
from ckdsnn_events.models.neuron_params import LIFParameters
from ckdsnn_events.models.neurons import LIF, compute_dtype

__all__ = ["NORSE_DT", "NorseLIF", "check_norse_supports", "norse_lif_sequence", "norse_parameters"]

NORSE_DT = 1.0  # one time step of the students is one Euler step of Norse with dt = 1


def _reset_value_detached(z: torch.Tensor, v: torch.Tensor, reset: torch.Tensor, th: torch.Tensor) -> torch.Tensor:
    return reset_value(z.detach(), v, reset, th)


def _reset_subtract_detached(z: torch.Tensor, v: torch.Tensor, reset: torch.Tensor, th: torch.Tensor) -> torch.Tensor:
    return reset_subtract(z.detach(), v, reset, th)


_RESET_METHODS = {("hard", False): reset_value, ("subtract", False): reset_subtract,
                  ("hard", True): _reset_value_detached, ("subtract", True): _reset_subtract_detached}


def check_norse_supports(p: LIFParameters) -> None:
    """Raise UserError if Norse has no piece for one of ``p``'s options (see the module docstring)."""
    if p.surrogate == "atan":
        raise UserError("neuron_backend 'norse' cannot run surrogate 'atan': Norse has no arctangent surrogate "
                        "(norse.torch.functional.threshold knows heaviside, super, triangle, tanh, circ, "
                        "heavi_erfc). Use surrogate 'triangle' or 'sigmoid', or neuron_backend 'fused'.")
    if p.decay == 1.0 and (p.reset != "hard" or p.detach_reset):
        option = "reset 'subtract'" if p.reset != "hard" else "detach_reset"
        raise UserError(f"neuron_backend 'norse' cannot run an IF neuron with {option}: Norse's IAF step "
                        "(iaf_feed_forward_step) always resets to v_reset through the spike. Use reset 'hard' "
                        "without detach_reset, a leak (neuron 'lif', decay < 1), or neuron_backend 'fused'.")


def norse_parameters(p: LIFParameters) -> tuple[tuple, float, float]:
    """Norse's parameters for ``p``: ``(LIFBoxParameters | IAFParameters, input gain, membrane scale c)``.

    Norse's step is fed ``x * gain`` and its membrane is ours divided by ``c`` (module docstring).
    """
    check_norse_supports(p)
    if p.surrogate == "triangle":
        method, alpha, c = "triangle", 1.0, p.surrogate_width
    else:  # sigmoid
        method, alpha, c = "tanh", 2.0, 4.0 / p.surrogate_alpha
    if p.decay == 1.0:
        return IAFParameters(v_th=p.v_th / c, v_reset=p.v_reset / c, method=method, alpha=alpha), 1.0 / c, c
    leak = 1.0 - p.decay
    params = LIFBoxParameters(tau_mem_inv=leak / NORSE_DT, v_leak=0.0, v_th=p.v_th / c, v_reset=p.v_reset / c,
                              method=method, alpha=alpha, reset_method=_RESET_METHODS[p.reset, p.detach_reset])
    return params, 1.0 / (leak * c), c


def norse_lif_sequence(
    x: torch.Tensor, params: LIFParameters = LIFParameters(), v0: Optional[torch.Tensor] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """All T steps of the neuron, one Norse step each; the signature of :func:`.neurons.lif_sequence`.

    Args:
        x: (T, ...) input currents, time-major, floating point.
        params: neuron parameters (UserError for options Norse lacks).
        v0: (...) initial membrane in our units; None is 0.

    Returns:
        ``(spikes (T, ...), v_T (...))``: spikes in ``x``'s dtype, final post-reset membrane in
        our units (float32 for half-precision inputs, which are integrated in float32 as the
        fused backend does). Gradients flow to ``x`` and ``v0`` through Norse's surrogate.
    """
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"LIF input must be time-major (T, ...) with T >= 1, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"LIF input must be floating point, got {x.dtype}")
    norse_p, gain, scale = norse_parameters(params)
    xs = x.to(compute_dtype(x.dtype))
    v = torch.zeros_like(xs[0]) if v0 is None else v0.to(xs.dtype) / scale
    if isinstance(norse_p, IAFParameters):
        step, state = iaf_feed_forward_step, IAFFeedForwardState(v=v)
    else:
        step, state = lif_box_feed_forward_step, LIFBoxFeedForwardState(v=v)
    spikes = []
    for t in range(xs.shape[0]):
        z, state = step(xs[t] * gain if gain != 1.0 else xs[t], state, norse_p, dt=NORSE_DT)
        spikes.append(z)
    v_out = state.v * scale if scale != 1.0 else state.v
    return torch.stack(spikes).to(x.dtype), v_out


class NorseLIF(LIF):
    """A :class:`.neurons.LIF` layer whose dynamics Norse runs (see the module docstring).

    Raises UserError on construction for options Norse lacks.
    """

    backend = "norse"

    def __init__(self, params: LIFParameters = LIFParameters()):
        super().__init__(params)
        check_norse_supports(params)

    def sequence(self, x: torch.Tensor, v0: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(spikes (T, ...), v_T (...))`` from currents x (T, ...) by Norse's step; see :func:`norse_lif_sequence`."""
        return norse_lif_sequence(x, self.params, v0)
