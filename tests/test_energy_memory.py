"""The memory-aware energy model, break-even rates, the report's energy-model options, and the
exact SOP counts against SpikingJelly 2.0's SynOpCounter on the same network, weights and spikes."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from conftest import assert_user_error
from ckdsnn_events.cli.main import main
from ckdsnn_events.energy.counting import SynapticOpCounter, count_ann_macs
from ckdsnn_events.energy.memory import (MEMORY_PRESETS, MemoryCosts, break_even_rate, layer_geometry, memory_costs,
                                         memory_energy)
from ckdsnn_events.energy.memory_report import energy_models_summary
from ckdsnn_events.errors import UserError

C = MEMORY_PRESETS["lemaire-int32"]


def test_access_cost_is_piecewise_linear_in_the_buffer_size():
    assert C.access_pj(0) == 0.0
    assert C.access_pj(2048) == pytest.approx(10.0)  # 2048 words x 4 bytes = 8 KiB
    assert C.access_pj(1024) == pytest.approx(5.0)
    assert C.access_pj(8192) == pytest.approx(20.0)  # 32 KiB
    assert C.access_pj(5120) == pytest.approx(15.0)
    assert C.access_pj(262144) == pytest.approx(100.0)  # 1 MiB
    assert C.access_pj(10**9) == pytest.approx(100.0)  # constant above (no DRAM level)


def test_memory_constants_presets_overrides_and_bad_values():
    assert memory_costs("lemaire-fp32").e_add_pj == 0.9
    changed = memory_costs("lemaire-int32", ["sram_8k_pj=5", "word_bytes = 2"])
    assert changed.sram_8k_pj == 5.0 and changed.word_bytes == 2.0 and "changed" in changed.source
    assert memory_costs("lemaire-int32", {"e_mul_pj": 1}).e_mul_pj == 1.0
    for bad, fragment in ((["sram_8k_pj=-1"], ">= 0"), (["e_add_pj=fast"], "must be a number"),
                          (["nope=1"], "unknown memory energy constant"), (["e_add_pj"], "KEY=VALUE"),
                          (["word_bytes=0"], "> 0"), (["sram_1m_pj=nan"], "finite")):
        with pytest.raises(UserError, match=fragment):
            memory_costs("lemaire-int32", bad)
    with pytest.raises(UserError, match="lemaire-int32"):
        memory_costs("7nm")


class Tiny(nn.Module):
    """conv (real input) -> spikes -> conv (spikes, padded, strided) -> spikes -> pool -> linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False)
        self.lin = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):  # x: (T*B, 2, 8, 8) real
        s1 = (self.conv1(x) > 0.3).float()
        s2 = (self.conv2(s1) > 0.2).float()
        return self.lin(s2.flatten(1))


def counted(model, x, n_samples):
    with SynapticOpCounter(model) as counter, torch.no_grad():
        model(x)
    return counter.report(n_samples=n_samples)


def test_memory_energy_by_hand_for_each_kind_of_layer():
    torch.manual_seed(0)
    model, x = Tiny().eval(), torch.randn(6, 2, 8, 8)
    report = counted(model, x, n_samples=2)
    geometry = layer_geometry(model, report)
    assert (geometry["conv2"].n_in, geometry["conv2"].n_out, geometry["conv2"].weights) == (256, 96, 216)
    result = memory_energy(report, model, C)
    rows = {r["name"]: r for r in result["layers"]}
    conv1, conv2, lin = (next(layer for layer in report.layers if layer.name == n) for n in ("conv1", "conv2", "lin"))
    assert conv1.input_kind == "real" and conv2.input_kind == "spikes" and lin.input_kind == "spikes"
    # real-valued conv1: 3 calls per sample, weights once per call
    assert rows["conv1"]["ops"] == pytest.approx(conv1.macs * 3.2)
    assert rows["conv1"]["weights"] == pytest.approx(3 * 72 * C.access_pj(72))
    assert rows["conv1"]["inout"] == pytest.approx(3 * (128 + 256) * C.access_pj(256))
    assert rows["conv1"]["addressing"] == pytest.approx(3 * (128 + 256 + 4 * 9) * 0.1)
    assert rows["conv1"]["membrane"] == 0 and rows["conv1"]["spike_driven_pj"] == 0
    # spike-fed conv2: per SOP a weight read and a membrane read + write, per spike an event
    sops, spikes = conv2.sops, conv2.input_spikes
    assert rows["conv2"]["weights"] == pytest.approx(sops * C.access_pj(216))
    assert rows["conv2"]["membrane"] == pytest.approx(2 * sops * C.access_pj(96))
    assert rows["conv2"]["inout"] == pytest.approx(2 * spikes * C.access_pj(256))
    assert rows["conv2"]["addressing"] == pytest.approx(sops * 0.1 + 2 * spikes * 3.2)
    assert rows["lin"]["addressing"] == pytest.approx(lin.sops * 0.1)  # no position arithmetic for a linear
    assert result["totals"]["total_pj"] == pytest.approx(sum(r["total_pj"] for r in result["layers"]))


