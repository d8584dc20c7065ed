"""A memory-aware energy model in the spirit of Lemaire et al. (ICONIP 2022), from the counts already taken.

E. Lemaire, L. Cordone, A. Castagnetti, P.-E. Novac, J. Courtois, B. Miramond, "An Analytical
Estimation of Spiking Neural Networks Energy Efficiency", ICONIP 2022 (arXiv 2210.13107), price
an inference as operations + addressing + memory traffic, where one memory access costs more the
larger the buffer it reads from. The op-count model (:mod:`.presets`) keeps only the first term.

Per layer, per sample (S_in = input spikes, SOP = exact synaptic operations, both from the
:class:`~.report_types.EnergyReport`; n_in / n_out = input / output elements of one step; W = the
layer's weights; k = kernel taps; C = output channels per group; c = calls per sample)::

    spike-fed conv/linear (SNN)            real-valued conv/linear (ANN, SNN stem)
    ops        SOP * E_ADD                 MAC * (E_MUL + E_ADD)
    addressing SOP * E_ADD                 c * (n_in + n_out + C k) * E_ADD
               + 2 S_in * (E_MUL + E_ADD)  (conv only: the event's position)
    weights    SOP * e(W)                  c * W * e(W)               (weights read once per call)
    membrane   2 SOP * e(n_out)            0                          (partial sums stay in registers)
    in/out     2 S_in * e(n_in)            c * (n_in + n_out) * e(max(n_in, n_out))

    neuron layer (SNN, n neurons, T steps): ops n T (E_MUL + 2 E_ADD) (leak, integrate, compare),
    membrane 2 n T e(n) (read and write every neuron at every step)

``e(N)`` is the energy of one access of ``word_bytes`` to a buffer of N words: piecewise linear
through (0, 0), (8 KiB, sram_8k_pj), (32 KiB, sram_32k_pj), (1 MiB, sram_1m_pj), constant above.
Every spike event is one word written by its producer and read by its consumer (both charged to
the consumer); each accumulate reads its weight and reads and writes the target membrane.

Not modelled: residual additions (a spike added into the block's output current), the average
pool's additions, batch norm (folded), biases, DRAM (a buffer above 1 MiB costs as 1 MiB: this
underestimates big dense layers, so it favours the ANN), data reuse beyond "weights once per
call" for the ANN and "once per synaptic event" for the SNN.

Differences from SpikingJelly 2.0's ``estimate_lemaire_energy`` (``op_counter/analytical_energy``):
it prices all traffic of the network at ONE buffer size (the largest seen anywhere); here every
layer has its own buffers. Its spike-fed weight reads and addressing count ``S_in * C * k`` (every
tap, padding included); here exactly the SOPs (taps on zero padding cost nothing). It counts
memory in bytes of the tensors PyTorch touches (float32 spikes: 4 bytes each) and neuron state
from the dispatched operations of its own neuron modules; here counts come from the model-free
formulas above and the spike counts of our counter, so no extra pass over the data is needed.
Its default constants are those of the ``lemaire-int32`` preset below.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Iterable

from torch import nn

from ckdsnn_events.energy.report_types import EnergyReport, LayerCount
from ckdsnn_events.errors import UserError

__all__ = ["MemoryCosts", "MEMORY_PRESETS", "DEFAULT_MEMORY_PRESET", "memory_costs", "layer_geometry",
           "memory_energy", "break_even_rate", "COMPONENTS"]

COMPONENTS = ("ops", "addressing", "weights", "membrane", "inout")
_POINTS_BYTES = (8 * 1024, 32 * 1024, 1024 * 1024)


@dataclass(frozen=True)
class MemoryCosts:
    """Constants of the memory-aware model (pJ per operation, pJ per word access, bytes per word)."""

    e_add_pj: float
    e_mul_pj: float
    sram_8k_pj: float
    sram_32k_pj: float
    sram_1m_pj: float
    word_bytes: float = 4.0
    name: str = "custom"
    source: str = "user values"

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name in ("name", "source"):
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise UserError(f"memory energy constant {f.name} must be a finite number >= 0, got {value!r}.")
        if self.word_bytes <= 0:
            raise UserError(f"memory energy constant word_bytes must be > 0, got {self.word_bytes!r}.")

    def access_pj(self, words: float) -> float:
        """Energy of one word access to a buffer of ``words`` words (see the module docstring)."""
        size = max(0.0, words * self.word_bytes)
        xs = (0.0, *map(float, _POINTS_BYTES))
        ys = (0.0, self.sram_8k_pj, self.sram_32k_pj, self.sram_1m_pj)
        if size >= xs[-1]:
            return ys[-1]
        i = next(i for i in range(1, len(xs)) if size <= xs[i])
        return ys[i - 1] + (ys[i] - ys[i - 1]) * (size - xs[i - 1]) / (xs[i] - xs[i - 1])

    def constants(self) -> dict:
        return asdict(self)


_HOROWITZ_SRAM = ("SRAM 10 / 20 / 100 pJ per access at 8 KiB / 32 KiB / 1 MiB (Horowitz, ISSCC 2014, 64-bit "
                  "reads; charged per 32-bit word as SpikingJelly 2.0's Lemaire estimator does)")
MEMORY_PRESETS: dict[str, MemoryCosts] = {
    "lemaire-int32": MemoryCosts(0.1, 3.1, 10.0, 20.0, 100.0, 4.0, "lemaire-int32",
                                 "45 nm int32 add 0.1 pJ / mult 3.1 pJ (Horowitz 2014); " + _HOROWITZ_SRAM
                                 + "; the defaults of SpikingJelly 2.0 LemaireEnergyCostConfig"),
    "lemaire-fp32": MemoryCosts(0.9, 3.7, 10.0, 20.0, 100.0, 4.0, "lemaire-fp32",
                                "45 nm fp32 add 0.9 pJ / mult 3.7 pJ (Horowitz 2014, the op model's "
                                "45nm-fp32); " + _HOROWITZ_SRAM),
    "lemaire-int8": MemoryCosts(0.03, 0.2, 10.0, 20.0, 100.0, 1.0, "lemaire-int8",
                                "45 nm int8 add 0.03 pJ / mult 0.2 pJ (Horowitz 2014), 1-byte words; "
                                + _HOROWITZ_SRAM + " (per access, whatever its width)"),
}
DEFAULT_MEMORY_PRESET = "lemaire-int32"
SETTABLE = tuple(f.name for f in fields(MemoryCosts) if f.name not in ("name", "source"))


def memory_costs(preset: str | MemoryCosts = DEFAULT_MEMORY_PRESET, overrides: Iterable[str] | dict = ()) -> MemoryCosts:
    """A preset, with ``KEY=VALUE`` overrides (strings as the CLI gives them, or a dict).

    Raises:
        UserError: an unknown preset or key, a value that is not a number, a negative value.
    """
    if isinstance(preset, MemoryCosts):
        base = preset
    elif preset in MEMORY_PRESETS:
        base = MEMORY_PRESETS[preset]
    else:
        raise UserError(f"unknown --memory-preset {preset!r}; choose one of: {', '.join(MEMORY_PRESETS)}.")
    items = overrides.items() if isinstance(overrides, dict) else [_split(item) for item in overrides]
    values = {}
    for key, value in items:
        if key not in SETTABLE:
            raise UserError(f"unknown memory energy constant {key!r} in --memory-set; valid: {', '.join(SETTABLE)}.")
        try:
            values[key] = float(value)
        except (TypeError, ValueError):
            raise UserError(f"--memory-set {key}={value!r}: the value must be a number.") from None
    if not values:
        return base
    return replace(base, **values, name=f"{base.name}+custom", source=base.source + "; changed: "
                   + ", ".join(f"{k}={v:g}" for k, v in values.items()))


def _split(item: str) -> tuple[str, str]:
    if not isinstance(item, str) or "=" not in item:
        raise UserError(f"--memory-set takes KEY=VALUE (e.g. sram_8k_pj=5), got {item!r}.")
    key, value = item.split("=", 1)
    return key.strip(), value.strip()


@dataclass(frozen=True)
class Geometry:
    """What the memory model needs of a layer beyond the counts: sizes per step, per sample."""

    weights: int
    n_in: int
    n_out: int
    fan: int  # C * k: synapses of one input position (conv), out_features (linear)
    conv: bool


def _conv_out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def layer_geometry(model: nn.Module, report: EnergyReport) -> dict[str, Geometry]:
    """Per layer of ``report``: weights and per-step sizes, from the modules' parameters and the
    input shapes the counter recorded (no forward pass)."""
    out = {}
    for layer in report.layers:
        module = model.get_submodule(layer.name)
        n_in = math.prod(layer.input_shape)
        if isinstance(module, nn.Linear):
            out[layer.name] = Geometry(module.weight.numel(), module.in_features, module.out_features,
                                       module.out_features, False)
            continue
        if getattr(module, "synaptic_matmul", False):
            # a @ b of two activations (attention): no stored weights; each accumulate reads an element
            # of the other operand, taken here as a buffer of a's size, and the product is of that size
            # too (exact for the square q k^T of one head, an approximation for (q k^T) v)
            out[layer.name] = Geometry(n_in, n_in, n_in, 0, False)
            continue
        spatial = layer.input_shape[1:]
        sizes = [_conv_out(n, k, s, p, d) for n, k, s, p, d in zip(spatial, module.kernel_size, module.stride,
                                                                       _padding(module), module.dilation)]
        taps = math.prod(module.kernel_size)
        out[layer.name] = Geometry(module.weight.numel(), n_in, module.out_channels * math.prod(sizes),
                                   module.out_channels // module.groups * taps, True)
    return out


def _padding(module: nn.Module) -> tuple[int, ...]:
    if isinstance(module.padding, str):  # "same" keeps the size, "valid" pads nothing
        return tuple((d * (k - 1)) // 2 if module.padding == "same" else 0
                     for k, d in zip(module.kernel_size, module.dilation))
    return tuple(module.padding)


def _synapse_row(layer: LayerCount, g: Geometry, c: MemoryCosts) -> dict:
    mac_pj = c.e_mul_pj + c.e_add_pj
    spikes = layer.input_spikes or 0.0
    spike = {
        "ops": layer.sops * c.e_add_pj,
        "addressing": layer.sops * c.e_add_pj + (2 * spikes * mac_pj if g.conv else 0.0),
        "weights": layer.sops * c.access_pj(g.weights),
        "membrane": 2 * layer.sops * c.access_pj(g.n_out),
        "inout": 2 * spikes * c.access_pj(g.n_in),
    }
    macs_per_call = layer.dense_ops / layer.steps_per_sample if layer.steps_per_sample else 0.0
    calls = layer.macs / macs_per_call if macs_per_call else 0.0
    dense = {
        "ops": layer.macs * mac_pj,
        "addressing": calls * (g.n_in + g.n_out + (g.fan if g.conv else 0)) * c.e_add_pj,
        "weights": calls * g.weights * c.access_pj(g.weights),
        "membrane": 0.0,
        "inout": calls * (g.n_in + g.n_out) * c.access_pj(max(g.n_in, g.n_out)),
    }
    parts = {k: spike[k] + dense[k] for k in COMPONENTS}
    counts = {"sops": layer.sops, "macs": layer.macs, "input_spikes": spikes, "calls": calls,
              "weight_reads": layer.sops + calls * g.weights, "membrane_accesses": 2 * layer.sops,
              "buffers_words": {"weights": g.weights, "membrane": g.n_out, "input": g.n_in}}
    return {"name": layer.name, "kind": "synapses", "input_kind": layer.input_kind, **parts,
            "total_pj": math.fsum(parts.values()), "spike_driven_pj": math.fsum(spike.values()), "counts": counts}


def _neuron_rows(report: EnergyReport, c: MemoryCosts) -> list[dict]:
    rows, steps = [], report.timesteps or 1
    for neuron in report.neurons:
        updates = neuron.output_elements  # n * T per sample
        n = updates / steps
        parts = {"ops": updates * (c.e_mul_pj + 2 * c.e_add_pj), "addressing": 0.0, "weights": 0.0,
                 "membrane": 2 * updates * c.access_pj(n), "inout": 0.0}
        rows.append({"name": neuron.name, "kind": "neurons", "input_kind": "currents", **parts,
                     "total_pj": math.fsum(parts.values()), "spike_driven_pj": 0.0,
                     "counts": {"updates": updates, "membrane_accesses": 2 * updates, "buffers_words": {"membrane": n}}})
    return rows


def memory_energy(report: EnergyReport, model: nn.Module, costs: MemoryCosts) -> dict:
    """The memory-aware energy of one counted model, per layer and in total, per sample (pJ).

    Args:
        report: the counts (:class:`~.counting.SynapticOpCounter` for the SNN,
            :func:`~.counting.count_ann_macs` for the ANN teacher).
        model: the counted model (for weight counts and kernel sizes; not run).
        costs: the constants.

    Returns:
        ``{"costs": constants, "layers": rows, "totals": {component: pJ, "total_pj", "spike_driven_pj"}}``;
        each row has the five components, ``total_pj``, ``spike_driven_pj`` (the part that scales
        with the firing rate) and the counts behind them.
    """
    geometry = layer_geometry(model, report)
    rows = [_synapse_row(layer, geometry[layer.name], costs) for layer in report.layers]
    rows += _neuron_rows(report, costs)
    totals = {k: math.fsum(r[k] for r in rows) for k in (*COMPONENTS, "total_pj", "spike_driven_pj")}
    return {"costs": costs.constants(), "layers": rows, "totals": totals}


def break_even_rate(rate: float | None, snn_pj: float, snn_spike_driven_pj: float, ann_pj: float) -> float | None:
    """Firing rate at which the SNN spends as much as the ANN, scaling every spike count with the rate.

    ``E_SNN(r) = fixed + spike_driven * r / rate``; returns the r where it equals ``ann_pj``:
    0.0 when the fixed part alone exceeds the ANN (the SNN never wins), None without a measured rate.
    """
    if rate is None or not math.isfinite(rate) or rate <= 0 or snn_spike_driven_pj <= 0:
        return None
    fixed = snn_pj - snn_spike_driven_pj
    return max(0.0, rate * (ann_pj - fixed) / snn_spike_driven_pj)
