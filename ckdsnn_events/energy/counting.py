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
* **Real-valued layers** (anything else: the first conv under direct encoding, event counts > 1;
  and every layer whose module has ``real_valued_input = True``, which a model sets on the layers
  that read real values by construction, so that an input that happens to hold only 0s and 1s, as
  a silent last stage gives, is still charged as what the hardware computes: the projector head
  after the mean over T, the classifier after a ReLU last block, the 1x1 conv after an AvgPool
  shortcut): multiply-accumulates (MACs), every multiply of the call, whatever the values. The count follows
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

* **Layers reading sums of spikes** (SEW-ResNet's ADD blocks give 0, 1, 2, ...; a spiking
  transformer's residual stream): an architecture marks such a layer (and a pool before a
  classifier) with the attribute ``reads_spike_counts = True``. Its input then counts as spikes
  whenever every element is a non-negative integer: an input value of ``k`` is ``k`` spikes
  arriving, ``k`` accumulates per synapse (``input_kind`` ``"spike-counts"``); anything else is
  MACs as above. Unmarked layers keep the binary rule, so an event-count frame at the stem stays
  real-valued input (MACs).
* **Products of two spike tensors** (a module with ``synaptic_matmul = True`` computing
  ``a @ b``, e.g. the attention of a spiking transformer): one accumulate per product whose two
  factors are both non-zero (for binary ``q k^T``, an AND-accumulate per coincident spike pair;
  for a spike-count ``a`` times binary ``b``, one addition of the integer ``a[n, k]``), counted
  exactly as ``sum_k #(a[:, k] != 0) * #(b[k, :] != 0)`` (``input_kind`` ``"spike-matmul"``); with
  a real-valued factor every product is a MAC. ``input_spikes`` counts the non-zero elements of
  ``a``.

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

import math

import torch
from torch import nn

from ckdsnn_events.energy.ops import (
    conv_coverage,
    conv_macs,
    exact_sum,
    is_binary,
    is_spike_count,
    linear_macs,
    nonzero_products,
    pool_coverage_mask,
    reads_counts,
    spike_fed,
    spike_stats,
)
from ckdsnn_events.energy.presets import DEFAULT_PRESET, EnergyCosts, energy_costs
from ckdsnn_events.energy.report_types import EnergyReport, LayerCount, NeuronCount
from ckdsnn_events.energy.tally import (
    CallGroup,
    LayerTally,
    NeuronSelector,
    NeuronTally,
    PooledSpikes,
    first_tensor,
    neuron_predicate,
)
from ckdsnn_events.errors import UserError

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
AVG_POOL_DIMS = {
    nn.AvgPool1d: 1, nn.AdaptiveAvgPool1d: 1,
    nn.AvgPool2d: 2, nn.AdaptiveAvgPool2d: 2,
    nn.AvgPool3d: 3, nn.AdaptiveAvgPool3d: 3,
}
POOLED_LINEAR_MODES = ("fold", "macs")


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
        self._is_neuron = neuron_predicate(neurons)
        self._handles: list = []
        self.reset()

    # -- lifecycle ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything counted so far (hooks stay attached)."""
        self._layers: dict[str, LayerTally] = {}
        self._neurons: dict[str, NeuronTally] = {}
        self._pooled: dict[int, PooledSpikes] = {}
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
            elif getattr(module, "synaptic_matmul", False):
                self._handles.append(module.register_forward_hook(self._matmul_hook(name, module)))
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
        x = first_tensor(args, kwargs)
        if self.timesteps is None or x is None:
            return
        if x.dim() >= 2 and x.shape[0] == self.timesteps:
            self.samples_seen += x.shape[1]
        else:
            self._unreadable_input = tuple(x.shape)

    def _tally(self, name: str, module: nn.Module) -> LayerTally:
        tally = self._layers.get(name)
        if tally is None:
            tally = self._layers[name] = LayerTally(name, module)
        return tally

    def _conv_hook(self, name: str, conv: nn.Module):
        def hook(module, args, output) -> None:
            with torch.no_grad():
                x = args[0]
                if x.dim() == conv.weight.dim() - 1:  # unbatched (C, *S)
                    x, output = x.unsqueeze(0), output.unsqueeze(0)
                tally = self._tally(name, conv)
                macs = conv_macs(conv, tuple(output.shape))
                counts = reads_counts(conv)
                kind = "spike-counts" if counts else "spikes"
                group = tally.group(
                    (kind, tuple(x.shape)),
                    lambda: CallGroup(kind, tuple(x.shape[1:]), x.shape[0], x.numel(), macs, macs),
                )
                if not self.count_spikes:
                    group.calls += 1
                    return
                spatial = tuple(x.shape[2:])
                coverage = tally.coverage.get((spatial, x.device))
                if coverage is None:
                    coverage = tally.coverage[(spatial, x.device)] = conv_coverage(conv, spatial, x.device)
                binary, per_position = spike_stats(x, counts)
                sops = (per_position * coverage).sum() * (conv.out_channels // conv.groups)
                tally.add(group, binary & spike_fed(conv), per_position.sum(), sops)

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
                    counts = reads_counts(linear)
                    kind = "spike-counts" if counts else "spikes"
                    group = tally.group(
                        (kind, tuple(x.shape)),
                        lambda: CallGroup(kind, (linear.in_features,), rows, x.numel(), macs, macs),
                    )
                    if not self.count_spikes:
                        group.calls += 1
                        return
                    spikes = x.sum(dtype=torch.float64) if counts else exact_sum(x)
                    spike_input = is_spike_count(x) if counts else is_binary(x)
                    tally.add(group, spike_input & spike_fed(linear), spikes, spikes * linear.out_features)
                    return
                group = tally.group(
                    ("pooled-spikes", pooled.input_shape, tuple(x.shape)),
                    lambda: CallGroup(
                        "pooled-spikes", pooled.input_shape[1:], rows, math.prod(pooled.input_shape),
                        macs, pooled.covered_elements * linear.out_features,
                    ),
                )
                tally.add(group, pooled.binary & spike_fed(linear), pooled.spikes,
                          pooled.covered_spikes * linear.out_features)

        return hook

    def _matmul_hook(self, name: str, module: nn.Module):
        """``a @ b`` of two spike tensors (attention): a product costs one accumulate when both factors
        are non-zero (:func:`nonzero_products`); with a real-valued factor, every product is a MAC."""

        def hook(_, args, output) -> None:
            with torch.no_grad():
                a, b = args[0], args[1]
                tally = self._tally(name, module)
                macs = math.prod(output.shape) * a.shape[-1]
                group = tally.group(
                    ("spike-matmul", tuple(a.shape), tuple(b.shape)),
                    lambda: CallGroup("spike-matmul", tuple(a.shape[1:]), a.shape[0], a.numel(), macs, macs),
                )
                if not self.count_spikes:
                    group.calls += 1
                    return
                countable = torch.logical_and(is_spike_count(a), is_spike_count(b))
                tally.add(group, countable, exact_sum(a != 0), nonzero_products(a, b))

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
            binary, per_position = spike_stats(x, reads_counts(module))
            self._pooled[output.data_ptr()] = PooledSpikes(
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

    def _pooled_source(self, x: torch.Tensor) -> PooledSpikes | None:
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
                    tally = self._neurons[name] = NeuronTally(module)
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
    def _layer_count(tally: LayerTally, n: int, costs: EnergyCosts) -> LayerCount:
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