def test_spike_driven_energy_scales_with_the_spikes_and_break_even():
    lin = nn.Linear(50, 10)
    x = torch.zeros(4, 50)
    x[:, :5] = 1
    one = memory_energy(counted(lin, x, 4), lin, C)["totals"]
    x[:, 5:10] = 1
    two = memory_energy(counted(lin, x, 4), lin, C)["totals"]
    assert two["spike_driven_pj"] == pytest.approx(2 * one["spike_driven_pj"])
    assert break_even_rate(0.1, 100.0, 60.0, 160.0) == pytest.approx(0.2)  # 40 + 60 * 0.2 / 0.1 = 160
    assert break_even_rate(0.1, 100.0, 60.0, 30.0) == 0.0  # fixed costs alone exceed the ANN: never
    assert break_even_rate(None, 100.0, 60.0, 160.0) is None


def test_models_summary_side_by_side_with_the_teacher():
    from ckdsnn_events.models import LIF, build_student, build_teacher

    torch.manual_seed(0)
    student, teacher = build_student("resnet20", 10, 2, width=4).eval(), build_teacher("resnet20", 10, 2, width=4)
    with SynapticOpCounter(student, 3, neurons=LIF) as counter, torch.no_grad():
        student(torch.rand(3, 2, 2, 12, 12) * 3)
    snn, ann = counter.report(), count_ann_macs(teacher, (2, 12, 12))
    models = energy_models_summary("all", snn, student, ann, teacher, C)
    rate = snn.totals()["neuron_firing_rate"]
    assert set(models["break_even"]) == {"ops", "memory"} and models["firing_rate"] == rate
    t = snn.totals()
    r = models["break_even"]["ops"]
    if r:  # at r the op-model energies are equal
        assert 0.9 * t["sops"] * r / rate + 4.6 * t["macs"] == pytest.approx(ann.totals()["energy_pj"], rel=1e-9)
    memory = models["memory"]
    assert {row["kind"] for row in memory["student"]["layers"]} == {"synapses", "neurons"}
    assert all(row["kind"] == "synapses" for row in memory["teacher"]["layers"])
    assert memory["ann_to_snn_energy"] == pytest.approx(memory["teacher"]["totals"]["total_pj"]
                                                         / memory["student"]["totals"]["total_pj"])
    assert set(energy_models_summary("ops", snn, student, ann, teacher, C)["break_even"]) == {"ops"}


# --- against SpikingJelly ----------------------------------------------------------------------------

