"""Our discrete LIF/IF neuron as NIR's continuous ``nir.LIF`` / ``nir.IF``, and back.

NIR defines neurons in continuous time (``nir`` 1.0.8, ``nir/ir/neuron.py``)::

    LIF:  tau dv/dt = (v_leak - v) + r I,   spike z = [v > v_threshold],  then v <- v_reset
    IF:       dv/dt = r I,                  spike z = [v > v_threshold],  then v <- v_reset

A simulator with time step ``dt`` (forward Euler, as Norse's ``lif_box_feed_forward_step`` and
snnTorch's ``Leaky`` integrate it) computes, per step::

    LIF:  v <- v + (dt / tau) * (v_leak - v + r I)  =  (1 - dt/tau) v + (dt/tau) r I   (v_leak = 0)
    IF:   v <- v + dt r I

Ours (:mod:`ckdsnn_events.models.neurons`): ``u = decay * v + x``, spike ``u > v_th``, hard
reset to ``v_reset``. The mapping, for a chosen ``dt`` (seconds; default 1 ms, Norse's default):

==========  =======================  ===========================================================
NIR field   LIF (decay < 1)          IF (decay = 1)
==========  =======================  ===========================================================
tau         dt / (1 - decay)         (none)
r           1                        1 / dt
v_leak      0                        (none)
v_threshold (1 - decay) * v_th       v_th
v_reset     (1 - decay) * v_reset    v_reset
==========  =======================  ===========================================================

Why the LIF membrane is rescaled: with ``a = dt / tau = 1 - decay`` the NIR step is
``v' <- (1 - a) v' + a I``; multiplying our membrane by ``a`` (``v' = a v``) turns ours into
exactly that with ``I = x``, so ``r = 1`` and the synaptic weights stay as trained. The
alternative, ``r = 1 / (1 - decay)`` with the membrane unscaled, is the same NIR model, but
Norse's ``from_nir`` ignores ``r`` (it warns and drops it), so that file would run wrong there.
For decay = 0.5 the factor is 0.5, a power of two: thresholds and membranes scale exactly.
For IF, ``r = 1 / dt`` makes ``dt r = 1`` (``v <- v + I``), which is what Norse's ``IAFCell``
computes whatever ``r`` and ``dt`` are.

Not expressible: ``reset="subtract"`` (NIR's neurons reset to ``v_reset``; there is no
subtractive reset primitive) and any neuron option this module does not know.
"""

from __future__ import annotations

from dataclasses import fields

import nir
import numpy as np

from ckdsnn_events.errors import UserError

__all__ = ["DEFAULT_DT", "check_dt", "neuron_node", "neuron_parameters"]

DEFAULT_DT = 1e-3  # seconds: Norse's from_nir default, so the file loads there without a dt argument

# LIFParameters fields and whether the forward pass (what NIR carries) depends on them. Any field
# not listed is an option added after this exporter was written: refuse rather than guess.
# ("neuron" = "if" sets decay = 1, which is what is mapped.)
_MAPPED = {"decay", "v_th", "v_reset", "reset", "neuron"}
_TRAINING_ONLY = {"surrogate_width", "surrogate", "surrogate_alpha", "detach_reset"}


def check_dt(dt: float) -> float:
    """``dt`` as a float, or UserError unless it is a finite number > 0 (seconds)."""
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not np.isfinite(dt) or dt <= 0:
        raise UserError(f"--dt must be a positive number of seconds (got {dt!r}); the default is {DEFAULT_DT}.")
    return float(dt)


def neuron_node(layer: str, params, shape: tuple[int, ...], dt: float = DEFAULT_DT) -> nir.NIRNode:
    """The NIR neuron node of a layer of our LIF neurons (see the table in the module docstring).

    Args:
        layer: the layer's module name (for error messages).
        params: its :class:`~ckdsnn_events.models.neurons.LIFParameters`.
        shape: neurons of one sample, e.g. (C, H, W).
        dt: simulation time step, seconds.

    Raises:
        UserError: for a subtractive reset or a neuron option the exporter does not know.
    """
    dt = check_dt(dt)
    unknown = sorted({f.name for f in fields(params)} - _MAPPED - _TRAINING_ONLY)
    if unknown:
        raise UserError(f"layer '{layer}': NIR export does not know the neuron option(s) {', '.join(unknown)}; "
                        "export a student trained with the default neuron options.")
    if params.reset != "hard":
        raise UserError(f"layer '{layer}': NIR neurons reset to v_reset, they have no {params.reset!r} reset; "
                        "train with model.reset=hard to export.")
    ones = np.ones(shape, dtype=np.float32)
    if params.decay >= 1.0:
        return nir.IF(r=ones / np.float32(dt), v_threshold=ones * np.float32(params.v_th),
                      v_reset=ones * np.float32(params.v_reset))
    a = 1.0 - params.decay
    return nir.LIF(tau=ones * np.float32(dt / a), r=ones.copy(), v_leak=np.zeros_like(ones),
                   v_threshold=ones * np.float32(a * params.v_th), v_reset=ones * np.float32(a * params.v_reset))


def neuron_parameters(node: nir.NIRNode, dt: float = DEFAULT_DT) -> dict[str, float]:
    """The inverse of :func:`neuron_node`: ``decay``, ``v_th``, ``v_reset`` of a uniform NIR neuron.

    Used by the tests to check that the mapping is invertible; raises ValueError for a node that
    is not uniform over its neurons or has ``v_leak != 0`` / ``r != 1`` (LIF).
    """
    def one(a: np.ndarray) -> float:
        a = np.asarray(a, dtype=np.float64)
        if not np.allclose(a, a.flat[0]):
            raise ValueError("parameters differ between neurons")
        return float(a.flat[0])

    if isinstance(node, nir.IF):
        if not np.isclose(one(node.r) * dt, 1.0):
            raise ValueError(f"IF with r*dt = {one(node.r) * dt}, expected 1")
        return {"decay": 1.0, "v_th": one(node.v_threshold), "v_reset": one(node.v_reset)}
    if isinstance(node, nir.LIF):
        if one(node.v_leak) != 0.0 or one(node.r) != 1.0:
            raise ValueError("LIF with v_leak != 0 or r != 1")
        a = dt / one(node.tau)
        return {"decay": 1.0 - a, "v_th": one(node.v_threshold) / a, "v_reset": one(node.v_reset) / a}
    raise ValueError(f"not a neuron node: {type(node).__name__}")
