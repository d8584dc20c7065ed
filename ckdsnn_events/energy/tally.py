"""Hook bookkeeping of the counter: what the forward hooks accumulate between reports.

Private to :mod:`ckdsnn_events.energy.counting`: one tally per Conv/Linear layer (grouped by input
shape and path), one per neuron module, and the record an average pool leaves for the Linear that
consumes its output. Sums stay tensors on the input's device, so counting does not synchronise
with the host until the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ckdsnn_events.errors import UserError

NeuronSelector = type | tuple[type, ...] | Callable[[nn.Module], bool]


@dataclass
class CallGroup:
    """Calls of one layer with one input shape and one path (direct or through a pool)."""

    kind: str  # "spikes" (direct) or "pooled-spikes"
    step_shape: tuple[int, ...]
    rows: int  # input rows per call (samples x steps in the call)
    elements: int  # elements of the (spike) input per call
    dense_macs: int  # MACs of a call counted as real-valued
    dense_sops: int  # accumulates of a call if every input element were a spike
    calls: int = 0
    binary_calls: torch.Tensor | None = None  # 0-d float64 on the input's device


@dataclass
class LayerTally:
    name: str
    module: nn.Module
    groups: dict = field(default_factory=dict)
    sums: torch.Tensor | None = None  # float64 (2,): input spikes, SOPs over binary calls
    coverage: dict = field(default_factory=dict)

    def group(self, key, make: Callable[[], CallGroup]) -> CallGroup:
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = make()
        return group

    def add(self, group: CallGroup, binary: torch.Tensor, spikes: torch.Tensor, sops: torch.Tensor) -> None:
        group.calls += 1
        binary = binary.to(spikes.device)
        if group.binary_calls is None:
            group.binary_calls = torch.zeros((), dtype=torch.float64, device=spikes.device)
            if self.sums is None:
                self.sums = torch.zeros(2, dtype=torch.float64, device=spikes.device)
        # Out of place, so that counting may switch between no_grad and inference_mode. And
        # where, not multiply: a non-binary input may hold inf/NaN.
        group.binary_calls = group.binary_calls + binary
        self.sums = self.sums + torch.where(binary, torch.stack([spikes, sops]), 0.0)


@dataclass
class NeuronTally:
    module: nn.Module
    spikes: torch.Tensor | None = None  # 0-d float64
    elements: int = 0


@dataclass
class PooledSpikes:
    """What an average pool saw, kept until the Linear that consumes its output asks."""

    storage: torch.UntypedStorage  # held so that the address cannot be reused meanwhile
    data_ptr: int
    numel: int
    version: int | None  # None for inference tensors, which have no version counter
    values: torch.Tensor | None  # a copy of the output, for inference tensors only
    input_shape: tuple[int, ...]
    covered_elements: int
    binary: torch.Tensor
    spikes: torch.Tensor
    covered_spikes: torch.Tensor


def first_tensor(args: tuple, kwargs: dict) -> torch.Tensor | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value
        if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
            return value[0]
    return None


def neuron_predicate(neurons: NeuronSelector | None) -> Callable[[nn.Module], bool] | None:
    if neurons is None:
        return None
    if isinstance(neurons, type) or (isinstance(neurons, tuple) and all(isinstance(t, type) for t in neurons)):
        return lambda module: isinstance(module, neurons)
    if callable(neurons):
        return neurons
    raise UserError(
        f"neurons must be a module class, a tuple of classes or a predicate(module) -> bool, got {neurons!r}"
    )