def test_exact_sops_equal_spikingjelly_synopcounter():
    """Same network, weights and binary inputs: our exact SOPs per layer == SynOpCounter's."""
    op_counter = pytest.importorskip("spikingjelly.activation_based.op_counter")

    class Spiking(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(2, 4, 3, padding=1, bias=False)
            self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, bias=False)
            self.conv3 = nn.Conv2d(6, 6, 3, padding=1, groups=3, bias=False)
            self.lin = nn.Linear(6 * 4 * 4, 5)

        def forward(self, s):
            s = (self.conv1(s) > 0.2).float()
            s = (self.conv2(s) > 0.1).float()
            s = (self.conv3(s) > 0.1).float()
            return self.lin(s.flatten(1))

    torch.manual_seed(0)
    model = Spiking().eval()
    x = (torch.rand(5, 2, 8, 8) < 0.3).float()
    report = counted(model, x, n_samples=5)
    ours = {layer.name: layer.sops * 5 for layer in report.layers}
    counter = op_counter.SynOpCounter()
    with op_counter.DispatchCounterMode([counter], strict=False), torch.no_grad():
        model(x)
    scopes = counter.get_counts()
    theirs = {name: sum(scopes.get(f"Spiking.{name}", {}).values()) for name in ours}
    assert all(v > 0 for v in ours.values())
    assert ours == pytest.approx(theirs, rel=0, abs=1e-6)
    assert sum(ours.values()) == pytest.approx(counter.get_total())


def test_pooled_classifier_is_where_spikingjelly_differs():
    """An average pool before the classifier: we fold it (SOPs per pooled spike), SynOpCounter sees a
    real-valued input and counts no SynOps (the README explains the difference)."""
    op_counter = pytest.importorskip("spikingjelly.activation_based.op_counter")
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    x = (torch.rand(2, 4, 6, 6) < 0.4).float()
    report = counted(model, x, n_samples=2)
    fc = report.layers[0]
    assert fc.input_kind == "pooled-spikes" and fc.sops == pytest.approx(float(x.sum()) / 2 * 3)
    counter = op_counter.SynOpCounter()
    with op_counter.DispatchCounterMode([counter], strict=False), torch.no_grad():
        model(x)
    assert counter.get_total() == 0


# --- the report --------------------------------------------------------------------------------------

def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def student_run(trained_student, tmp_path_factory):
    run = tmp_path_factory.mktemp("memory-run") / "student"
    shutil.copytree(trained_student["run_dir"], run)
    return run


def test_energy_report_with_both_models(student_run):
    result = cli("energy", "--checkpoint", student_run / "best.pt", "--energy-model", "all",
                 "--memory-set", "sram_8k_pj=12")
    assert result.exit_code == 0, result.output
    assert "break-even firing rate (ops model)" in result.output and "(memory model)" in result.output
    summary = json.loads((student_run / "energy.json").read_text())
    models = summary["energy_models"]
    assert models["memory"]["costs"]["sram_8k_pj"] == 12.0
    md = (student_run / "energy.md").read_text()
    for text in ("break-even firing rate", "Memory-aware model", "sram_8k_pj = 12", "### ANN teacher",
                 "Source:", "E_AC = 0.9 pJ"):
        assert text in md, text
    assert (student_run / "energy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ops_only = cli("energy", "--checkpoint", student_run / "best.pt", "--energy-model", "ops", "--out",
                   student_run / "ops")
    assert ops_only.exit_code == 0 and "(memory model)" not in ops_only.output
    assert json.loads((student_run / "ops" / "energy.json").read_text())["energy_models"]["memory"] is None


@pytest.mark.parametrize("args, fragments", [
    (["--energy-model", "watts"], ["--energy-model", "memory"]),
    (["--memory-preset", "7nm"], ["--memory-preset", "lemaire-int32"]),
    (["--memory-set", "sram_8k_pj=-3"], ["sram_8k_pj", ">= 0"]),
    (["--memory-set", "e_mul_pj=lots"], ["e_mul_pj", "number"]),
    (["--memory-set", "dram_pj=640"], ["dram_pj", "valid"]),
])
def test_energy_model_bad_input_writes_nothing(student_run, tmp_path, args, fragments):
    out = tmp_path / "out"
    assert_user_error(cli("energy", "--checkpoint", student_run / "best.pt", "--out", out, *args), *fragments)
    assert not out.exists()


def test_memory_costs_reject_bad_direct_construction():
    with pytest.raises(UserError):
        MemoryCosts(0.1, -3.1, 10, 20, 100)
    assert math.isfinite(C.access_pj(3000.5))
