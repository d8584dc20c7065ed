"""Neuron options and the two neuron backends: surrogates against their formulas, fused against
Norse (single layers and whole students), both against SpikingJelly's LIFNode/IFNode."""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import asdict

import pytest
import torch

from ckdsnn_events.errors import UserError
from ckdsnn_events.models import (
    LIF,
    LIFParameters,
    build_student,
    lif_sequence,
    lif_sequence_reference,
    make_neuron,
    neuron_parameters,
    use_neuron_backend,
)
from ckdsnn_events.models import neurons
from ckdsnn_events.models.norse_neurons import NorseLIF, norse_lif_sequence

# ---------------------------------------------------------------------------------------------
# Options


def test_new_options_defaults_normalisation_and_old_checkpoint_dicts():
    p = LIFParameters()
    assert (p.neuron, p.surrogate, p.surrogate_alpha, p.detach_reset) == ("lif", "triangle", None, False)
    assert LIFParameters(neuron="if", decay=0.3).decay == 1.0  # IF: no leak
    assert LIFParameters(surrogate="atan").surrogate_alpha == 2.0  # SpikingJelly's ATan default
    assert LIFParameters(surrogate="sigmoid").surrogate_alpha == 4.0  # SpikingJelly's Sigmoid default
    q = LIFParameters(neuron="if", reset="subtract", surrogate="sigmoid", surrogate_alpha=2.5, detach_reset=True)
    assert LIFParameters(**asdict(q)) == q
    old = {"decay": 0.25, "v_th": 0.8, "v_reset": 0.0, "reset": "subtract", "surrogate_width": 0.5}
    assert build_student("resnet20", width=4, neuron=old).neuron == LIFParameters(**old)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"neuron": "izhikevich"}, "neuron='izhikevich'; choose one of: 'lif', 'if'"),
        ({"surrogate": "erf"}, "surrogate='erf'; choose one of: 'triangle', 'atan', 'sigmoid'"),
        ({"surrogate": "atan", "surrogate_alpha": 0.0}, "> 0"),
        ({"surrogate": "sigmoid", "surrogate_alpha": float("inf")}, "finite"),
        ({"surrogate_alpha": 2.0}, "surrogate_width"),  # the triangle has a width, not an alpha
        ({"detach_reset": 1}, "detach_reset"),
    ],
)
def test_bad_options_are_user_errors(kwargs, words):
    with pytest.raises(UserError) as info:
        LIFParameters(**kwargs)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"backend": "cupy"}, "model: unknown neuron_backend 'cupy'; choose one of: 'fused', 'norse'"),
        ({"threshold": -1.0}, "model: LIF threshold v_th must be > 0"),
        ({"backend": "norse", "surrogate": "atan"}, "Norse has no arctangent surrogate"),
        ({"backend": "norse", "neuron": "if", "reset": "subtract"}, "IF neuron with reset 'subtract'"),
        ({"backend": "norse", "neuron": "if", "detach_reset": True}, "IF neuron with detach_reset"),
    ],
)
def test_neuron_parameters_name_the_option(kwargs, words):
    with pytest.raises(UserError) as info:
        neuron_parameters(**kwargs)
    assert words in str(info.value)


def test_factory_and_unsupported_norse_options():
    assert type(make_neuron(LIFParameters())) is LIF
    layer = make_neuron(LIFParameters(surrogate="sigmoid"), "norse")
    assert isinstance(layer, NorseLIF) and isinstance(layer, LIF) and layer.backend == "norse"
    with pytest.raises(UserError, match="arctangent"):
        make_neuron(LIFParameters(surrogate="atan"), "norse")
    with pytest.raises(UserError, match="neuron_backend"):
        make_neuron(LIFParameters(), "Norse")
    with pytest.raises(UserError, match="neuron_backend"):
        build_student("resnet20", width=4, neuron_backend="spikingjelly")


# ---------------------------------------------------------------------------------------------
# Surrogates against their formulas (written out here from SpikingJelly's surrogate.py)


