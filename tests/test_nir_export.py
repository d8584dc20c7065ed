"""NIR export: the neuron mapping, BN folding, graph structure, refusals, and the round trip through
``nir.write`` / ``nir.read`` into our reference interpreter and into Norse (``from_nir``'s node map)."""

from __future__ import annotations

import os
import re
from dataclasses import asdict
from functools import partial

import nir
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from conftest import assert_user_error
from ckdsnn_events.checkpoints import save_checkpoint
from ckdsnn_events.cli.main import main
from ckdsnn_events.config import to_dict
from ckdsnn_events.errors import UserError
from ckdsnn_events.export import compare_with_model, run_nir, student_to_nir
from ckdsnn_events.export.neuron_map import neuron_node, neuron_parameters
from ckdsnn_events.export.nir_run import _neuron_step
from ckdsnn_events.models import LIFParameters, build_student, build_teacher, lif_sequence

DT = 1e-3


def student(decay=0.5, v_th=1.0, reset="hard", width=8, seed=0):
    """A resnet20 student with non-trivial BN statistics (so that folding matters) in eval mode."""
    torch.manual_seed(seed)
    model = build_student("resnet20", 10, 2, width=width, neuron=LIFParameters(decay=decay, v_th=v_th, reset=reset))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.6, 1.6)
            m.bias.data.uniform_(-0.1, 0.3)
            m.eps = 1e-3
    return model.eval()


def inputs(steps=4, batch=3, size=16, seed=1):
    return torch.rand(steps, batch, 2, size, size, generator=torch.Generator().manual_seed(seed)) * 2


def norse_module(graph):
    """The graph as Norse runs it: Norse's own node importer, wired by nirtorch's interpreter.

    (``norse.torch.from_nir`` wires with nirtorch's deprecated GraphExecutor, which orders a
    projection shortcut after the block that needs it; ``nir_to_torch`` orders the graph correctly.)
    """
    import nirtorch
    from norse.torch.utils.import_nir import _import_norse_module

    importer = partial(_import_norse_module, dt=DT)
    return nirtorch.nir_to_torch(graph, {t: importer for t in (nir.Affine, nir.Conv2d, nir.Flatten, nir.LIF,
                                                               nir.IF, nir.SumPool2d)})


def run_norse(graph, x):
    """(T, B, ...) input -> (outputs (T, B, K), spikes by node name), one sample at a time: Norse maps
    nir.Flatten(start_dim=0) to torch's Flatten(0), which only fits unbatched tensors."""
    net = norse_module(graph)
    spikes: dict[str, list] = {}
    for name, node in graph.nodes.items():
        if isinstance(node, (nir.LIF, nir.IF)):
            key = name.replace(".", "_")
            getattr(net, key).register_forward_hook(lambda m, a, out, name=name: spikes.setdefault(name, []).append(out[0]))
    outputs = []
    with torch.no_grad():
        for b in range(x.shape[1]):
            state = None
            for t in range(x.shape[0]):
                out, state = net(x[t, b], state)
                outputs.append(out)
    steps, batch = x.shape[:2]
    stack = lambda seq: torch.stack(seq).unflatten(0, (batch, steps)).transpose(0, 1)  # noqa: E731
    return stack(outputs), {k: stack(v) for k, v in spikes.items()}


# --- the neuron mapping ----------------------------------------------------------------------------

