"""Teachers and students: shapes, torchvision equivalence, parameter counts, the constant-input
stem, errors, checkpoints, and the contracts the energy counter and the losses rely on."""

from __future__ import annotations

import io
from dataclasses import asdict, replace

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ckdsnn_events.data.batch import is_constant_in_time
from ckdsnn_events.errors import UserError
from ckdsnn_events.models import (
    LIF,
    STUDENTS,
    TEACHERS,
    LIFParameters,
    build_student,
    build_teacher,
    reuse_freed_memory,
)
from ckdsnn_events.models.registry import feature_map_size
from ckdsnn_events.models.registry import ARCHS
from ckdsnn_events.models.resnet import build_resnet_teacher

RESNETS = tuple(ARCHS)  # the zoo's students and teachers are tested in test_zoo_models.py
SMALL_WIDTH = {"resnet18": 4, "resnet19": 4, "resnet20": 4, "resnet20m": 4, "resnet20-cifar16": 4}
STAGES = {"resnet18": 4, "resnet19": 3, "resnet20": 3, "resnet20m": 4, "resnet20-cifar16": 3}
BLOCKS = {"resnet18": 8, "resnet19": 8, "resnet20": 9, "resnet20m": 8, "resnet20-cifar16": 9}
STEM_LIFS = {"resnet20m": 3}  # three conv-BN-LIF in the stem; every other architecture has one


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# Shapes


