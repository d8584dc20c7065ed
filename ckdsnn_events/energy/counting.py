"""Exact synaptic-operation counts from the spikes a network actually fires.

What is counted, per ``nn.Conv1d/2d/3d`` and ``nn.Linear`` call, from forward hooks:

* **Spike-fed layers** (every input element exactly 0 or 1): synaptic operations (SOPs), one
  accumulate per (spike, synapse it reaches). A spike at input position ``p`` of a convolution
  reaches ``out_channels / groups`` output channels at each of ``coverage[p]`` (output position,
  kernel tap) pairs that read ``p``, so

      SOPs = (out_channels / groups) * sum_{n, c, p} s[n, c, p] * coverage[p]

  ``coverage`` depends only on the layer's geometry (kernel, stride, padding, dilation, padding
  mode) and the input size, not on the channel or group; it is computed once per input size as
  the gradient of ``sum(conv(ones, all-ones kernel))`` (:func:`conv_coverage`). Taps that fall on
  zero padding read no spike and cost nothing; with ``padding_mode`` reflect/replicate/circular
  the padded taps read real positions and are counted there. Per call this costs one pass over
  the input (a numba kernel on CPU that also checks the input is binary; reductions elsewhere)
  and a dot product with ``coverage``: far cheaper than convolving the spikes with an all-ones
  kernel. A Linear layer costs ``out_features`` accumulates per input spike.
* **Real-valued layers** (anything else: the first conv under direct encoding, event counts > 1):
  multiply-accumulates (MACs), every multiply of the call, whatever the values. The count follows
  the calls: a conv that runs on the flattened (T*B, ...) batch is charged T times per sample, a
  stem conv that the student runs once on (B, ...) for a constant-in-time input is charged once;
  ``steps_per_sample`` in the report (input rows per sample) says which happened.
* **A Linear fed by an average pool of spikes** (``AvgPool``/``AdaptiveAvgPool`` module ->
  ``Flatten``/view -> ``Linear``, the classifier of a spiking ResNet): by default
  (``pooled_linear="fold"``) the pool is folded into the Linear's weights, ``W' = W P``, so the
  pair is one layer fed by the pool's binary input: each input spike covered by a pooling window
  costs ``out_features`` accumulates, and the pooling itself costs nothing more. This is the
  exact "from the spikes fired" view. The pool is detected from the module call, not guessed from
  values: the Linear's input must be the pool's output or a view of it (same storage, offset,
  size and version counter; under inference_mode, which keeps no version counters, the same
  values), so an in-place change in between breaks the link; and the pool's input must be
  binary. Pooling done functionally (``x.mean((2, 3))``, ``F.adaptive_avg_pool2d``)
  is not detected, and such a Linear counts MACs, as with ``pooled_linear="macs"``. Folding
  charges ``out_features`` accumulates per spike where MACs charge ``in_features * out_features``
  per step (and leave the pooling additions uncounted): which is smaller depends on the firing
  rate and the pooled map's size.

Not counted: batch norm (it folds into the preceding conv at inference), biases, pooling
additions, residual additions and the neurons' own updates. The ANN teacher is counted the same
way with every layer as MACs (:func:`count_ann_macs`).

Beside the exact count the report gives the approximation common in SNN papers,
``approx_sops = input firing rate * dense ops`` (dense ops: every synapse once per step, i.e.
the layer's MACs times the steps). It equals the exact count when padding costs nothing and every
receptive field sees the same number of spikes (e.g. all-ones inputs without padding).

Everything in the report is per sample (one inference of one sample over all T steps).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numba
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ckdsnn_events.energy.presets import DEFAULT_PRESET, EnergyCosts, energy_costs
from ckdsnn_events.errors import UserError

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
AVG_POOL_DIMS = {
    nn.AvgPool1d: 1, nn.AdaptiveAvgPool1d: 1,
    nn.AvgPool2d: 2, nn.AdaptiveAvgPool2d: 2,
    nn.AvgPool3d: 3, nn.AdaptiveAvgPool3d: 3,
}
POOLED_LINEAR_MODES = ("fold", "macs")
INPUT_KINDS = ("spikes", "pooled-spikes", "real", "mixed")

# float32 sums of 0/1 values are exact while every partial sum stays below 2**24.
_EXACT_F32 = 1 << 24

NeuronSelector = type | tuple[type, ...] | Callable[[nn.Module], bool]


# ---------------------------------------------------------------------------------------------
# Pure counting functions


def is_binary(x: torch.Tensor) -> torch.Tensor:
    """0-d bool tensor on ``x``'s device: True when every element of ``x`` is exactly 0 or 1.

    NaN, inf, 0.5, -1, 2 are not binary; -0.0 counts as 0. On CUDA this does not synchronise.
    """
    flat = _flat(x)
    if _numba_reads(flat):
        return torch.tensor(bool(_all_binary(flat.detach().numpy())))
    return torch.logical_and(flat != 0, flat != 1).any().logical_not()


def spike_map(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` (N, C, *S) over batch and channels: float64 (*S), exact for 0/1 inputs."""
    acc = torch.float64 if x.dtype == torch.float64 or x.shape[0] * x.shape[1] >= _EXACT_F32 else torch.float32
    return x.sum(dim=(0, 1), dtype=acc).to(torch.float64)


