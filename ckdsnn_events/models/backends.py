"""One way to build a spiking layer: neuron options -> parameters, parameters + backend -> module.

::

    from ckdsnn_events.models.backends import make_neuron, neuron_parameters
    p = neuron_parameters(neuron="lif", decay=0.5, surrogate="sigmoid")   # SpikingJelly's alpha 4.0
    layer = make_neuron(p, backend="norse")       # (T, B, ...) currents -> (T, B, ...) spikes
    student = use_neuron_backend(student, "norse")  # every spiking layer of a built model

Backends (:data:`NEURON_BACKENDS`):

- ``"fused"``: :class:`.neurons.LIF`, all T steps in one autograd node (numba kernels on CPU,
  a loop of torch operations elsewhere). The default: faster than Norse in
  ``benchmarks/bench_student_step.py`` (figures in the README).
- ``"norse"``: :class:`.norse_neurons.NorseLIF`, one call of Norse's own neuron step
  (``lif_box_feed_forward_step`` / ``iaf_feed_forward_step``) per time step.

Both are :class:`.neurons.LIF` instances with the same parameters and call signature, so code
that finds spiking layers by ``isinstance(module, LIF)`` (energy counter, firing-rate meter,
spike records) treats them alike.
"""

from __future__ import annotations

from typing import Optional

from torch import nn

from ckdsnn_events.errors import UserError
from ckdsnn_events.models.neuron_params import LIFParameters
from ckdsnn_events.models.neurons import LIF
from ckdsnn_events.models.norse_neurons import NorseLIF, check_norse_supports

__all__ = ["NEURON_BACKENDS", "NEURON_OPTIONS", "check_backend", "make_neuron", "neuron_options", "neuron_parameters",
           "use_neuron_backend"]

NEURON_BACKENDS = ("fused", "norse")
# the keyword arguments of neuron_parameters a config section may carry under the same names
NEURON_OPTIONS = ("neuron", "decay", "threshold", "reset", "surrogate", "surrogate_width", "surrogate_alpha",
                  "detach_reset", "v_reset")


def check_backend(backend: str, key: str = "neuron_backend") -> str:
    """``backend`` if it is one of :data:`NEURON_BACKENDS`, else a UserError naming ``key`` and the choices."""
    if backend not in NEURON_BACKENDS:
        raise UserError(f"unknown {key} {backend!r}; choose one of: {', '.join(map(repr, NEURON_BACKENDS))}.")
    return backend


def make_neuron(params: LIFParameters = LIFParameters(), backend: str = "fused") -> LIF:
    """A spiking layer: time-major currents (T, B, ...) -> spikes (T, B, ...) in the input's dtype.

    Args:
        params: the neuron (:class:`.neuron_params.LIFParameters`).
        backend: "fused" or "norse"; UserError for another name, or for an option the backend lacks.
    """
    if check_backend(backend) == "fused":
        return LIF(params)
    return NorseLIF(params)


def use_neuron_backend(model: nn.Module, backend: str) -> nn.Module:
    """Replace every spiking layer of ``model`` by one of ``backend`` with the same parameters, in place.

    Attributes a model set on its layers (``spike_key``) are carried over. Returns ``model``.
    Call it before registering hooks on the layers (hooks stay with the replaced modules).
    """
    check_backend(backend)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LIF) and child.backend != backend:
                layer = make_neuron(child.params, backend)
                if hasattr(child, "spike_key"):
                    layer.spike_key = child.spike_key
                setattr(parent, name, layer)
    return model


def neuron_parameters(
    neuron: str = "lif",
    decay: float = 0.5,
    threshold: float = 1.0,
    reset: str = "hard",
    surrogate: str = "triangle",
    surrogate_width: float = 1.0,
    surrogate_alpha: Optional[float] = None,
    detach_reset: bool = False,
    v_reset: float = 0.0,
    backend: str = "fused",
    where: str = "model",
) -> LIFParameters:
    """The neuron of a run's options (the keys of the ``[model]`` config section), checked for ``backend``.

    Args:
        neuron: "lif" or "if" (IF: no leak, ``decay`` ignored).
        decay, threshold, reset, v_reset: see :class:`.neuron_params.LIFParameters` (``threshold``
            is its ``v_th``).
        surrogate, surrogate_width, surrogate_alpha, detach_reset: likewise.
        backend: the neuron backend that will run it: options it lacks are an error here, before
            any model is built.
        where: the config section, named in error messages (``"model: ..."``).

    Raises:
        UserError: a bad value, naming the option and its valid values or range.
    """
    try:
        check_backend(backend)
        params = LIFParameters(decay=decay, v_th=threshold, v_reset=v_reset, reset=reset,
                               surrogate_width=surrogate_width, neuron=neuron, surrogate=surrogate,
                               surrogate_alpha=surrogate_alpha, detach_reset=detach_reset)
        if backend == "norse":
            check_norse_supports(params)
    except UserError as err:
        raise UserError(f"{where}: {err}") from None
    return params


def neuron_options(section: object, where: str = "model") -> tuple[LIFParameters, str]:
    """``(neuron parameters, backend)`` from a config section's attributes (e.g. the run's ``ModelConfig``).

    Reads ``neuron_backend`` (default "fused") and those of :data:`NEURON_OPTIONS` that
    ``section`` has; the rest take :func:`neuron_parameters`'s defaults. UserError as there,
    naming ``where``. The student of a run is
    ``build_student(..., neuron=params, neuron_backend=backend)``.
    """
    options = {name: getattr(section, name) for name in NEURON_OPTIONS if hasattr(section, name)}
    backend = getattr(section, "neuron_backend", "fused")
    return neuron_parameters(**options, backend=backend, where=where), backend
