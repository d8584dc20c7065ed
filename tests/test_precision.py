"""--precision 32 | bf16-mixed: names, the CPU bf16 check, dtypes inside a bf16-mixed step, CLI errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import TINY_TRAINING, assert_user_error, tiny_config

from ckdsnn_events.cli.main import main
from ckdsnn_events.distill import precision
from ckdsnn_events.distill.precision import autocast, cpu_supports_bf16, normalize_precision, resolve_precision
from ckdsnn_events.errors import UserError
from ckdsnn_events.models import LIF, build_student
from ckdsnn_events.pipelines.train import resolve_config

needs_cpu_bf16 = pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bf16")


def test_names_and_their_aliases():
    assert [normalize_precision(p) for p in ("32", 32, "fp32", "bf16-mixed", "bf16", "BF16-Mixed", "auto")] == \
        ["32", "32", "32", "bf16-mixed", "bf16-mixed", "bf16-mixed", "auto"]
    with pytest.raises(UserError, match="16-mixed"):
        normalize_precision("16-mixed")  # float16 needs a loss scaler: not offered


def test_cpu_bf16_is_read_from_the_cpu_flags():
    assert not cpu_supports_bf16("flags : fpu sse avx2 avx512f avx512bw")
    assert cpu_supports_bf16("flags : fpu avx512f avx512_bf16")
    assert cpu_supports_bf16("flags : fpu amx_bf16 amx_tile")


def test_bf16_on_a_cpu_without_it_is_refused(monkeypatch):
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: False)
    cpu = torch.device("cpu")
    with pytest.raises(UserError, match="--precision 32"):
        resolve_precision(cpu, "bf16-mixed")
    with pytest.raises(UserError, match="AVX512-BF16"):
        autocast(cpu, "bf16")
    assert resolve_precision(cpu, "auto") == "32" and resolve_precision("cpu", 32) == "32"
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: True)
    assert resolve_precision("cpu", "bf16-mixed") == "bf16-mixed"
    assert not precision.use_channels_last(cpu, "bf16-mixed")  # CUDA only


def test_cli_refuses_bf16_on_such_a_cpu_before_writing_anything(monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: False)
    result = CliRunner().invoke(main, ["train-teacher", "--dataset", "digits", "--device", "cpu",
                                       "--precision", "bf16-mixed", "--run-dir", str(tmp_path / "run")])
    assert_user_error(result, "--precision bf16-mixed", "--precision 32")
    assert not (tmp_path / "run").exists()
    result = CliRunner().invoke(main, ["train-teacher", "--dataset", "digits", "--precision", "16"])
    assert result.exit_code == 2 and "--precision" in result.output


def test_precision_option_and_set_reach_the_config():
    config = resolve_config("digits", options={"teacher_optim.precision": "32", "device": "cpu"})
    assert config.teacher_optim.precision == "32"
    config = resolve_config("digits", options={"device": "cpu"}, overrides=("optim.precision=32",))
    assert normalize_precision(config.optim.precision) == "32"
    with pytest.raises(UserError, match="optim.precision"):
        resolve_config("digits", options={"device": "cpu"}, overrides=("optim.precision=fp8",))


@needs_cpu_bf16
def test_bf16_mixed_step_keeps_bn_statistics_membranes_and_loss_in_float32():
    torch.manual_seed(0)
    student = build_student("resnet20", num_classes=4, in_channels=2, width=4).train()
    seen, lif_inputs = {}, []

    def record(name):
        def hook(module, inputs, output):  # returns None: a forward hook's return value replaces the output
            if name == "lif":
                lif_inputs.append((inputs[0].dtype, output.dtype))
            else:
                seen[name] = output.dtype
        return hook

    student.conv1.register_forward_hook(record("conv"))
    student.bn1.register_forward_hook(record("bn"))
    for module in student.modules():
        if isinstance(module, LIF):
            module.register_forward_hook(record("lif"))
    x = torch.rand(3, 2, 2, 12, 12) * 3
    with autocast(torch.device("cpu"), "bf16-mixed"):
        logits = student(x)
        loss = F.cross_entropy(logits.float(), torch.tensor([0, 1]))
    loss.backward()
    assert seen == {"conv": torch.bfloat16, "bn": torch.bfloat16}
    assert all(pair == (torch.bfloat16, torch.bfloat16) for pair in lif_inputs)  # bf16 currents and spikes
    assert student.bn1.running_mean.dtype == torch.float32 and student.bn1.running_mean.abs().sum() > 0
    assert loss.dtype == torch.float32
    assert all(p.grad.dtype == torch.float32 for p in student.parameters() if p.grad is not None)
    # the LIF integrates bf16 currents in float32: its final membrane is float32
    from ckdsnn_events.models import lif_sequence

    _, v = lif_sequence(torch.rand(4, 8, dtype=torch.bfloat16) * 2)
    assert v.dtype == torch.float32


@needs_cpu_bf16
def test_a_bf16_mixed_teacher_run_trains(tiny_frames, tmp_path):
    from ckdsnn_events.pipelines.train import run_train_teacher

    config = tiny_config(tiny_frames, tmp_path, **{"teacher_optim.precision": "bf16-mixed"})
    result = run_train_teacher(config, progress=False, run_dir=tmp_path / "t")
    assert result["best_epoch"] == TINY_TRAINING["teacher_optim.epochs"]
    assert 0 <= result["test_acc_at_best"] <= 1
