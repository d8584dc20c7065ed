"""A small reference interpreter of NIR graphs, and the round-trip check of an export against its model.

:func:`run_nir` executes the primitives the exporter writes (and ``Scale``/``Linear``), one time
step at a time in topological order, with NIR's semantics: a node's input is the sum of the
outputs of all nodes with an edge into it; neurons are integrated by forward Euler with step
``dt`` (see :mod:`.neuron_map`). It is an independent reading of the file, used by the tests
next to Norse's ``from_nir`` and by the exporter's own check (:func:`compare_with_model`).
"""

from __future__ import annotations

from collections import OrderedDict
from graphlib import TopologicalSorter

import nir
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["run_nir", "compare_with_model", "NEURON_TYPES"]

NEURON_TYPES = (nir.LIF, nir.IF)


def _t(a, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=dtype)


def _apply(node: nir.NIRNode, x: torch.Tensor) -> torch.Tensor:
    """A stateless node on a batched (B, ...) input."""
    if isinstance(node, (nir.Input, nir.Output)):
        return x
    if isinstance(node, nir.Conv2d):
        return F.conv2d(x, _t(node.weight), _t(node.bias), tuple(node.stride), tuple(node.padding),
                        tuple(node.dilation), node.groups)
    if isinstance(node, nir.SumPool2d):
        return F.avg_pool2d(x, tuple(int(k) for k in node.kernel_size), tuple(int(s) for s in node.stride),
                            tuple(int(p) for p in node.padding), divisor_override=1)
    if isinstance(node, nir.AvgPool2d):
        return F.avg_pool2d(x, tuple(int(k) for k in node.kernel_size), tuple(int(s) for s in node.stride),
                            tuple(int(p) for p in node.padding))
    if isinstance(node, nir.Flatten):  # NIR dims exclude the batch
        end = node.end_dim if node.end_dim < 0 else node.end_dim + 1
        return x.flatten(node.start_dim + 1, end)
    if isinstance(node, nir.Affine):
        return F.linear(x, _t(node.weight), _t(node.bias))
    if isinstance(node, nir.Linear):
        return F.linear(x, _t(node.weight))
    if isinstance(node, nir.Scale):
        return x * _t(node.scale)
    raise NotImplementedError(f"the reference interpreter has no {type(node).__name__} node")


def _neuron_step(node: nir.NIRNode, i: torch.Tensor, v: torch.Tensor, dt: float):
    """One Euler step of a NIR LIF / IF: returns (spikes, new membrane)."""
    if isinstance(node, nir.LIF):
        v = v + (dt / _t(node.tau, i.dtype)) * (_t(node.v_leak, i.dtype) - v + _t(node.r, i.dtype) * i)
    else:
        v = v + dt * _t(node.r, i.dtype) * i
    z = v > _t(node.v_threshold, i.dtype)
    return z.to(i.dtype), torch.where(z, _t(node.v_reset, i.dtype), v)


def run_nir(graph: nir.NIRGraph, x: torch.Tensor, dt: float) -> tuple[torch.Tensor, "OrderedDict[str, torch.Tensor]"]:
    """Run ``graph`` on a time-major batch.

    Args:
        graph: a graph with one Input and one Output node.
        x: (T, B, *input shape) float input.
        dt: the time step the graph was exported for, seconds.

    Returns:
        ``(outputs (T, B, K), spikes)``: the Output node at every step, and the (T, B, ...) spikes
        of every neuron node by name.
    """
    preds: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        preds[dst].append(src)
    order = list(TopologicalSorter(preds).static_order())
    (inp,), (out,) = list(graph.inputs), list(graph.outputs)
    state: dict[str, torch.Tensor] = {}
    spikes: dict[str, list[torch.Tensor]] = {n: [] for n, node in graph.nodes.items() if isinstance(node, NEURON_TYPES)}
    outputs = []
    for t in range(x.shape[0]):
        values: dict[str, torch.Tensor] = {}
        for name in order:
            node = graph.nodes[name]
            if name == inp:
                values[name] = x[t]
                continue
            total = values[preds[name][0]]
            for src in preds[name][1:]:
                total = total + values[src]
            if isinstance(node, NEURON_TYPES):
                z, state[name] = _neuron_step(node, total, state.get(name, torch.zeros_like(total)), dt)
                spikes[name].append(z)
                values[name] = z
            else:
                values[name] = _apply(node, total)
        outputs.append(values[out])
    return torch.stack(outputs), OrderedDict((k, torch.stack(v)) for k, v in spikes.items())


@torch.no_grad()
def compare_with_model(model: torch.nn.Module, graph: nir.NIRGraph, x: torch.Tensor, dt: float) -> dict:
    """Run our model and the NIR graph on the same (T, B, C, H, W) input and compare them.

    Returns:
        ``{"spikes": total compared, "differing": how many differ, "fraction": their ratio,
        "per_layer": {name: fraction}, "max_logit_diff": max |logits - mean_T(output)|,
        "missing": spike layers of the model without a NIR node}``.
    """
    logits, ours = model.eval()(x, return_spikes=True)
    outputs, theirs = run_nir(graph, x, dt)
    per_layer, total, differing = {}, 0, 0
    for name, s in ours.items():
        if name not in theirs:
            continue
        d = int((s != theirs[name]).sum())
        per_layer[name] = d / s.numel()
        total, differing = total + s.numel(), differing + d
    return {"spikes": total, "differing": differing, "fraction": differing / max(total, 1), "per_layer": per_layer,
            "max_logit_diff": float((logits - outputs.mean(0)).abs().max()),
            "missing": [k for k in ours if k not in theirs]}
