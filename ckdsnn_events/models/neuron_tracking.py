"""Naming the neuron modules of a network, whatever backend built them.

A student's spike record and the energy counter key every neuron layer by its module name
(``spike_key``). Architectures build their neurons through a factory (the neuron backend), so they
find them by identity: :func:`tracking` wraps the factory and remembers what it built,
:func:`name_neurons` then names those modules in forward (registration) order.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

__all__ = ["tracking", "name_neurons"]


def tracking(make_neuron: Callable[..., nn.Module]) -> tuple[Callable[..., nn.Module], list[nn.Module]]:
    """``(factory, built)``: the same factory, appending every module it returns to ``built``."""
    built: list[nn.Module] = []

    def make(*args, **kwargs) -> nn.Module:
        module = make_neuron(*args, **kwargs)
        built.append(module)
        return module

    return make, built


def name_neurons(model: nn.Module, built: list[nn.Module]) -> tuple[str, ...]:
    """Set ``spike_key`` (a plain attribute, not state) on each module of ``built``; their names in order."""
    ids = {id(m) for m in built}
    names = []
    for name, module in model.named_modules():
        if id(module) in ids:
            module.spike_key = name
            names.append(name)
    return tuple(names)