def test_mapping_table_and_its_inverse():
    lif = neuron_node("l", LIFParameters(decay=0.5, v_th=1.0, v_reset=-0.5), (2, 3), DT)
    assert isinstance(lif, nir.LIF) and lif.tau.shape == (2, 3)
    np.testing.assert_allclose(lif.tau, 2e-3)
    np.testing.assert_allclose(lif.r, 1.0)
    np.testing.assert_allclose(lif.v_leak, 0.0)
    np.testing.assert_allclose(lif.v_threshold, 0.5)
    np.testing.assert_allclose(lif.v_reset, -0.25)
    iff = neuron_node("l", LIFParameters(decay=1.0, v_th=0.7), (4,), DT)
    assert isinstance(iff, nir.IF)
    np.testing.assert_allclose(iff.r, 1000.0)
    np.testing.assert_allclose(iff.v_threshold, 0.7)
    for decay, v_th, v_reset, dt in ((0.5, 1.0, 0.0, 1e-3), (0.25, 0.3, -0.1, 1e-4), (0.9, 2.0, 0.5, 0.01),
                                     (1.0, 1.5, 0.0, 1e-3)):
        back = neuron_parameters(neuron_node("l", LIFParameters(decay=decay, v_th=v_th, v_reset=v_reset), (1,), dt), dt)
        assert back == pytest.approx({"decay": decay, "v_th": v_th, "v_reset": v_reset}, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("decay, v_reset", [(0.5, 0.0), (0.25, -0.2), (1.0, 0.0)])
def test_nir_neuron_steps_like_ours_and_like_norse(decay, v_reset):
    """One neuron layer, many steps: our fused LIF, NIR's Euler step, Norse's cell on the node."""
    from norse.torch.utils.import_nir import _import_norse_module

    params = LIFParameters(decay=decay, v_th=1.0, v_reset=v_reset)
    x = torch.randn(30, 4000, generator=torch.Generator().manual_seed(0)) + 0.6
    ours, _ = lif_sequence(x, params)
    node = neuron_node("l", params, (4000,), DT)
    v, nir_spikes = torch.zeros(4000), []
    for t in range(30):
        z, v = _neuron_step(node, x[t], v, DT)
        nir_spikes.append(z)
    nir_spikes = torch.stack(nir_spikes)
    assert 0.05 < float(ours.mean()) < 0.9
    assert float((ours != nir_spikes).float().mean()) < 1e-4
    if v_reset == 0.0:  # Norse's importer does not read v_reset (it resets to its default, 0)
        cell, state, norse_spikes = _import_norse_module(node, ignore_warnings=True, dt=DT), None, []
        for t in range(30):
            z, state = cell(x[t], state)
            norse_spikes.append(z)
        assert float((ours != torch.stack(norse_spikes)).float().mean()) < 1e-4


def test_batchnorm_is_folded_with_its_eps():
    model = student()
    model.bn1.eps = 0.5  # large enough that forgetting it changes the currents a lot
    graph = student_to_nir(model, (2, 16, 16), DT)
    node = graph.nodes["conv1"]
    x = torch.rand(3, 2, 16, 16)
    folded = torch.nn.functional.conv2d(x, torch.from_numpy(node.weight), torch.from_numpy(node.bias), 1, 1)
    with torch.no_grad():
        expected = model.bn1(model.conv1(x))
    torch.testing.assert_close(folded, expected, rtol=1e-5, atol=1e-5)
    g, var = model.bn1.weight.detach(), model.bn1.running_var
    no_eps = torch.from_numpy(node.weight) * (torch.sqrt(var + 0.5) / torch.sqrt(var))[:, None, None, None]
    assert (no_eps - torch.from_numpy(node.weight)).abs().max() > 0.1 * g.abs().min()


# --- the graph -------------------------------------------------------------------------------------

def test_graph_structure():
    model = student()
    graph = student_to_nir(model, (2, 16, 16), DT)
    types = {name: type(node).__name__ for name, node in graph.nodes.items()}
    assert set(model.spike_keys) <= set(graph.nodes) and all(types[k] == "LIF" for k in model.spike_keys)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert sorted(n for n, t in types.items() if t == "Conv2d") == sorted(convs)
    assert not any(t in ("Scale", "AvgPool2d") for t in types.values())
    into = lambda name: sorted(s for s, d in graph.edges if d == name)  # noqa: E731
    assert into("layer1.1.lif2") == ["layer1.0.lif2", "layer1.1.conv2"]  # identity shortcut: a second edge
    assert into("layer2.0.lif2") == ["layer2.0.conv2", "layer2.0.downsample.0"]  # projection shortcut
    assert into("layer2.0.downsample.0") == ["layer1.2.lif2"]
    pool, fc = graph.nodes["avgpool"], graph.nodes["fc"]
    assert tuple(pool.kernel_size) == (4, 4) and type(pool).__name__ == "SumPool2d"
    np.testing.assert_allclose(fc.weight, model.fc.weight.detach().numpy() / 16, rtol=1e-6)
    assert graph.metadata["dt"] == DT and "mean over time" in graph.metadata["readout"]


@pytest.mark.parametrize("decay", [0.5, 1.0], ids=["lif", "if"])
def test_round_trip_through_the_file_reference_interpreter_and_norse(tmp_path, decay):
    model = student(decay=decay, v_th=1.0 if decay < 1 else 2.0)
    x = inputs()
    nir.write(tmp_path / "m.nir", student_to_nir(model, (2, 16, 16), DT))
    graph = nir.read(tmp_path / "m.nir")
    check = compare_with_model(model, graph, x, DT)
    assert check["missing"] == [] and check["spikes"] > 10**5
    assert check["fraction"] < 1e-4 and check["max_logit_diff"] < 1e-4, check
    with torch.no_grad():
        logits, ours = model(x, return_spikes=True)
    assert 0.01 < float(torch.cat([s.flatten() for s in ours.values()]).mean()) < 0.5  # the layers do fire
    outputs, norse_spikes = run_norse(graph, x)
    assert set(norse_spikes) == set(ours)
    differing = sum(int((ours[k] != norse_spikes[k]).sum()) for k in ours)
    total = sum(s.numel() for s in ours.values())
    assert differing / total < 1e-4
    torch.testing.assert_close(outputs.mean(0), logits, atol=1e-4, rtol=0)


def test_interpreter_sums_edges_and_scales():
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([3])), "a": nir.Scale(scale=np.array([2.0, 2.0, 2.0])),
               "b": nir.Affine(weight=np.eye(3, dtype=np.float32), bias=np.ones(3, dtype=np.float32)),
               "output": nir.Output(output_type=np.array([3]))},
        edges=[("input", "a"), ("input", "b"), ("a", "output"), ("b", "output")], metadata={})
    out, spikes = run_nir(graph, torch.ones(2, 1, 3), DT)
    torch.testing.assert_close(out, torch.full((2, 1, 3), 4.0))
    assert spikes == {}


