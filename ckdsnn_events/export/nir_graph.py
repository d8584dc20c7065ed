"""A spiking ResNet student as a NIR graph (Neuromorphic Intermediate Representation, ``nir`` 1.0.8).

The graph, for one sample and one time step (NIR shapes carry no batch or time dimension)::

    input (C, H, W)
      -> conv1 (Conv2d, bn1 folded) -> lif (LIF | IF)
      -> per block layer{i}.{j}:
           conv1 (bn1 folded) -> lif1 -> conv2 (bn2 folded) --\\
           shortcut: the block's input spikes (identity)   ----+--> lif2    (NIR sums the edges
                     or downsample (Conv2d, BN folded) ----/              into a node)
      -> avgpool (SumPool2d over the whole H x W map) -> flatten (Flatten) -> fc (Affine) -> output

* BatchNorm (eval mode: running statistics) folds into the convolution before it, with its eps:
  ``w' = w * g / sqrt(var + eps)``, ``b' = (b - mean) * g / sqrt(var + eps) + beta``, computed in
  float64 and stored as float32.
* The global average pool is a ``SumPool2d`` whose ``1 / (H W)`` is folded into the weights of the
  ``Affine`` after it (exact: both are linear), so no ``Scale`` node is needed, which Norse's
  ``from_nir`` would skip without a word. An ``nn.AvgPool2d`` inside a shortcut (avgpool
  downsample) becomes a ``SumPool2d`` with its ``1 / k^2`` folded into the convolution after it.
  ``pool="avg"`` writes ``AvgPool2d`` nodes instead (weights as trained), for snnTorch.
* Neurons: :mod:`.neuron_map` (our ``decay``/threshold/reset and ``dt`` -> ``tau``, ``r``, ...).
* The output node carries the classifier's output at every step; our logits are its mean over the
  T steps (``graph.metadata["readout"]``).
* A student on a direct-encoded image (the same frame at every step) is expressible as it is: the
  stem convolution on the constant frame gives the same current each step; our model only computes
  it once. A target must then accept real-valued input at the first layer.

Everything the walk does not consume is refused with a :class:`~ckdsnn_events.errors.UserError`
naming the layer, so no module is ever dropped: a ReLU (non-spiking last block), an extra head,
attention, SEW's spike-wise AND/IAND connections, a subtractive reset, any module type or
student class written after this file.
"""

from __future__ import annotations

from typing import Optional

import nir
import numpy as np
import torch
from torch import nn

from ckdsnn_events.errors import UserError
from ckdsnn_events.export.neuron_map import DEFAULT_DT, check_dt, neuron_node
from ckdsnn_events.models.neurons import LIF
from ckdsnn_events.models.spiking_resnet import SpikingBasicBlock, SpikingResNet

__all__ = ["POOLS", "student_to_nir"]

POOLS = ("sum", "avg")

# what to tell the user for module types that have no NIR counterpart
_HINTS = {
    nn.ReLU: "a real-valued ReLU layer has no NIR neuron; train with model.last_block=lif",
    nn.Linear: "an extra linear (projector) head is not part of the exported classifier; train without it "
               "(the default head)",
    nn.MultiheadAttention: "attention products (spike x spike matrix products) have no NIR primitive",
}


def _refuse(name: str, module: nn.Module, why: Optional[str] = None) -> UserError:
    # a container (e.g. a projector head as nn.Sequential) takes the hint of the first layer inside it
    hint = why or next((h for m in module.modules() for t, h in _HINTS.items() if isinstance(m, t)), None)
    hint = hint or "the NIR exporter does not know this layer type; export a SpikingResNet student"
    return UserError(f"cannot export layer '{name}' ({type(module).__name__}) to NIR: {hint}.")