def _spike_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(is_binary(x), spike_map(x))`` of ``x`` (N, C, *S); the map is only valid when binary.

    On CPU one numba pass does both and stops at the first non-binary row; on other devices
    these are two reductions without host synchronisation.
    """
    if x.numel() and x.is_contiguous() and _numba_reads(x):
        rows = x.shape[0] * x.shape[1]
        per_position = np.zeros(x[0, 0].numel(), dtype=np.float64)
        binary = _column_sums_if_binary(x.detach().reshape(rows, -1).numpy(), per_position)
        return torch.tensor(bool(binary)), torch.from_numpy(per_position).reshape(x.shape[2:])
    return is_binary(x), spike_map(x)


def _numba_reads(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


# Branch-free inner loops (LLVM vectorises them); the early exits only run between blocks/rows.
_BLOCK = 4096


@numba.njit(cache=True, nogil=True)
def _all_binary(flat):  # pragma: no cover - compiled
    n = flat.shape[0]
    for start in range(0, n, _BLOCK):
        bad = False
        for i in range(start, min(start + _BLOCK, n)):
            v = flat[i]
            bad |= (v != 0.0) & (v != 1.0)
        if bad:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _column_sums_if_binary(x, out):  # pragma: no cover - compiled
    """Adds the column sums of ``x`` (R, P) to ``out`` (P,); False at the first non-binary row."""
    rows, cols = x.shape
    for r in range(rows):
        bad = False
        for p in range(cols):
            v = x[r, p]
            bad |= (v != 0.0) & (v != 1.0)
            out[p] += v
        if bad:
            return False
    return True


def conv_coverage(conv: nn.Module, spatial_shape: tuple[int, ...], device=None) -> torch.Tensor:
    """For each input position of ``conv``, how many (output position, kernel tap) pairs read it.

    Args:
        conv: an ``nn.Conv1d/2d/3d`` (its kernel size, stride, padding, dilation, padding mode).
        spatial_shape: the input's spatial size, e.g. (H, W).

    Returns:
        float64 tensor of ``spatial_shape`` holding integers: a spike at position ``p`` of any
        input channel reaches ``coverage[p] * out_channels / groups`` synapses.
    """
    conv_fn = (F.conv1d, F.conv2d, F.conv3d)[len(spatial_shape) - 1]
    # Autograd needs to be on even when counting runs under no_grad or inference_mode.
    with torch.inference_mode(False), torch.enable_grad():
        ones = torch.ones((1, 1, *spatial_shape), dtype=torch.float64, device=device, requires_grad=True)
        kernel = torch.ones((1, 1, *conv.kernel_size), dtype=torch.float64, device=device)
        if conv.padding_mode == "zeros":
            out = conv_fn(ones, kernel, None, conv.stride, conv.padding, conv.dilation)
        else:
            padded = F.pad(ones, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
            out = conv_fn(padded, kernel, None, conv.stride, 0, conv.dilation)
        (coverage,) = torch.autograd.grad(out.sum(), ones)
    return coverage[0, 0]


def pool_coverage_mask(pool: nn.Module, spatial_shape: tuple[int, ...], device=None) -> torch.Tensor:
    """float64 0/1 tensor of ``spatial_shape``: 1 where some window of the average ``pool`` reads."""
    with torch.inference_mode(False), torch.enable_grad():
        ones = torch.ones((1, 1, *spatial_shape), dtype=torch.float64, device=device, requires_grad=True)
        # .forward, not __call__: no hooks (the counter's own included)
        (weight,) = torch.autograd.grad(pool.forward(ones).sum(), ones)
    return (weight > 0).to(torch.float64)


def exact_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of all of ``x`` as a 0-d float64 tensor, exact for 0/1 inputs of any size."""
    if x.dtype == torch.float64:
        return x.sum()
    if x.numel() < _EXACT_F32:
        return x.sum(dtype=torch.float32).to(torch.float64)
    chunks = _flat(x).split(_EXACT_F32 // 2)
    return torch.stack([chunk.sum(dtype=torch.float32) for chunk in chunks]).to(torch.float64).sum()


def conv_sops(spikes: torch.Tensor, conv: nn.Module) -> torch.Tensor:
    """Exact accumulates of ``conv`` on binary ``spikes`` (N, C_in, *S): 0-d float64 tensor.

    For non-negative integer inputs (event counts) it counts each unit as one spike.
    """
    coverage = conv_coverage(conv, tuple(spikes.shape[2:]), spikes.device)
    return (spike_map(spikes) * coverage).sum() * (conv.out_channels // conv.groups)


def linear_sops(spikes: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """Exact accumulates of ``linear`` on binary ``spikes`` (..., in_features): 0-d float64."""
    return exact_sum(spikes) * linear.out_features


def conv_macs(conv: nn.Module, output_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one ``conv`` call producing ``output_shape`` (bias adds excluded)."""
    return math.prod(output_shape) * (conv.in_channels // conv.groups) * math.prod(conv.kernel_size)


def linear_macs(linear: nn.Linear, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one ``linear`` call on ``input_shape`` (..., in_features)."""
    return math.prod(input_shape) * linear.out_features


def _flat(x: torch.Tensor) -> torch.Tensor:
    """All elements of ``x`` as a 1-D tensor, a view whenever the memory is dense."""
    if x.is_contiguous():
        return x.view(-1)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1).reshape(-1)
    return x.reshape(-1)


# ---------------------------------------------------------------------------------------------
# Report


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


# ---------------------------------------------------------------------------------------------
# Hook bookkeeping


@dataclass
class _CallGroup:
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
class _LayerTally:
    name: str
    module: nn.Module
    groups: dict = field(default_factory=dict)
    sums: torch.Tensor | None = None  # float64 (2,): input spikes, SOPs over binary calls
    coverage: dict = field(default_factory=dict)

    def group(self, key, make: Callable[[], _CallGroup]) -> _CallGroup:
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = make()
        return group

    def add(self, group: _CallGroup, binary: torch.Tensor, spikes: torch.Tensor, sops: torch.Tensor) -> None:
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
class _NeuronTally:
    module: nn.Module
    spikes: torch.Tensor | None = None  # 0-d float64
    elements: int = 0


@dataclass
class _PooledSpikes:
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


def _first_tensor(args: tuple, kwargs: dict) -> torch.Tensor | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value
        if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
            return value[0]
    return None


def _neuron_predicate(neurons: NeuronSelector | None) -> Callable[[nn.Module], bool] | None:
    if neurons is None:
        return None
    if isinstance(neurons, type) or (isinstance(neurons, tuple) and all(isinstance(t, type) for t in neurons)):
        return lambda module: isinstance(module, neurons)
    if callable(neurons):
        return neurons
    raise UserError(
        f"neurons must be a module class, a tuple of classes or a predicate(module) -> bool, got {neurons!r}"
    )


# ---------------------------------------------------------------------------------------------
# The counter


class SynapticOpCounter:
    """Counts input spikes, SOPs and MACs of every Conv/Linear layer of ``model`` while it runs.

    Usage::

        with SynapticOpCounter(student, timesteps=10, neurons=LIF) as counter, torch.no_grad():
            for batch in loader:
                student(batch.inputs)          # time-major (T, B, C, H, W)
        report = counter.report()              # per sample; counter.report(n_samples=...) also works

    Args:
        model: any ``nn.Module``; its ``nn.Conv1d/2d/3d`` and ``nn.Linear`` submodules are counted.
        timesteps: T. With it, the number of samples is read from each call of ``model``, whose
            first tensor argument must be time-major (T, B, ...); without it (or for other
            inputs) pass ``n_samples`` to :meth:`report`.
        neurons: neuron modules whose output firing rates to report: a class, a tuple of
            classes or a predicate ``module -> bool``. Tuple outputs (Norse's ``(spikes,
            state)``) are read from their first element.
        pooled_linear: ``"fold"`` (default: a Linear fed by an average pool of spikes counts
            ``out_features`` accumulates per spike) or ``"macs"`` (it counts MACs).
        count_spikes: False counts every layer as MACs (an ANN), without looking at values.

    Hooks are attached on ``__enter__``/:meth:`attach` and removed on ``__exit__``/:meth:`detach`;
    counts accumulate until :meth:`reset`. Counting runs without host-device synchronisation
    until :meth:`report`.
    """

    def __init__(
        self,
        model: nn.Module,
        timesteps: int | None = None,
        *,
        neurons: NeuronSelector | None = None,
        pooled_linear: str = "fold",
        count_spikes: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise UserError(f"SynapticOpCounter needs an nn.Module, got {type(model).__name__}")
        if timesteps is not None and (isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1):
            raise UserError(f"timesteps must be a positive integer (T) or None, got {timesteps!r}")
        if pooled_linear not in POOLED_LINEAR_MODES:
            raise UserError(
                f"pooled_linear must be one of {', '.join(POOLED_LINEAR_MODES)}, got {pooled_linear!r}"
            )
        self.model = model
        self.timesteps = timesteps
        self.pooled_linear = pooled_linear
        self.count_spikes = count_spikes
        self._is_neuron = _neuron_predicate(neurons)
        self._handles: list = []
        self.reset()

    # -- lifecycle ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything counted so far (hooks stay attached)."""
        self._layers: dict[str, _LayerTally] = {}
        self._neurons: dict[str, _NeuronTally] = {}
        self._pooled: dict[int, _PooledSpikes] = {}
        self._pool_masks: dict = {}
        self.samples_seen = 0
        self._unreadable_input: tuple[int, ...] | None = None

    def attach(self) -> "SynapticOpCounter":
        if self._handles:
            return self
        self._handles.append(self.model.register_forward_pre_hook(self._on_model_call, with_kwargs=True))
        for name, module in self.model.named_modules():
            if isinstance(module, CONV_TYPES):
                self._handles.append(module.register_forward_hook(self._conv_hook(name, module)))
            elif isinstance(module, nn.Linear):
                self._handles.append(module.register_forward_hook(self._linear_hook(name, module)))
            elif type(module) in AVG_POOL_DIMS and self.pooled_linear == "fold" and self.count_spikes:
                self._handles.append(module.register_forward_hook(self._on_pool))
            if self._is_neuron is not None and self._is_neuron(module):
                self._handles.append(module.register_forward_hook(self._neuron_hook(name)))
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._pooled.clear()

    def __enter__(self) -> "SynapticOpCounter":
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    # -- hooks ----------------------------------------------------------------------------------

    def _on_model_call(self, module, args, kwargs) -> None:
        self._pooled.clear()
        x = _first_tensor(args, kwargs)
        if self.timesteps is None or x is None:
            return
        if x.dim() >= 2 and x.shape[0] == self.timesteps:
            self.samples_seen += x.shape[1]
        else:
            self._unreadable_input = tuple(x.shape)

    def _tally(self, name: str, module: nn.Module) -> _LayerTally:
        tally = self._layers.get(name)
        if tally is None:
            tally = self._layers[name] = _LayerTally(name, module)
        return tally

    def _conv_hook(self, name: str, conv: nn.Module):
        def hook(module, args, output) -> None:
            with torch.no_grad():
                x = args[0]
                if x.dim() == conv.weight.dim() - 1:  # unbatched (C, *S)
                    x, output = x.unsqueeze(0), output.unsqueeze(0)
                tally = self._tally(name, conv)
                macs = conv_macs(conv, tuple(output.shape))
                group = tally.group(
                    ("spikes", tuple(x.shape)),
                    lambda: _CallGroup("spikes", tuple(x.shape[1:]), x.shape[0], x.numel(), macs, macs),
                )
                if not self.count_spikes:
                    group.calls += 1
                    return
                spatial = tuple(x.shape[2:])
                coverage = tally.coverage.get((spatial, x.device))
                if coverage is None:
                    coverage = tally.coverage[(spatial, x.device)] = conv_coverage(conv, spatial, x.device)
                binary, per_position = _spike_stats(x)
                sops = (per_position * coverage).sum() * (conv.out_channels // conv.groups)
                tally.add(group, binary, per_position.sum(), sops)

        return hook

    def _linear_hook(self, name: str, linear: nn.Linear):
        def hook(module, args, output) -> None:
            with torch.no_grad():
                x = args[0]
                tally = self._tally(name, linear)
                macs = linear_macs(linear, tuple(x.shape))
                rows = x.numel() // linear.in_features
                pooled = self._pooled_source(x) if self.count_spikes else None
                if pooled is None:
                    group = tally.group(
                        ("spikes", tuple(x.shape)),
                        lambda: _CallGroup("spikes", (linear.in_features,), rows, x.numel(), macs, macs),
                    )
                    if not self.count_spikes:
                        group.calls += 1
                        return
                    spikes = exact_sum(x)
                    tally.add(group, is_binary(x), spikes, spikes * linear.out_features)
                    return
                group = tally.group(
                    ("pooled-spikes", pooled.input_shape, tuple(x.shape)),
                    lambda: _CallGroup(
                        "pooled-spikes", pooled.input_shape[1:], rows, math.prod(pooled.input_shape),
                        macs, pooled.covered_elements * linear.out_features,
                    ),
                )
                tally.add(group, pooled.binary, pooled.spikes, pooled.covered_spikes * linear.out_features)

        return hook

    def _on_pool(self, module, args, output) -> None:
        with torch.no_grad():
            x = args[0]
            dims = AVG_POOL_DIMS[type(module)]
            if not isinstance(output, torch.Tensor) or x.dim() != dims + 2:
                return
            spatial = tuple(x.shape[2:])
            key = (id(module), spatial, x.device)
            if key not in self._pool_masks:
                mask = pool_coverage_mask(module, spatial, x.device)
                self._pool_masks[key] = (mask, int(mask.sum().item()))
            mask, covered_positions = self._pool_masks[key]
            binary, per_position = _spike_stats(x)
            self._pooled[output.data_ptr()] = _PooledSpikes(
                storage=output.untyped_storage(),
                data_ptr=output.data_ptr(),
                numel=output.numel(),
                version=None if output.is_inference() else output._version,
                values=output.detach().clone() if output.is_inference() else None,
                input_shape=tuple(x.shape),
                covered_elements=x.shape[0] * x.shape[1] * covered_positions,
                binary=binary,
                spikes=per_position.sum(),
                covered_spikes=(per_position * mask).sum(),
            )

    def _pooled_source(self, x: torch.Tensor) -> _PooledSpikes | None:
        """The pool record whose output ``x`` is (or views), if ``x`` is unchanged since."""
        if self.pooled_linear != "fold" or not self._pooled:
            return None
        record = self._pooled.get(x.data_ptr())
        if (
            record is None
            or x.numel() != record.numel
            or x.untyped_storage().data_ptr() != record.storage.data_ptr()
        ):
            return None
        if record.version is not None:
            return record if not x.is_inference() and x._version == record.version else None
        return record if torch.equal(x.reshape(-1), record.values.reshape(-1)) else None

    def _neuron_hook(self, name: str):
        def hook(module, args, output) -> None:
            spikes = output[0] if isinstance(output, (tuple, list)) else output
            if not isinstance(spikes, torch.Tensor):
                return
            with torch.no_grad():
                tally = self._neurons.get(name)
                if tally is None:
                    tally = self._neurons[name] = _NeuronTally(module)
                total = exact_sum(spikes)
                tally.spikes = total if tally.spikes is None else tally.spikes + total
                tally.elements += spikes.numel()

        return hook

    # -- report ---------------------------------------------------------------------------------

    def report(self, n_samples: int | None = None, costs: str | EnergyCosts = DEFAULT_PRESET) -> EnergyReport:
        """Per-sample counts of everything run since the last :meth:`reset`.

        Args:
            n_samples: samples evaluated; defaults to the count read from the model's
                time-major inputs (needs ``timesteps``).
            costs: energy preset name or :class:`EnergyCosts`.
        """
        costs = energy_costs(costs)
        n = self._samples(n_samples)
        layers = tuple(self._layer_count(tally, n, costs) for tally in self._layers.values())
        neurons = []
        for name, tally in self._neurons.items():
            spikes = tally.spikes.item()
            rate = spikes / tally.elements if tally.elements else 0.0
            neurons.append(NeuronCount(name, type(tally.module).__name__, tally.elements / n, spikes / n, rate))
        return EnergyReport(layers, tuple(neurons), n, self.timesteps, costs)

    def _samples(self, n_samples: int | None) -> int:
        if n_samples is not None:
            if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
                raise UserError(f"n_samples must be a positive integer, got {n_samples!r}")
            return n_samples
        if self.timesteps is None:
            raise UserError("pass n_samples to report(), or give the counter timesteps=T to count them")
        if self._unreadable_input is not None:
            raise UserError(
                f"the model was called with an input of shape {self._unreadable_input}, not time-major "
                f"(T={self.timesteps}, B, ...); pass n_samples to report()"
            )
        if self.samples_seen == 0:
            raise UserError("nothing was counted: run the model inside the counter before report()")
        return self.samples_seen

    @staticmethod
    def _layer_count(tally: _LayerTally, n: int, costs: EnergyCosts) -> LayerCount:
        groups = list(tally.groups.values())
        binary = [0.0 if g.binary_calls is None else g.binary_calls.item() for g in groups]
        calls = sum(g.calls for g in groups)
        rows = sum(g.calls * g.rows for g in groups)
        macs = sum((g.calls - b) * g.dense_macs for g, b in zip(groups, binary))
        binary_dense = sum(b * g.dense_sops for g, b in zip(groups, binary))
        binary_elements = sum(b * g.elements for g, b in zip(groups, binary))
        spikes, sops = (0.0, 0.0) if tally.sums is None else tally.sums.tolist()
        kinds = {g.kind if b == g.calls else "real" if b == 0 else "mixed" for g, b in zip(groups, binary)}
        kind = kinds.pop() if len(kinds) == 1 else "mixed"
        rate = spikes / binary_elements if binary_elements else None
        approx = rate * binary_dense if rate is not None else 0.0
        return LayerCount(
            name=tally.name,
            type=type(tally.module).__name__,
            input_kind=kind,
            input_shape=groups[0].step_shape,
            calls=calls,
            steps_per_sample=rows / n,
            input_firing_rate=rate,
            input_spikes=spikes / n if binary_elements else None,
            dense_ops=(binary_dense + macs) / n,
            sops=sops / n,
            macs=macs / n,
            approx_sops=approx / n,
            energy_pj=costs.energy_pj(sops / n, macs / n),
            approx_energy_pj=costs.energy_pj(approx / n, macs / n),
        )


def count_ann_macs(
    model: nn.Module, input_shape: tuple[int, ...], costs: str | EnergyCosts = DEFAULT_PRESET
) -> EnergyReport:
    """MACs of an ANN (the teacher) for one sample of ``input_shape`` (C, H, W), per layer.

    Runs one forward pass of a zero input (batch 1) in eval mode with hooks on every Conv/Linear,
    the classifier included; batch norm is excluded (it folds into the preceding conv at
    inference), as are biases, pooling and activations. The model's training mode is restored.
    """
    if not input_shape or any(not isinstance(s, int) or s < 1 for s in input_shape):
        raise UserError(f"input_shape must be positive integers such as (3, 32, 32), got {input_shape!r}")
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    try:
        with SynapticOpCounter(model, count_spikes=False) as counter, torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device, dtype=dtype))
    finally:
        model.train(was_training)
    return counter.report(n_samples=1, costs=costs)