@pytest.mark.parametrize("arch", RESNETS)
def test_teacher_shapes_and_features(arch):
    torch.manual_seed(0)
    w = SMALL_WIDTH[arch]
    teacher = build_teacher(arch, num_classes=7, in_channels=2, width=w)
    x = torch.randn(3, 2, 16, 16)
    logits = teacher(x)
    assert logits.shape == (3, 7)
    logits2, features = teacher(x, return_features=True)
    torch.testing.assert_close(logits, logits2)
    n = STAGES[arch]
    assert list(features) == [f"layer{i}" for i in range(1, n + 1)]
    first = 8 if arch == "resnet20m" else 16  # resnet20m's stem pools 2x2
    for i, f in enumerate(features.values()):
        assert f.shape == (3, w * 2**i, first // 2**i, first // 2**i)
    assert tuple(features[f"layer{n}"].shape[2:]) == feature_map_size(arch, (16, 16))
    last = features[f"layer{n}"]
    assert isinstance(teacher.fc, nn.Linear) and teacher.fc.in_features == last.shape[1]
    # the classifier is GAP + fc of the last feature map: the CAM's premise
    torch.testing.assert_close(logits, last.mean((2, 3)) @ teacher.fc.weight.T + teacher.fc.bias)


@pytest.mark.parametrize("arch", RESNETS)
def test_student_shapes_spikes_and_lif_calls(arch):
    torch.manual_seed(0)
    w = SMALL_WIDTH[arch]
    student = build_student(arch, num_classes=5, in_channels=2, width=w)
    lifs = [(name, m) for name, m in student.named_modules() if isinstance(m, LIF)]
    assert len(lifs) == STEM_LIFS.get(arch, 1) + 2 * BLOCKS[arch]
    calls = []
    for name, m in lifs:
        m.register_forward_hook(lambda mod, args, out, name=name: calls.append((name, out)))
    x = torch.rand(3, 2, 2, 16, 16) * 3
    logits, spikes = student(x, return_spikes=True)
    assert logits.shape == (2, 5)
    assert list(spikes) == [name for name, _ in lifs] == list(student.spike_keys)
    assert [name for name, _ in calls] == list(spikes)  # each LIF called once, in forward order
    assert all(out is spikes[name] for name, out in calls)
    assert spikes["lif"].shape == (3, 2, w, 16, 16)
    last_key = list(spikes)[-1]
    assert last_key == f"layer{STAGES[arch]}.{ARCHS[arch].blocks[-1] - 1}.lif2"
    last = spikes[last_key]
    top = w * 2 ** (STAGES[arch] - 1)
    side = feature_map_size(arch, (16, 16))[0]
    assert last.shape == (3, 2, top, side, side) and student.fc.in_features == top
    for s in spikes.values():
        assert s.dim() == 5 and s.shape[:2] == (3, 2)
        assert torch.all((s == 0) | (s == 1))
    assert 0 < torch.cat([s.flatten() for s in spikes.values()]).mean() < 1
    torch.testing.assert_close(student(x), logits)


def test_student_logits_are_the_time_mean_of_per_step_outputs():
    torch.manual_seed(0)
    student = build_student("resnet20", num_classes=4, in_channels=2, width=4).eval()
    x = torch.rand(4, 3, 2, 12, 12) * 3
    logits, spikes = student(x, return_spikes=True)
    last = spikes[student.spike_keys[-1]]  # (T, B, C, h, w)
    per_step = last.mean((3, 4)) @ student.fc.weight.T + student.fc.bias
    torch.testing.assert_close(logits, per_step.mean(0))


# ---------------------------------------------------------------------------------------------
# torchvision and parameter counts


def _adapted_torchvision_resnet18(num_classes: int, in_channels: int) -> nn.Module:
    """torchvision's ResNet-18 adapted by hand: 3x3 stride-1 stem, no max-pool."""
    model = torchvision.models.resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def test_resnet18_teacher_equals_adapted_torchvision():
    torch.manual_seed(0)
    in_channels = 2
    ours = build_teacher("resnet18", num_classes=10, in_channels=in_channels)
    reference = _adapted_torchvision_resnet18(10, in_channels)
    assert _params(ours) == _params(reference)
    reference.load_state_dict(ours.state_dict())  # same names and shapes, strict
    ours.eval(), reference.eval()
    x = torch.randn(2, in_channels, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)
    # the generic stage builder (used at other widths) makes the same network
    generic = build_resnet_teacher(replace(ARCHS["resnet18"], name="resnet18-generic"), 10, in_channels, None)
    assert {k: v.shape for k, v in generic.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }
    generic.load_state_dict(reference.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(generic.eval()(x), reference(x), rtol=0, atol=0)


def _expected_params(in_channels, widths, blocks, strides, num_classes):
    """Weights of a stem + BasicBlock stages + fc ResNet, counted from its definition."""
    conv = lambda cin, cout, k: cin * cout * k * k  # noqa: E731
    bn = lambda c: 2 * c  # noqa: E731  (weight and bias)
    total = conv(in_channels, widths[0], 3) + bn(widths[0])
    previous = widths[0]
    for width, n, stride in zip(widths, blocks, strides):
        for b in range(n):
            cin = previous if b == 0 else width
            total += conv(cin, width, 3) + bn(width) + conv(width, width, 3) + bn(width)
            if b == 0 and (stride != 1 or cin != width):
                total += conv(cin, width, 1) + bn(width)
        previous = width
    return total + widths[-1] * num_classes + num_classes


def test_resnet19_and_resnet20_parameter_counts():
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        r19 = build_teacher("resnet19", num_classes=10, in_channels=3)
        s19 = build_student("resnet19", num_classes=10, in_channels=3)
    assert _params(r19) == _expected_params(3, (128, 256, 512), (3, 3, 2), (1, 2, 2), 10) == 12_569_226
    assert _params(s19) == 12_569_226
    assert [m.out_channels for m in r19.modules() if isinstance(m, nn.Conv2d)][0] == 128
    r20 = build_teacher("resnet20-cifar16", num_classes=10, in_channels=3)
    # He et al.'s 0.27M, plus the two projection shortcuts (option B)
    assert _params(r20) == _expected_params(3, (16, 32, 64), (3, 3, 3), (1, 2, 2), 10) == 272_474
    convs = [m for m in r20.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + 1 == 20  # 19 3x3 convolutions + fc
    assert _params(build_teacher("resnet20-cifar16", num_classes=100, in_channels=2, width=32)) == _expected_params(
        2, (32, 64, 128), (3, 3, 3), (1, 2, 2), 100
    )
    # Guo et al.'s resnet20_cifar: 128/256/512 channels, 3 x 3 BasicBlocks, strided 1x1 shortcuts
    with torch.device("meta"):
        guo = build_student("resnet20", num_classes=10, in_channels=2)
        modified = build_student("resnet20m", num_classes=10, in_channels=2)
    assert _params(guo) == _expected_params(2, (128, 256, 512), (3, 3, 3), (1, 2, 2), 10) == 17_288_714
    # resnet20_cifar_modified: two more 64-channel 3x3 conv + BN in the stem, [2, 2, 2, 2] blocks at
    # 64-512 (its AvgPool -> 1x1 conv shortcut has the strided 1x1 conv's parameters)
    extra_stem = 2 * (64 * 64 * 9 + 2 * 64)
    assert _params(modified) == _expected_params(2, (64, 128, 256, 512), (2, 2, 2, 2), (1, 2, 2, 2), 10) + extra_stem
    assert _params(modified) == 11_247_370


@pytest.mark.parametrize("arch", RESNETS)
def test_student_mirrors_teacher_parameters(arch):
    w = SMALL_WIDTH[arch]
    teacher = build_teacher(arch, num_classes=10, in_channels=2, width=w)
    student = build_student(arch, num_classes=10, in_channels=2, width=w)
    shapes = lambda m: {k: v.shape for k, v in m.state_dict().items()}  # noqa: E731
    assert shapes(student) == shapes(teacher)


# ---------------------------------------------------------------------------------------------
# The constant-in-time stem


def test_constant_input_stem_equals_per_step_values_and_gradients():
    torch.manual_seed(0)
    student = build_student("resnet20", num_classes=4, in_channels=3, width=4).double().train()
    twin = build_student("resnet20", num_classes=4, in_channels=3, width=4).double().train()
    twin.load_state_dict(student.state_dict())
    stem_rows = []
    student.conv1.register_forward_hook(lambda m, args, out: stem_rows.append(args[0].shape[0]))

    image = (torch.rand(2, 3, 12, 12, dtype=torch.float64) * 2).requires_grad_()
    constant = image.expand(5, *image.shape)
    assert is_constant_in_time(constant)
    copies = image.detach().repeat(5, 1, 1, 1, 1).requires_grad_()  # materialised: per-step path
    assert not is_constant_in_time(copies)

    logits_c, spikes_c = student(constant, return_spikes=True)
    logits_p, spikes_p = twin(copies, return_spikes=True)
    assert stem_rows == [2]  # the stem ran once on (B, C, H, W)
    for key in spikes_c:
        assert torch.equal(spikes_c[key], spikes_p[key]), key
    torch.testing.assert_close(logits_c, logits_p, rtol=1e-12, atol=1e-12)

    labels = torch.tensor([1, 3])
    F.cross_entropy(logits_c, labels).backward()
    F.cross_entropy(logits_p, labels).backward()
    torch.testing.assert_close(image.grad, copies.grad.sum(0), rtol=1e-10, atol=1e-12)
    for (name, a), b in zip(student.named_parameters(), twin.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12, msg=name)
    assert student.conv1.weight.grad.abs().sum() > 0
    torch.testing.assert_close(student.bn1.running_mean, twin.bn1.running_mean)


def test_student_trains_under_bf16_autocast():
    torch.manual_seed(0)
    student = build_student("resnet20", num_classes=4, in_channels=2, width=4)
    x = torch.rand(3, 2, 2, 12, 12) * 3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, spikes = student(x, return_spikes=True)
    assert all(torch.all((s == 0) | (s == 1)) for s in spikes.values())
    F.cross_entropy(logits.float(), torch.tensor([0, 1])).backward()
    assert torch.isfinite(student.conv1.weight.grad).all() and student.conv1.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: build_teacher("resnet50"), "resnet18, resnet19, resnet20"),
        (lambda: build_student("vgg11"), "resnet18, resnet19, resnet20"),
        (lambda: build_teacher("resnet20", num_classes=0), "num_classes"),
        (lambda: build_student("resnet20", in_channels=0), "in_channels"),
        (lambda: build_teacher("resnet20", width=0), "width"),
        (lambda: build_student("resnet20", width=-4), "width"),
        (lambda: build_teacher("resnet20", num_classes=True), "num_classes"),
        (lambda: build_student("resnet20", num_classes=2.5), "num_classes"),
        (lambda: build_student("resnet20", neuron=LIFParameters(decay=0.5, v_th=2.0, reset="x")), "reset"),
        (lambda: build_student("resnet20", neuron={"decay": 1.5}), "decay"),
        (lambda: build_student("resnet20", neuron={"tau": 0.5}), "valid: decay"),
        (lambda: build_student("resnet20", neuron=0.5), "LIFParameters"),
    ],
)
def test_user_errors(call, words):
    with pytest.raises(UserError) as info:
        call()
    assert words in str(info.value)


