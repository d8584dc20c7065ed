"""Naming the neuron modules of a network, whatever backend built them, and recording their spikes.

A student's spike record and the energy counter key every neuron layer by its module name
(``spike_key``). Architectures build their neurons through a factory (the neuron backend), so they
find them by identity: :func:`tracking` wraps the factory and remembers what it built,
:func:`name_neurons` then names those modules in forward (registration) order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Optional

import torch
from torch import nn

__all__ = ["SpikeRecord", "fire", "tracking", "name_neurons"]

# what a student's forward(..., return_spikes=True) fills: spike_key -> (T, B, ...) output
SpikeRecord = Optional["OrderedDict[str, torch.Tensor]"]


def fire(neuron: nn.Module, current: torch.Tensor, record: SpikeRecord) -> torch.Tensor:
    """Output of ``neuron`` (spikes, or a last block's ReLU) for (T, B, ...) ``current``; kept in
    ``record`` under the module's ``spike_key``."""
    spikes = neuron(current)
    if record is not None:
        record[neuron.spike_key] = spikes
    return spikes


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