def _formula(surrogate: str, a: float, z: torch.Tensor) -> torch.Tensor:
    if surrogate == "triangle":
        return torch.where(z.abs() < a, (1 - z.abs() / a) / a, torch.zeros_like(z))
    if surrogate == "atan":  # atan_backward: alpha / 2 / (1 + (pi / 2 * alpha * x)^2)
        return a / 2 / (1 + (math.pi / 2 * a * z) ** 2)
    s = 1 / (1 + torch.exp(-a * z))  # sigmoid_backward: alpha * sg * (1 - sg), sg = sigmoid(alpha x)
    return a * s * (1 - s)


SURROGATE_CASES = [("triangle", 1.0), ("triangle", 0.4), ("atan", 2.0), ("atan", 5.0), ("sigmoid", 4.0),
                   ("sigmoid", 1.5)]


def _params_for(surrogate: str, a: float, **kwargs) -> LIFParameters:
    shape = {"surrogate_width": a} if surrogate == "triangle" else {"surrogate_alpha": a}
    return LIFParameters(surrogate=surrogate, **shape, **kwargs)


@pytest.mark.parametrize("numba_kernels", [True, False])
@pytest.mark.parametrize("surrogate, a", SURROGATE_CASES)
def test_surrogate_gradient_is_its_formula(surrogate, a, numba_kernels, monkeypatch):
    if not numba_kernels:
        monkeypatch.setattr(neurons, "_numba_ok", lambda *tensors: False)
    p = _params_for(surrogate, a, v_th=0.7)
    # one step from v = 0: dS/dx = g(x - v_th) exactly
    x = torch.linspace(-2.0, 3.0, 2001, dtype=torch.float64).reshape(1, -1).requires_grad_()
    for sequence in (lif_sequence, lif_sequence_reference, norse_lif_sequence):
        if sequence is norse_lif_sequence and surrogate == "atan":
            continue
        (grad,) = torch.autograd.grad(sequence(x, p)[0].sum(), x)
        torch.testing.assert_close(grad, _formula(surrogate, a, x.detach() - 0.7), rtol=1e-10, atol=1e-13)


# ---------------------------------------------------------------------------------------------
# Both backends on one layer: every option combination Norse has, T = 1..10


def _combinations():
    for neuron, decay, reset, detach, (surrogate, a) in itertools.product(
            ("lif", "if"), (0.5, 0.2, 0.0), ("hard", "subtract"), (False, True),
            [c for c in SURROGATE_CASES if c[0] != "atan"]):
        if neuron == "if" and (decay != 0.5 or reset == "subtract" or detach):
            continue  # IF ignores decay; Norse's IAF has no subtract reset and no detached reset
        yield _params_for(surrogate, a, neuron=neuron, decay=decay, reset=reset, detach_reset=detach,
                          v_reset=-0.2 if reset == "hard" else 0.0)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_backends_equal_on_one_layer(dtype, tol):
    combinations = list(_combinations())
    assert len(combinations) == 4 * 3 * 2 * 2 + 4
    torch.manual_seed(0)
    readout = torch.linspace(-1, 1, 40, dtype=dtype)
    for p in combinations:
        # T = 1..10, each with its own input and weight leaves: one backward pass gives every
        # T's gradients separately (the ten losses share no tensor)
        inputs = [torch.rand(steps, 5, 40, dtype=dtype) * 1.6 - 0.2 for steps in range(1, 11)]
        # currents = x * w, a weight per neuron (elementwise: a matmul's BLAS threads made the test
        # 20x slower on a loaded machine)
        weights = [torch.rand(40, dtype=dtype) + 0.5 for _ in inputs]
        out = {}
        for backend in ("fused", "norse"):
            leaves = [t.clone().requires_grad_() for pair in zip(inputs, weights) for t in pair]
            layer, loss, states = make_neuron(p, backend), 0, []
            for x, w in zip(leaves[::2], leaves[1::2]):
                spikes, v = layer.sequence(x * w)
                loss = loss + (spikes * readout).sum() + v.square().sum()
                states.append((spikes, v))
            out[backend] = states, torch.autograd.grad(loss, leaves)
        (states1, grads1), (states2, grads2) = out["fused"], out["norse"]
        for steps, ((s1, v1), (s2, v2)) in enumerate(zip(states1, states2), start=1):
            assert torch.equal(s1, s2), (p, steps)
            torch.testing.assert_close(v1, v2, rtol=tol, atol=tol, msg=lambda m: f"{p}, T={steps}: {m}")
        for i, (g1, g2) in enumerate(zip(grads1, grads2)):
            what = f"{p}, T={i // 2 + 1}, {'weight' if i % 2 else 'input'} gradient"
            torch.testing.assert_close(g1, g2, rtol=tol, atol=tol, msg=lambda m: f"{what}: {m}")
    # the last combination (IF) fires in both regimes and passes gradient to the weights
    assert 0.05 < s1.mean() < 0.95 and grads1[-1].abs().sum() > 0


