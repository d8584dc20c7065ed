"""Energy counts of the released code's student parts: the ReLU last block, the projector head and the
AvgPool shortcut read real values, so the layers after them cost MACs, never SOPs (hand-computed)."""

from __future__ import annotations

import pytest
import torch

from ckdsnn_events.energy.counting import SynapticOpCounter
from ckdsnn_events.models import build_student

T, B, K, SIZE, WIDTH = 2, 3, 3, 8, 2  # stages of 2, 4, 8 channels on 8x8, 4x4, 2x2 maps


def _count(student, x):
    with SynapticOpCounter(student, timesteps=T) as counter, torch.no_grad():
        _, record = student(x, return_spikes=True)
    return {layer.name: layer for layer in counter.report().layers}, record


def _student(**options):
    """Untrained; in train mode BN normalises with batch statistics, which keeps every stage firing."""
    torch.manual_seed(0)
    return build_student("resnet20-cifar16", num_classes=K, in_channels=2, width=WIDTH, **options).train()


def _frames():
    generator = torch.Generator().manual_seed(1)
    return (torch.rand(T, B, 2, SIZE, SIZE, generator=generator) < 0.5).float() * 2  # event counts 0 or 2


@pytest.mark.parametrize("last_block", ["lif", "relu"])
def test_projector_head_costs_macs_once_per_sample(last_block):
    layers, record = _count(_student(head="projector", last_block=last_block), _frames())
    fc2, fc1 = layers["fc.fc2"], layers["fc.fc1"]
    # fc2 reads the mean over T of the pooled last map (8 values), once per sample: 8 * 256 MACs;
    # fc1 reads fc2's 256 outputs: 256 * K MACs. No accumulates.
    assert (fc2.input_kind, fc2.steps_per_sample, fc2.macs, fc2.sops) == ("real", 1, 8 * 256, 0)
    assert (fc1.input_kind, fc1.steps_per_sample, fc1.macs, fc1.sops) == ("real", 1, 256 * K, 0)
    last = record[list(record)[-1]]
    assert last.sum() > 0 and bool(torch.all((last == 0) | (last == 1))) == (last_block == "lif")


def test_declared_real_layers_cost_macs_even_when_a_silent_stage_feeds_them_zeros():
    student = _student(head="projector", last_block="relu").eval()  # running statistics: the last stage is silent
    layers, record = _count(student, _frames())
    assert record["layer3.2.relu2"].sum() == 0  # all zeros: the values alone would pass for spikes
    assert (layers["fc.fc2"].input_kind, layers["fc.fc2"].macs) == ("real", 8 * 256)
    del student.fc.fc2.real_valued_input  # without the model's declaration the zeros count as no spikes
    undeclared, _ = _count(student, _frames())
    assert (undeclared["fc.fc2"].input_kind, undeclared["fc.fc2"].macs, undeclared["fc.fc2"].sops) == ("spikes", 0, 0)


def test_linear_head_after_the_relu_block_costs_macs_every_step():
    layers, record = _count(_student(last_block="relu"), _frames())
    relu_out = record["layer3.2.relu2"]
    assert not torch.all((relu_out == 0) | (relu_out == 1))  # real values, as the released code's ReLU
    fc = layers["fc"]
    # the pool of real values is not folded: fc costs every multiply of its T calls, 8 * K each
    assert (fc.input_kind, fc.steps_per_sample, fc.macs, fc.sops) == ("real", T, T * 8 * K, 0)
    # the LIF version of the same network folds the pool into fc: one accumulate per covered spike and class
    lif_layers, lif_record = _count(_student(), _frames())
    spikes = lif_record["layer3.2.lif2"].sum().item() / B
    assert (lif_layers["fc"].input_kind, lif_layers["fc"].macs) == ("pooled-spikes", 0)
    assert lif_layers["fc"].sops == pytest.approx(spikes * K)
    # the block's own convolutions read LIF spikes either way: SOPs
    assert layers["layer3.2.conv2"].input_kind == "spikes" and layers["layer3.2.conv2"].macs == 0


def test_avgpool_shortcut_conv_costs_macs():
    layers, record = _count(_student(downsample="avgpool"), _frames())
    pooled = torch.nn.functional.avg_pool2d(record["layer1.2.lif2"].flatten(0, 1), 2)
    assert not torch.all((pooled == 0) | (pooled == 1))  # fractions of spikes
    shortcut = layers["layer2.0.downsample.1"]
    # 1x1 conv 2 -> 4 channels on the pooled 4x4 map, at each of T steps: T * 16 * 2 * 4 MACs
    assert (shortcut.input_kind, shortcut.macs, shortcut.sops) == ("real", T * 16 * 2 * 4, 0)
    # the strided-conv shortcut reads the spikes themselves: SOPs, no MACs
    conv_layers, _ = _count(_student(downsample="conv"), _frames())
    assert conv_layers["layer2.0.downsample.0"].input_kind == "spikes"
    assert conv_layers["layer2.0.downsample.0"].macs == 0