# --- refusals --------------------------------------------------------------------------------------

def test_subtract_reset_is_refused_naming_the_option():
    with pytest.raises(UserError, match=r"layer 'lif'.*model.reset=hard"):
        student_to_nir(student(reset="subtract"), (2, 16, 16), DT)


def test_relu_last_block_is_refused_naming_the_option():
    model = student()
    model.layer3[2].lif2 = nn.ReLU()
    with pytest.raises(UserError, match=r"layer3.2.lif2.*ReLU.*model.last_block=lif"):
        student_to_nir(model, (2, 16, 16), DT)


def test_an_extra_module_is_refused_never_dropped():
    model = student()
    model.projector = nn.Sequential(nn.Linear(32, 32), nn.ReLU())
    with pytest.raises(UserError, match=r"layer 'projector'.*projector\) head"):
        student_to_nir(model, (2, 16, 16), DT)
    model = student()
    model.layer2[0].downsample = nn.Sequential(nn.MaxPool2d(1), *model.layer2[0].downsample)
    with pytest.raises(UserError, match=r"layer2.0.downsample.0.*MaxPool2d"):
        student_to_nir(model, (2, 16, 16), DT)


def test_avgpool_shortcut_becomes_sumpool_with_the_factor_folded():
    model = student()
    block = model.layer2[0]
    conv, bn = block.downsample
    new = nn.Conv2d(conv.in_channels, conv.out_channels, 1, bias=False)
    new.weight.data.copy_(conv.weight)
    block.downsample = nn.Sequential(nn.AvgPool2d(2), new, bn)  # the CKDSNN code's shortcut form
    x = inputs()
    graph = student_to_nir(model, (2, 16, 16), DT)
    assert type(graph.nodes["layer2.0.downsample.0"]).__name__ == "SumPool2d"
    check = compare_with_model(model, graph, x, DT)
    assert check["fraction"] < 1e-4 and check["max_logit_diff"] < 1e-4, check


def test_teacher_and_unknown_models_are_refused():
    with pytest.raises(UserError, match="teachers are ANNs"):
        student_to_nir(build_teacher("resnet20", 10, 2, width=8), (2, 16, 16), DT)
    with pytest.raises(UserError, match="--dt"):
        student_to_nir(student(), (2, 16, 16), dt=0.0)


# --- the command -----------------------------------------------------------------------------------