@pytest.mark.parametrize("numba_kernels", [True, False])
def test_fused_kernels_meet_the_reference_for_every_option(numba_kernels, monkeypatch):
    if not numba_kernels:  # the loop of torch operations that runs on CUDA and in half precision
        monkeypatch.setattr(neurons, "_numba_ok", lambda *tensors: False)
    torch.manual_seed(0)
    for neuron, reset, detach, (surrogate, a) in itertools.product(("lif", "if"), ("hard", "subtract"),
                                                                  (False, True), SURROGATE_CASES):
        p = _params_for(surrogate, a, neuron=neuron, decay=0.3, reset=reset, detach_reset=detach, v_th=0.9,
                        v_reset=-0.1 if reset == "hard" else 0.0)
        x = (torch.rand(7, 3, 30, dtype=torch.float64) * 1.5 - 0.2).requires_grad_()
        v0 = (torch.rand(3, 30, dtype=torch.float64) * 0.5).requires_grad_()
        weights = torch.randn(7, 3, 30, dtype=torch.float64)
        results = []
        for sequence in (lif_sequence, lif_sequence_reference):
            s, v = sequence(x, p, v0)
            results.append((s, v, *torch.autograd.grad((s * weights).sum() + (v * v).sum(), (x, v0))))
        (s1, v1, gx1, gv1), (s2, v2, gx2, gv2) = results
        assert torch.equal(s1, s2), p
        for a1, a2 in ((v1, v2), (gx1, gx2), (gv1, gv2)):
            torch.testing.assert_close(a1, a2, rtol=1e-12, atol=1e-12, msg=lambda m: f"{p}: {m}")


def test_norse_backend_half_precision_and_initial_membrane():
    torch.manual_seed(0)
    p = LIFParameters(surrogate="sigmoid", reset="subtract")
    x = torch.rand(6, 300) * 1.5
    v0 = torch.rand(300) * 0.5
    s, v = norse_lif_sequence(x, p, v0)
    s_ref, v_ref = lif_sequence(x, p, v0)
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(v, v_ref, rtol=1e-6, atol=1e-6)
    s16, v16 = norse_lif_sequence(x.to(torch.bfloat16), p)
    assert s16.dtype == torch.bfloat16 and v16.dtype == torch.float32
    assert torch.equal(s16, lif_sequence(x.to(torch.bfloat16), p)[0])


# ---------------------------------------------------------------------------------------------
# Whole students: equal logits, spike maps and weight gradients with either backend


STUDENT_NEURONS = [LIFParameters(), LIFParameters(surrogate="sigmoid", reset="subtract", detach_reset=True),
                   LIFParameters(neuron="if", surrogate_width=0.5, v_th=1.5)]


@pytest.mark.parametrize("neuron", STUDENT_NEURONS, ids=["default", "sigmoid-subtract-detach", "if"])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_backends_equal_on_a_whole_student(neuron, dtype, tol):
    torch.manual_seed(0)
    fused = build_student("resnet20", num_classes=5, in_channels=2, width=4, neuron=neuron).to(dtype)
    norse = use_neuron_backend(copy.deepcopy(fused), "norse")
    assert all(type(m) is NorseLIF for m in norse.modules() if isinstance(m, LIF))
    assert sum(isinstance(m, LIF) for m in norse.modules()) == len(fused.spike_keys) == 19
    frames = torch.rand(4, 3, 2, 12, 12, dtype=dtype) * 3
    labels = torch.tensor([0, 4, 2])
    results = []
    for model in (fused, norse):
        logits, spikes = model(frames, return_spikes=True)
        torch.nn.functional.cross_entropy(logits, labels).backward()
        results.append((logits, spikes, {n: q.grad for n, q in model.named_parameters()}))
    (l1, s1, g1), (l2, s2, g2) = results
    torch.testing.assert_close(l1, l2, rtol=tol, atol=tol)
    assert list(s1) == list(s2) == list(fused.spike_keys)
    for key in s1:
        assert torch.equal(s1[key], s2[key]), key
    assert 0.0 < s1[fused.spike_keys[-1]].mean() < 1.0  # the last block fires, the SAM is not empty
    for name in g1:
        torch.testing.assert_close(g1[name], g2[name], rtol=tol, atol=tol, msg=lambda m: f"{name}: {m}")
    assert g1["conv1.weight"].abs().sum() > 0  # the gradient reaches the stem through 19 layers


