"""Options of the spiking neurons: one frozen parameter object, and the surrogate gradients.

Every spiking layer of every student is one of these neurons (per element, step ``t = 1..T``,
membrane ``v_0 = 0``, dimensionless: inputs and membrane share one unit)::

    u_t = decay * v_{t-1} + x_t                 # charge; neuron="if": decay = 1 (no leak)
    s_t = H(u_t - v_th)                         # fire, H(z) = 1 if z > 0 else 0
    v_t = u_t * (1 - s'_t) + v_reset * s'_t     # reset="hard": back to v_reset
    v_t = u_t - s'_t * v_th                     # reset="subtract": keep the overshoot

where ``s'_t = s_t`` in the forward pass, and in the backward pass ``s'_t`` is ``s_t`` detached
from the graph when ``detach_reset`` (SpikingJelly's ``BaseNode.neuronal_reset``:
``spike_d = spike.detach() if self.detach_reset else spike``, github.com/fangwei123456/spikingjelly,
``spikingjelly/activation_based/neuron.py``), so the reset passes no gradient through the spike.

``H`` has no useful derivative; the backward pass uses a surrogate ``dS/du = g(u - v_th)``:

==========  ===============================================  =========================================
surrogate   g(z)                                             source
==========  ===============================================  =========================================
triangle    max(0, 1 - |z| / w) / w,  w = surrogate_width    TET's ``ZIF`` (gama = w), CKDSNN's code;
            (peak 1/w, area 1)                               Norse's ``Triangle`` for w = 1
atan        (a / 2) / (1 + (pi / 2 * a * z)^2),  a = 2.0     SpikingJelly ``surrogate.ATan`` (alpha=2.0):
                                                             ``atan_backward``; SEW-ResNet's default
sigmoid     a * sigmoid(a z) * (1 - sigmoid(a z)),  a = 4.0  SpikingJelly ``surrogate.Sigmoid``
                                                             (alpha=4.0): ``sigmoid_backward``; the
                                                             default of its ``LIFNode``
==========  ===============================================  =========================================

(``a = surrogate_alpha``; SpikingJelly ``activation_based/surrogate.py``.) One difference from
SpikingJelly's forward: its ``heaviside`` fires at ``z >= 0``, ours (and Norse's) at ``z > 0``;
the two differ only when a membrane lands exactly on the threshold.

The same dynamics in SpikingJelly's terms: ``LIFNode(tau=1 / (1 - decay), decay_input=False,
v_reset=0.0 | None)`` (``H = V (1 - 1/tau) + X``; None is the subtract reset; its leak pulls
towards ``v_reset``, ours towards 0, so the two agree for ``v_reset = 0``) and ``IFNode``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from ckdsnn_events.errors import UserError

__all__ = ["NEURONS", "RESETS", "SURROGATES", "SURROGATE_ALPHA", "LIFParameters", "NeuronParameters",
           "surrogate_grad", "spike_fn", "triangle_spike"]

NEURONS = ("lif", "if")
RESETS = ("hard", "subtract")
SURROGATES = ("triangle", "atan", "sigmoid")
# SpikingJelly's defaults: ATan(alpha=2.0), Sigmoid(alpha=4.0); the triangle uses surrogate_width
SURROGATE_ALPHA = {"atan": 2.0, "sigmoid": 4.0}


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(repr(v) for v in values)


@dataclass(frozen=True)
class LIFParameters:
    """Parameters of every spiking neuron (see the module docstring for the dynamics).

    Attributes:
        decay: membrane decay per time step, in [0, 1] (0.5 as in CKDSNN; 1 is a non-leaky IF).
        v_th: firing threshold, > 0.
        v_reset: membrane after a spike with ``reset="hard"``; must be below ``v_th``.
        reset: "hard" (to ``v_reset``) or "subtract" (``v - v_th``).
        surrogate_width: half-width ``w`` of the triangle surrogate, > 0 (used by "triangle").
        neuron: "lif" (leak ``decay``) or "if" (no leak: ``decay`` is set to 1).
        surrogate: "triangle", "atan" or "sigmoid".
        surrogate_alpha: ``a`` of "atan"/"sigmoid", > 0; None takes SpikingJelly's default (2.0,
            4.0), which is stored in its place. Must stay None for "triangle" (it has a width).
        detach_reset: the reset term uses the spike detached from the graph (SpikingJelly).

    Invalid values raise :class:`~ckdsnn_events.errors.UserError` on construction. The first five
    fields keep their names and meaning from before the other options existed, so neurons stored
    as ``dataclasses.asdict`` in old checkpoints load unchanged.
    """

    decay: float = 0.5
    v_th: float = 1.0
    v_reset: float = 0.0
    reset: str = "hard"
    surrogate_width: float = 1.0
    neuron: str = "lif"
    surrogate: str = "triangle"
    surrogate_alpha: Optional[float] = None
    detach_reset: bool = False

    def __post_init__(self) -> None:
        for name, choices in (("neuron", NEURONS), ("reset", RESETS), ("surrogate", SURROGATES)):
            if getattr(self, name) not in choices:
                raise UserError(f"unknown neuron option {name}={getattr(self, name)!r}; choose one of: "
                                f"{_choices(choices)}.")
        if not isinstance(self.detach_reset, bool):
            raise UserError(f"neuron detach_reset must be true or false, got {self.detach_reset!r}.")
        if self.neuron == "if":
            object.__setattr__(self, "decay", 1.0)  # IF = no leak; normalised so equal neurons compare equal
        if self.surrogate == "triangle":
            if self.surrogate_alpha is not None:
                raise UserError("surrogate_alpha is for the 'atan' and 'sigmoid' surrogates; the triangle's "
                                "shape is set by surrogate_width.")
        elif self.surrogate_alpha is None:
            object.__setattr__(self, "surrogate_alpha", SURROGATE_ALPHA[self.surrogate])
        names = ("decay", "v_th", "v_reset", "surrogate_width") + (() if self.surrogate_alpha is None
                                                                     else ("surrogate_alpha",))
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UserError(f"LIF {name} must be a finite number, got {value!r}.")
        if not 0.0 <= self.decay <= 1.0:
            raise UserError(f"LIF decay must be in [0, 1] (got {self.decay!r}); CKDSNN uses 0.5.")
        if not self.v_th > 0:
            raise UserError(f"LIF threshold v_th must be > 0 (got {self.v_th!r}); CKDSNN uses 1.0.")
        if not self.surrogate_width > 0:
            raise UserError(f"LIF surrogate_width must be > 0 (got {self.surrogate_width!r}); CKDSNN uses 1.0.")
        if self.surrogate_alpha is not None and not self.surrogate_alpha > 0:
            raise UserError(f"surrogate_alpha must be > 0 (got {self.surrogate_alpha!r}); SpikingJelly uses "
                            f"{SURROGATE_ALPHA[self.surrogate]} for {self.surrogate!r}.")
        if not self.v_reset < self.v_th:
            raise UserError(f"LIF v_reset ({self.v_reset!r}) must be below the threshold v_th ({self.v_th!r}).")

    @property
    def surrogate_shape(self) -> float:
        """The one number of the surrogate: ``surrogate_width`` (triangle) or ``surrogate_alpha``."""
        return self.surrogate_width if self.surrogate == "triangle" else float(self.surrogate_alpha)


NeuronParameters = LIFParameters  # the name for code that builds IF neurons too


def surrogate_grad(z: torch.Tensor, p: LIFParameters) -> torch.Tensor:
    """The surrogate ``g(z) = dS/du`` of the table above at ``z = u - v_th`` (same shape and dtype)."""
    a = p.surrogate_shape
    if p.surrogate == "triangle":
        return torch.clamp(1 - z.abs() / a, min=0) / a
    if p.surrogate == "atan":
        return (a / 2) / (1 + (math.pi / 2 * a * z) ** 2)
    sg = torch.sigmoid(a * z)
    return a * sg * (1 - sg)


class _SurrogateSpike(torch.autograd.Function):
    """``H(z)`` forward, ``g(z)`` of the neuron's surrogate backward."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, p: LIFParameters) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.p = p
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (z,) = ctx.saved_tensors
        return grad * surrogate_grad(z, ctx.p), None


def spike_fn(z: torch.Tensor, p: LIFParameters) -> torch.Tensor:
    """Heaviside ``z > 0`` (in ``z``'s dtype) with the surrogate gradient of ``p``."""
    return _SurrogateSpike.apply(z, p)


def triangle_spike(z: torch.Tensor, width: float = 1.0) -> torch.Tensor:
    """Heaviside ``z > 0`` (same dtype as ``z``) with the triangle surrogate gradient of half-width ``width``."""
    return spike_fn(z, LIFParameters(surrogate_width=width))