def save_student(path, model=None, **model_options):
    """A student checkpoint as the trainer writes it (config included), without training."""
    from ckdsnn_events.pipelines.train import resolve_config

    options = {"model.student_width": 8, "model.teacher_width": 8, **{f"model.{k}": v for k, v in model_options.items()}}
    config = resolve_config("digits-dvs", options=options)
    model = model or student(decay=config.model.decay, reset=config.model.reset)
    neuron = LIFParameters(config.model.decay, config.model.threshold, reset=config.model.reset)
    save_checkpoint(path, {"kind": "student", "arch": config.model.student, "width": 8, "num_classes": 10,
                           "in_channels": 2, "neuron": asdict(neuron), "config": to_dict(config),
                           "model": model.state_dict(), "best_val": 0.0,
                           "dataset": {"name": "digits-dvs", "classes": [str(i) for i in range(10)],
                                       "input_size": [16, 16], "timesteps": 3}, "epoch": 1})
    return path


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_export_command_writes_a_checked_file(tmp_path):
    ckpt = save_student(tmp_path / "best.pt")
    out = tmp_path / "model.nir"
    result = cli("export", "--checkpoint", ckpt, "--format", "nir", "--out", out)
    assert result.exit_code == 0, result.output
    assert "0 of" in result.output and "spikes differ" in result.output
    graph = nir.read(out)
    assert graph.metadata["timesteps"] == 3 and "layer3.2.lif2" in graph.nodes
    assert sorted(os.listdir(tmp_path)) == ["best.pt", "model.nir"]
    assert_user_error(cli("export", "--checkpoint", ckpt, "--out", out), "--out", "--overwrite")
    result = cli("export", "--checkpoint", ckpt, "--out", out, "--overwrite", "--dt", "0.01", "--verify-samples", "0")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(nir.read(out).nodes["lif"].tau, 0.02)


def test_export_of_a_trained_student_and_refusal_of_its_teacher(trained_student, tmp_path):
    out = tmp_path / "student.nir"
    result = cli("export", "--checkpoint", os.path.join(trained_student["run_dir"], "best.pt"), "--out", out)
    assert result.exit_code == 0, result.output
    fraction = float(re.search(r"\(fraction ([0-9.e+-]+)\)", result.output).group(1))
    assert fraction < 1e-4, result.output
    assert_user_error(cli("export", "--checkpoint", trained_student["teacher_checkpoint"], "--out", tmp_path / "t.nir"),
                      "teacher", "distill")
    assert not (tmp_path / "t.nir").exists()


@pytest.mark.parametrize("case", ["subtract", "missing-dir", "read-only-dir", "dt-negative", "dt-text", "format",
                                  "not-a-checkpoint", "out-is-dir"])
def test_export_bad_input_is_one_error_and_writes_nothing(tmp_path, case):
    ckpt = save_student(tmp_path / "best.pt", reset="subtract" if case == "subtract" else "hard")
    out, extra, fragments = tmp_path / "m.nir", [], ["--out"]
    if case == "subtract":
        fragments = ["layer 'lif'", "model.reset=hard"]
    elif case == "missing-dir":
        out = tmp_path / "nowhere" / "m.nir"
    elif case == "read-only-dir":
        if os.geteuid() == 0:
            pytest.skip("root can write into read-only folders")
        (tmp_path / "ro").mkdir(mode=0o500)
        out = tmp_path / "ro" / "m.nir"
    elif case == "dt-negative":
        extra, fragments = ["--dt", "-1"], ["--dt"]
    elif case == "dt-text":
        extra, fragments = ["--dt", "fast"], ["--dt"]
    elif case == "format":
        extra, fragments = ["--format", "onnx"], ["--format"]
    elif case == "not-a-checkpoint":
        ckpt.write_bytes(b"not a checkpoint")
        fragments = ["--checkpoint"]
    elif case == "parent-is-file":
        out = ckpt / "m.nir"
    elif case == "out-is-dir":
        out.mkdir()
        fragments = ["--out", "directory"]
    before = sorted(os.listdir(out.parent)) if out.parent.is_dir() else None
    assert_user_error(cli("export", "--checkpoint", ckpt, "--out", out, *extra), *fragments)
    if before is not None:
        assert sorted(os.listdir(out.parent)) == before


def test_avg_pool_form_for_snntorch_round_trips():
    model = student()
    block = model.layer2[0]
    conv, bn = block.downsample
    new = nn.Conv2d(conv.in_channels, conv.out_channels, 1, bias=False)
    new.weight.data.copy_(conv.weight)
    block.downsample = nn.Sequential(nn.AvgPool2d(2), new, bn)
    graph = student_to_nir(model, (2, 16, 16), DT, pool="avg")
    types = {name: type(node).__name__ for name, node in graph.nodes.items()}
    assert types["avgpool"] == "AvgPool2d" and types["layer2.0.downsample.0"] == "AvgPool2d"
    assert "SumPool2d" not in types.values()
    np.testing.assert_array_equal(graph.nodes["fc"].weight, model.fc.weight.detach().numpy())
    check = compare_with_model(model, graph, inputs(), DT)
    assert check["fraction"] < 1e-4 and check["max_logit_diff"] < 1e-4, check
    with pytest.raises(UserError, match="--pool"):
        student_to_nir(model, (2, 16, 16), DT, pool="max")