def test_build_student_with_norse_backend_is_counted_for_energy():
    from ckdsnn_events.energy.counting import SynapticOpCounter

    torch.manual_seed(0)
    reports = []
    for backend in ("fused", "norse"):
        torch.manual_seed(0)
        student = build_student("resnet20", num_classes=4, in_channels=2, width=4, neuron_backend=backend).eval()
        student.bn1.weight.data.fill_(3.0)
        with SynapticOpCounter(student, timesteps=3, neurons=LIF) as counter, torch.no_grad():
            student(torch.rand(3, 2, 2, 12, 12, generator=torch.Generator().manual_seed(1)) * 2)
        reports.append(counter.report())
    fused, norse = reports
    assert [n.name for n in norse.neurons] == [n.name for n in fused.neurons] and len(fused.neurons) == 19
    assert [n.output_spikes for n in norse.neurons] == [n.output_spikes for n in fused.neurons]
    assert [(layer.sops, layer.macs) for layer in norse.layers] == [(layer.sops, layer.macs) for layer in fused.layers]
    assert fused.layers[1].sops > 0


# ---------------------------------------------------------------------------------------------
# Against SpikingJelly (a test-only tool: `pip install .[bench]`)


@pytest.mark.parametrize("neuron, decay", [("lif", 0.5), ("lif", 0.25), ("if", 1.0)])
@pytest.mark.parametrize("reset", ["hard", "subtract"])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("surrogate, a", [("atan", 2.0), ("sigmoid", 4.0), ("sigmoid", 2.5)])
def test_matches_spikingjelly(neuron, decay, reset, detach, surrogate, a):
    sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
    sg = {"atan": sj_surrogate.ATan, "sigmoid": sj_surrogate.Sigmoid}[surrogate](alpha=a)
    common = dict(v_threshold=0.8, v_reset=0.0 if reset == "hard" else None, surrogate_function=sg,
                  detach_reset=detach, step_mode="m", store_v_seq=True)
    if neuron == "lif":  # H = V (1 - 1/tau) + X = decay V + X
        node = sj_neuron.LIFNode(tau=1.0 / (1.0 - decay), decay_input=False, **common)
    else:
        node = sj_neuron.IFNode(**common)
    p = _params_for(surrogate, a, neuron=neuron, decay=decay, v_th=0.8, reset=reset, detach_reset=detach)
    torch.manual_seed(0)
    x = (torch.rand(10, 4, 50, dtype=torch.float64) * 1.4 - 0.2).requires_grad_()
    weights = torch.randn(10, 4, 50, dtype=torch.float64)
    sj_spikes = node(x)
    (sj_grad,) = torch.autograd.grad((sj_spikes * weights).sum(), x)
    backends = ["fused"] + (["norse"] if surrogate != "atan" and (neuron == "lif" or (reset == "hard" and not detach))
                            else [])
    for backend in backends:
        layer = make_neuron(p, backend)
        spikes, _ = layer.sequence(x)
        assert torch.equal(spikes, sj_spikes), backend
        (grad,) = torch.autograd.grad((spikes * weights).sum(), x)
        torch.testing.assert_close(grad, sj_grad, rtol=1e-10, atol=1e-12)
        for t in range(10):  # the membrane after every step
            torch.testing.assert_close(layer.sequence(x[: t + 1].detach())[1], node.v_seq[t].detach(),
                                       rtol=1e-12, atol=1e-12)
    assert 0.05 < sj_spikes.mean() < 0.95 and sj_grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# Config keys: model.neuron_backend, neuron, surrogate, surrogate_alpha, detach_reset