class _Builder:
    """Nodes and edges of the graph, and the names of the modules already turned into nodes."""

    def __init__(self, model: SpikingResNet, shapes: dict, dt: float, pool: str):
        self.model, self.shapes, self.dt, self.pool = model, shapes, dt, pool
        self.nodes: dict[str, nir.NIRNode] = {}
        self.edges: list[tuple[str, str]] = []
        self.used: set[str] = set()

    def add(self, name: str, node: nir.NIRNode, sources: tuple[str, ...]) -> str:
        self.nodes[name] = node
        self.edges += [(s, name) for s in sources]
        return name

    def conv(self, name: str, conv: nn.Module, bn: Optional[nn.Module], bn_name: Optional[str],
             source: str, scale: float = 1.0) -> str:
        """A Conv2d node with the BN after it (and a pending pooling factor ``scale``) folded in."""
        if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise _refuse(name, conv, "only nn.Conv2d with numeric zero padding is exported")
        w = conv.weight.detach().double() * scale
        b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        if bn is not None:
            if type(bn) is not nn.BatchNorm2d or bn.running_mean is None:
                raise _refuse(bn_name, bn, "only nn.BatchNorm2d with running statistics folds into a convolution")
            k = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
            if bn.affine:
                k = k * bn.weight.detach().double()
            b = (b - bn.running_mean.double()) * k + (bn.bias.detach().double() if bn.affine else 0.0)
            w = w * k[:, None, None, None]
            self.used.add(bn_name)
        self.used.add(name)
        node = nir.Conv2d(input_shape=tuple(self.shapes[name][0][-2:]), weight=w.float().numpy(),
                          stride=tuple(conv.stride), padding=tuple(conv.padding), dilation=tuple(conv.dilation),
                          groups=conv.groups, bias=b.float().numpy())
        return self.add(name, node, (source,))

    def neuron(self, name: str, lif: nn.Module, sources: tuple[str, ...]) -> str:
        if type(lif) is not LIF:
            known = isinstance(lif, tuple(_HINTS))
            raise _refuse(name, lif, None if known else "only the LIF neuron of ckdsnn_events.models.neurons "
                                                        "maps to nir.LIF / nir.IF")
        self.used.add(name)
        return self.add(name, neuron_node(name, lif.params, tuple(self.shapes[name][1][-3:]), self.dt), sources)

    def shortcut(self, prefix: str, block: SpikingBasicBlock, source: str) -> str:
        """The downsample path of a block (pooling, conv, BN in any order torch runs them)."""
        name = f"{prefix}.downsample"
        if type(block.downsample) is not nn.Sequential:
            raise _refuse(name, block.downsample, "a shortcut must be an nn.Sequential of pooling, conv and BN")
        self.used.add(name)
        layers = list(block.downsample.named_children())
        scale, i = 1.0, 0
        while i < len(layers):
            child, module = f"{name}.{layers[i][0]}", layers[i][1]
            if type(module) is nn.AvgPool2d:
                source = self.sum_pool(child, module, source)
                scale = scale / _pool_area(module) if self.pool == "sum" else scale
                i += 1
            elif type(module) is nn.Conv2d:
                bn = layers[i + 1] if i + 1 < len(layers) and isinstance(layers[i + 1][1], nn.BatchNorm2d) else None
                source = self.conv(child, module, bn[1] if bn else None, f"{name}.{bn[0]}" if bn else None,
                                   source, scale)
                scale, i = 1.0, i + (2 if bn else 1)
            else:
                raise _refuse(child, module)
        if scale != 1.0:
            raise _refuse(name, block.downsample, "an average pool must be followed by a convolution")
        return source

    def sum_pool(self, name: str, pool: nn.AvgPool2d, source: str) -> str:
        if pool.ceil_mode or _pair(pool.padding) != (0, 0):
            raise _refuse(name, pool, "only unpadded floor-mode average pooling maps to SumPool2d")
        self.used.add(name)
        kernel = _pair(pool.kernel_size)
        stride = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
        node = nir.SumPool2d if self.pool == "sum" else nir.AvgPool2d
        return self.add(name, node(kernel_size=np.array(kernel), stride=np.array(stride), padding=np.array((0, 0))),
                        (source,))


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _pool_area(pool: nn.AvgPool2d) -> int:
    kh, kw = _pair(pool.kernel_size)
    return kh * kw


def _shapes(model: nn.Module, input_shape: tuple[int, int, int]) -> dict[str, tuple[tuple, tuple]]:
    """(input shape, output shape) of every module, from one forward pass of one zero sample, T = 1."""
    shapes: dict[str, tuple[tuple, tuple]] = {}
    handles = []
    for name, module in model.named_modules():
        def hook(mod, args, out, name=name):
            if args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor):
                shapes[name] = (tuple(args[0].shape), tuple(out.shape))
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    return shapes


