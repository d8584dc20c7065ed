"""The energy report's types: per-layer and per-neuron counts, their totals, and their JSON.

:class:`EnergyReport` is what :class:`~ckdsnn_events.energy.counting.SynapticOpCounter` returns;
everything in it is per sample (one inference of one sample over all T steps).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace

from ckdsnn_events.energy.presets import EnergyCosts, energy_costs


@dataclass(frozen=True)
class LayerCount:
    """Counts of one Conv/Linear layer, per sample (one inference over all T steps).

    Attributes:
        name: qualified module name, as in ``model.named_modules()``.
        type: module class name.
        input_kind: ``"spikes"`` (binary input: SOPs), ``"pooled-spikes"`` (a Linear after an
            average pool of spikes, pool folded in: SOPs), ``"real"`` (MACs) or ``"mixed"``
            (some calls of each).
        input_shape: the input of one sample at one step, e.g. (C, H, W) or (in_features,);
            for ``"pooled-spikes"`` the pool's input (C, H, W), whose spikes are counted.
        calls: forward calls counted.
        steps_per_sample: input rows per sample: T when the layer runs on every step, 1 when it
            ran once on a constant-in-time input.
        input_firing_rate: spikes per input element over the binary calls; None if none.
        input_spikes: input spikes per sample over the binary calls; None if none.
        dense_ops: every synapse of every call once, per sample (the approximation's base).
        sops: exact accumulates per sample.
        macs: multiply-accumulates per sample (real-valued calls).
        approx_sops: ``input_firing_rate * dense_ops`` of the binary calls, per sample.
        energy_pj: ``E_AC * sops + E_MAC * macs``.
        approx_energy_pj: ``E_AC * approx_sops + E_MAC * macs``.
    """

    name: str
    type: str
    input_kind: str
    input_shape: tuple[int, ...]
    calls: int
    steps_per_sample: float
    input_firing_rate: float | None
    input_spikes: float | None
    dense_ops: float
    sops: float
    macs: float
    approx_sops: float
    energy_pj: float
    approx_energy_pj: float


@dataclass(frozen=True)
class NeuronCount:
    """Output spikes of one neuron module, per sample (all steps)."""

    name: str
    type: str
    output_elements: float
    output_spikes: float
    firing_rate: float


@dataclass(frozen=True)
class EnergyReport:
    """Per-layer counts and energies, per sample, and their totals; serialises to JSON.

    ``timesteps`` is the T the counter was given (None for the ANN teacher).
    """

    layers: tuple[LayerCount, ...]
    neurons: tuple[NeuronCount, ...]
    n_samples: int
    timesteps: int | None
    costs: EnergyCosts

    @property
    def sops(self) -> float:
        return math.fsum(layer.sops for layer in self.layers)

    @property
    def macs(self) -> float:
        return math.fsum(layer.macs for layer in self.layers)

    @property
    def approx_sops(self) -> float:
        return math.fsum(layer.approx_sops for layer in self.layers)

    @property
    def energy_pj(self) -> float:
        return self.costs.energy_pj(self.sops, self.macs)

    @property
    def approx_energy_pj(self) -> float:
        return self.costs.energy_pj(self.approx_sops, self.macs)

    def totals(self) -> dict:
        """Totals per sample; neuron totals only when neurons were counted."""
        totals = {
            "sops": self.sops,
            "macs": self.macs,
            "approx_sops": self.approx_sops,
            "energy_pj": self.energy_pj,
            "approx_energy_pj": self.approx_energy_pj,
        }
        if self.neurons:
            spikes = math.fsum(n.output_spikes for n in self.neurons)
            elements = math.fsum(n.output_elements for n in self.neurons)
            totals["neuron_output_spikes"] = spikes
            totals["neuron_firing_rate"] = spikes / elements if elements else 0.0
        return totals

    def with_costs(self, costs: str | EnergyCosts) -> "EnergyReport":
        """The same counts priced with other energy costs (a preset name or EnergyCosts)."""
        costs = energy_costs(costs)
        layers = tuple(
            replace(
                layer,
                energy_pj=costs.energy_pj(layer.sops, layer.macs),
                approx_energy_pj=costs.energy_pj(layer.approx_sops, layer.macs),
            )
            for layer in self.layers
        )
        return replace(self, layers=layers, costs=costs)

    def to_dict(self) -> dict:
        return {
            "n_samples": self.n_samples,
            "timesteps": self.timesteps,
            "costs": asdict(self.costs),
            "totals": self.totals(),
            "layers": [asdict(layer) for layer in self.layers],
            "neurons": [asdict(neuron) for neuron in self.neurons],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "EnergyReport":
        """Inverse of :meth:`to_dict` (totals are recomputed, not read)."""
        layers = tuple(
            LayerCount(**{**layer, "input_shape": tuple(layer["input_shape"])}) for layer in data["layers"]
        )
        neurons = tuple(NeuronCount(**neuron) for neuron in data["neurons"])
        return cls(layers, neurons, data["n_samples"], data["timesteps"], EnergyCosts(**data["costs"]))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "EnergyReport":
        return cls.from_dict(json.loads(text))