def test_model_config_neuron_options():
    from ckdsnn_events.config import from_dict
    from ckdsnn_events.distill.config import ModelConfig, RunConfig
    from ckdsnn_events.models import neuron_options

    model = from_dict(ModelConfig, {"decay": 0.25, "surrogate": "sigmoid", "surrogate_alpha": 3.0,
                                    "detach_reset": True, "reset": "subtract", "neuron_backend": "norse"})
    params, backend = neuron_options(model)
    assert backend == "norse" and params == LIFParameters(decay=0.25, surrogate="sigmoid", surrogate_alpha=3.0,
                                                          detach_reset=True, reset="subtract")
    assert neuron_options(ModelConfig(neuron="if"))[0].decay == 1.0
    assert neuron_options(ModelConfig()) == (LIFParameters(), "fused")
    with pytest.raises(UserError, match="model.surrogate must be one of 'triangle', 'atan', 'sigmoid'"):
        from_dict(RunConfig, {"model": {"surrogate": "erf"}})
    with pytest.raises(UserError, match="model.neuron_backend must be one of 'fused', 'norse'"):
        from_dict(RunConfig, {"model": {"neuron_backend": "cupy"}})
    # values the types let through, and options the chosen backend lacks, fail in validate()
    for model, words in ((ModelConfig(neuron_backend="norse", surrogate="atan"), "model: neuron_backend 'norse'"),
                         (ModelConfig(surrogate="sigmoid", surrogate_alpha=-1.0), "model: surrogate_alpha must be > 0"),
                         (ModelConfig(surrogate_alpha=2.0), "model: surrogate_alpha is for"),
                         (ModelConfig(neuron_backend="norse", neuron="if", detach_reset=True), "detach_reset")):
        with pytest.raises(UserError, match=words):
            RunConfig(model=model).validate()


@pytest.mark.parametrize("overrides, fragment", [
    (["model.neuron_backend=cupy"], "model.neuron_backend must be one of 'fused', 'norse'"),
    (["model.surrogate=erf"], "model.surrogate must be one of"),
    (["model.neuron=izhikevich"], "model.neuron must be one of 'lif', 'if'"),
    (["model.neuron_backend=norse", "model.surrogate=atan"], "Norse has no arctangent surrogate"),
])
def test_bad_neuron_options_on_the_command_line(tiny_frames, tmp_path, overrides, fragment):
    from click.testing import CliRunner
    from conftest import assert_user_error

    from ckdsnn_events.cli.main import main

    args = ["distill", "--dataset", "digits-dvs", "--root", str(tiny_frames), "--run-dir", str(tmp_path / "run"),
            "--device", "cpu", "--set", f"runs_root={tmp_path}"]
    result = CliRunner().invoke(main, args + [a for o in overrides for a in ("--set", o)])
    assert_user_error(result, fragment)
    assert not (tmp_path / "run").exists()


def test_a_short_distill_run_gives_the_same_metrics_with_either_backend(trained_student, tiny_frames, tmp_path):
    import csv

    from conftest import tiny_config

    from ckdsnn_events.checkpoints import load_checkpoint
    from ckdsnn_events.pipelines.train import run_distill

    rows = {}
    for backend in ("fused", "norse"):
        config = tiny_config(tiny_frames, tmp_path, teacher_checkpoint=trained_student["teacher_checkpoint"],
                             **{"optim.epochs": 1, "model.neuron_backend": backend})
        result = run_distill(config, progress=False, run_dir=tmp_path / backend)
        (rows[backend],) = list(csv.DictReader(open(tmp_path / backend / "metrics.csv")))
        assert load_checkpoint(result["best_checkpoint"], "student")["config"]["model"]["neuron_backend"] == backend
    for column in ("train_acc", "val_acc", "test_acc"):
        assert rows["fused"][column] == rows["norse"][column], column
    for column in ("train_loss", "train_ce", "train_samd", "train_nld", "firing_rate"):
        assert float(rows["fused"][column]) == pytest.approx(float(rows["norse"][column]), rel=1e-4, abs=1e-6), column