def student_to_nir(model: nn.Module, input_shape: tuple[int, int, int], dt: float = DEFAULT_DT,
                   metadata: Optional[dict] = None, pool: str = "sum") -> nir.NIRGraph:
    """The NIR graph of a spiking ResNet student (see the module docstring for its layout).

    Args:
        model: a :class:`~ckdsnn_events.models.spiking_resnet.SpikingResNet` (put in eval mode
            here: BN folds its running statistics).
        input_shape: (C, H, W) of one input frame.
        dt: simulation time step in seconds (it sets the LIF time constants, see :mod:`.neuron_map`).
        metadata: extra entries for ``graph.metadata`` (numbers and strings).
        pool: ``"sum"`` (``SumPool2d``, its ``1/k^2`` folded into the next layer's weights: read by
            Norse, Lava, Sinabs, SpiNNaker2, Spyx) or ``"avg"`` (``AvgPool2d``, weights as trained:
            read by snnTorch, which has no SumPool2d).

    Returns:
        the type-checked ``nir.NIRGraph``; nodes are named after our modules (``"layer1.0.lif1"``).

    Raises:
        UserError: naming the first layer NIR cannot express, and what to change.
    """
    dt = check_dt(dt)
    if pool not in POOLS:
        raise UserError(f"unknown --pool {pool!r}; choose one of: {', '.join(POOLS)}.")
    if type(model) is not SpikingResNet:
        raise _refuse("(model)", model, "only SpikingResNet students are exported; teachers are ANNs, not SNNs")
    model = model.eval()
    b = _Builder(model, _shapes(model, tuple(input_shape)), dt, pool)
    b.used.update({"", *model.stage_names})
    b.add("input", nir.Input(input_type=np.array(input_shape)), ())
    source = b.neuron("lif", model.lif, (b.conv("conv1", model.conv1, model.bn1, "bn1", "input"),))
    for stage in model.stage_names:
        for j, block in enumerate(getattr(model, stage)):
            prefix = f"{stage}.{j}"
            if type(block) is not SpikingBasicBlock:
                raise _refuse(prefix, block, "only the tdBN BasicBlock (currents added before the output LIF) "
                                             "is exported; SEW blocks combine spikes by ADD/AND/IAND")
            b.used.add(prefix)
            out = b.neuron(f"{prefix}.lif1", block.lif1,
                           (b.conv(f"{prefix}.conv1", block.conv1, block.bn1, f"{prefix}.bn1", source),))
            out = b.conv(f"{prefix}.conv2", block.conv2, block.bn2, f"{prefix}.bn2", out)
            residual = source if block.downsample is None else b.shortcut(prefix, block, source)
            source = b.neuron(f"{prefix}.lif2", block.lif2, (out, residual))
    gap = model.avgpool
    if type(gap) is not nn.AdaptiveAvgPool2d or _pair(gap.output_size) != (1, 1):
        raise _refuse("avgpool", gap, "only a global average pool (AdaptiveAvgPool2d(1)) before fc is exported")
    channels, h, w = b.shapes["avgpool"][0][-3:]
    b.used.update({"avgpool", "fc"})
    node = nir.SumPool2d if pool == "sum" else nir.AvgPool2d
    b.add("avgpool", node(kernel_size=np.array((h, w)), stride=np.array((h, w)), padding=np.array((0, 0))), (source,))
    b.add("flatten", nir.Flatten(input_type={"input": np.array((channels, 1, 1))}, start_dim=0, end_dim=-1),
          ("avgpool",))
    fc = model.fc
    if type(fc) is not nn.Linear:
        raise _refuse("fc", fc, "the classifier must be one nn.Linear")
    weight = (fc.weight.detach().double() / (h * w if pool == "sum" else 1)).float().numpy()
    bias = (fc.bias.detach() if fc.bias is not None else torch.zeros(fc.out_features)).float().numpy()
    b.add("fc", nir.Affine(weight=weight, bias=bias), ("flatten",))
    b.add("output", nir.Output(output_type=np.array((fc.out_features,))), ("fc",))
    for name, module in model.named_modules():
        if name not in b.used:
            raise _refuse(name, module)
    meta = {"producer": "ckdsnn-events", "dt": dt, "readout": "logits = mean over time steps of output",
            "arch": getattr(model, "arch", ""), **(metadata or {})}
    return nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata=meta, type_check=True)