def test_student_rejects_non_time_major_input():
    student = build_student("resnet20", width=2)
    with pytest.raises(ValueError, match="time-major"):
        student(torch.zeros(2, 3, 8, 8))


# ---------------------------------------------------------------------------------------------
# Checkpoints and neurons from checkpoints


def test_student_state_dict_loads_into_a_fresh_student():
    torch.manual_seed(0)
    neuron = LIFParameters(decay=0.25, v_th=0.8, reset="subtract", surrogate_width=0.5)
    student = build_student("resnet20", num_classes=3, in_channels=2, width=4, neuron=neuron)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9)
    x = torch.rand(3, 4, 2, 12, 12) * 3
    F.cross_entropy(student(x), torch.tensor([0, 1, 2, 0])).backward()
    optimizer.step()  # weights and BN statistics move away from their initial values

    buffer = io.BytesIO()
    torch.save({"model": student.state_dict(), "neuron": asdict(neuron)}, buffer)
    buffer.seek(0)
    payload = torch.load(buffer, weights_only=True)
    fresh = build_student("resnet20", num_classes=3, in_channels=2, width=4, neuron=payload["neuron"])
    assert fresh.neuron == neuron and fresh.lif.params == neuron
    fresh.load_state_dict(payload["model"])  # strict
    student.eval(), fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), student(x), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# Contracts of the energy counter and the losses


def test_energy_counter_sees_spike_fed_layers_and_folds_the_classifier():
    from ckdsnn_events.energy.counting import SynapticOpCounter

    torch.manual_seed(0)
    student = build_student("resnet20", num_classes=4, in_channels=2, width=4).eval()
    student.bn1.weight.data.fill_(3.0)  # make the stem fire
    x = torch.rand(3, 2, 2, 12, 12) * 2
    with SynapticOpCounter(student, timesteps=3, neurons=LIF) as counter, torch.no_grad():
        student(x)
    report = counter.report()
    layers = {layer.name: layer for layer in report.layers}
    assert layers["conv1"].input_kind == "real"
    assert all(layers[name].input_kind == "spikes" for name in layers if name not in ("conv1", "fc"))
    assert layers["fc"].input_kind == "pooled-spikes"
    assert [n.name for n in report.neurons] == list(student.spike_keys)


def test_distillation_loss_takes_student_spikes_and_teacher_features():
    from ckdsnn_events.distill.losses import DistillationLoss

    torch.manual_seed(0)
    teacher = build_teacher("resnet20", num_classes=4, in_channels=2, width=4).eval()
    student = build_student("resnet20", num_classes=4, in_channels=2, width=4)
    frames = torch.rand(3, 2, 2, 12, 12) * 3
    labels = torch.tensor([0, 3])
    with torch.no_grad():
        teacher_logits, features = teacher(frames.sum(0), return_features=True)
    logits, spikes = student(frames, return_spikes=True)
    loss, terms = DistillationLoss(beta=1, gamma=1)(
        logits, labels, teacher_logits=teacher_logits, student_spikes=next(reversed(spikes.values())),
        teacher_features=next(reversed(features.values())), teacher_classifier_weight=teacher.fc.weight,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.isfinite(loss) and set(terms) >= {"ce", "samd", "nld"}
    loss.backward()
    assert student.conv1.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# The allocator setting


def test_reuse_freed_memory_returns_bool_and_is_idempotent():
    first = reuse_freed_memory()
    second = reuse_freed_memory()
    assert isinstance(first, bool) and first == second
    import platform
    import sys

    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert first is True
    with pytest.raises(ValueError):
        reuse_freed_memory(0)
