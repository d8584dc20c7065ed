"""Block options (last_block, head, downsample), presets, the teacher's BN mode, checkpoints that
record the options, SAMD map alignment, and ``ckd-events models``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_TRAINING, assert_user_error, tiny_config
from torch import nn

from ckdsnn_events.checkpoints import load_checkpoint, save_checkpoint
from ckdsnn_events.cli.main import main
from ckdsnn_events.errors import UserError
from ckdsnn_events.models import build_student, build_teacher, parameter_count
from ckdsnn_events.models.registry import check_alignment, feature_map_size
from ckdsnn_events.models.blocks import ProjectorHead
from ckdsnn_events.pipelines.train import resolve_config, run_distill, run_evaluate


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def tiny_cli_options(frames, runs) -> list[str]:
    opts = ["--root", str(frames), "--workers", "0", "--batch-size", "8", "--device", "cpu", "--set", f"runs_root={runs}"]
    for key, value in TINY_TRAINING.items():
        if key.startswith(("model.", "optim.", "teacher_optim.")) or key == "data.val_fraction":
            opts += ["--set", f"{key}={value}"]
    return opts + ["--set", "model.init_from_teacher=false"]  # the digits-dvs recipe's needs equal widths


# --- the released code's ResNet-19 -----------------------------------------------------------------


def test_released_resnet19_parameter_counts():
    """CIFAR-10, projector head + avgpool shortcut (+ ReLU last block, no parameters): the released
    ``snn_models/resnet_models.resnet19(width_mult=8)`` and ``ann_models/resnet.resnet19()``."""
    with torch.device("meta"):
        student = build_student("resnet19", 10, 3, last_block="relu", head="projector", downsample="avgpool")
        teacher = build_teacher("resnet19", 10, 3, downsample="avgpool")
    assert parameter_count(student) == 12_697_994
    assert parameter_count(teacher) == 12_569_226
    # the bodies are the same; the projector is fc2 (512 -> 256) and fc1 (256 -> 10)
    assert parameter_count(student) - parameter_count(teacher) == (512 * 256 + 256 + 256 * 10 + 10) - (512 * 10 + 10)


def test_relu_last_block_is_the_recorded_sam_site():
    torch.manual_seed(0)
    student = build_student("resnet19", 4, 2, width=4, last_block="relu")
    x = torch.rand(3, 2, 2, 16, 16) * 3
    logits, record = student(x, return_spikes=True)
    last = list(record)[-1]
    assert last == "layer3.1.relu2" == student.spike_keys[-1]
    assert isinstance(student.layer3[1].relu2, nn.ReLU) and not hasattr(student.layer3[1], "lif2")
    sam = record[last]
    assert (sam >= 0).all() and not torch.all((sam == 0) | (sam == 1))  # real-valued, as the released code
    assert all(torch.all((s == 0) | (s == 1)) for k, s in record.items() if k != last)
    per_step = sam.mean((3, 4)) @ student.fc.weight.T + student.fc.bias
    torch.testing.assert_close(logits, per_step.mean(0))


def test_projector_head_averages_over_time_then_applies_fc2_and_fc1():
    torch.manual_seed(0)
    student = build_student("resnet20-cifar16", 6, 2, width=4, head="projector")
    assert isinstance(student.fc, ProjectorHead) and (student.fc.in_features, student.fc.out_features) == (16, 6)
    assert student.fc.fc2.out_features == 256 and student.fc.fc1.in_features == 256
    x = torch.rand(4, 2, 2, 12, 12) * 3
    logits, record = student(x, return_spikes=True)
    pooled = record[student.spike_keys[-1]].mean((3, 4)).mean(0)  # (B, C): mean over positions, then T
    expected = (pooled @ student.fc.fc2.weight.T + student.fc.fc2.bias) @ student.fc.fc1.weight.T + student.fc.fc1.bias
    torch.testing.assert_close(logits, expected)


@pytest.mark.parametrize("build", [
    lambda: build_teacher("resnet19", 5, 2, width=4, downsample="avgpool"),
    lambda: build_student("resnet19", 5, 2, width=4, downsample="avgpool"),
])
def test_avgpool_shortcut_is_pool_then_unstrided_conv_then_bn(build):
    model = build()
    shortcut = model.layer2[0].downsample
    assert isinstance(shortcut[0], nn.AvgPool2d) and shortcut[0].kernel_size == 2 and shortcut[0].stride == 2
    assert isinstance(shortcut[1], nn.Conv2d) and shortcut[1].stride == (1, 1) and shortcut[1].kernel_size == (1, 1)
    assert isinstance(shortcut[2], nn.BatchNorm2d)
    x = torch.rand(8, 4, 16, 16)
    with torch.no_grad():
        expected = shortcut[2](shortcut[1](nn.functional.avg_pool2d(x, 2)))
        torch.testing.assert_close(shortcut(x), expected)
    assert model.options.downsample == "avgpool"


def test_resnet20m_is_guo_et_al_modified_resnet20():
    torch.manual_seed(0)
    student = build_student("resnet20m", 10, 2, width=8)
    teacher = build_teacher("resnet20m", 10, 2, width=8)
    assert [type(m).__name__ for m in (student.conv2, student.conv3, student.stem_pool)] == ["Conv2d", "Conv2d",
                                                                                           "AvgPool2d"]
    assert student.options.downsample == teacher.options.downsample == "avgpool"  # its own AvgDown shortcut
    assert [len(getattr(student, f"layer{i}")) for i in range(1, 5)] == [2, 2, 2, 2]
    _, record = student(torch.rand(2, 3, 2, 48, 48) * 3, return_spikes=True)
    assert list(record)[:3] == ["lif", "lif2", "lif3"]
    assert record[student.spike_keys[-1]].shape[-2:] == feature_map_size("resnet20m", (48, 48)) == (3, 3)
    _, features = teacher(torch.rand(2, 2, 48, 48), return_features=True)
    assert features["layer1"].shape[-2:] == (24, 24) and features["layer4"].shape[-2:] == (3, 3)


@pytest.mark.parametrize("call, words", [
    (lambda: build_student("resnet20", head="mlp"), ["model.head", "linear, projector"]),
    (lambda: build_student("resnet20", last_block="gelu"), ["model.last_block", "lif, relu"]),
    (lambda: build_student("resnet20", downsample="maxpool"), ["model.downsample", "conv, avgpool"]),
    (lambda: build_teacher("resnet20", downsample="strided"), ["model.downsample", "conv, avgpool"]),
    (lambda: check_alignment("resnet18", "resnet19", (20, 20)), ["model.teacher 'resnet18'", "3x3 and 5x5",
                                                                   "students that align"]),
])
def test_option_errors_name_the_key_and_the_choices(call, words):
    with pytest.raises(UserError) as info:
        call()
    for word in words:
        assert word in str(info.value)


def test_alignment_accepts_nested_maps():
    check_alignment("resnet19", "resnet20m", (48, 48))  # 12x12 and 3x3: a student cell covers 4x4 teacher cells
    check_alignment("resnet18", "resnet20", (32, 32))  # 4x4 and 8x8


# --- presets and configs ---------------------------------------------------------------------------


def test_presets_set_every_difference_and_yield_to_set():
    reference = resolve_config("cifar10", options={"preset": "reference"})
    m, loss = reference.model, reference.loss
    assert (m.last_block, m.head, m.downsample) == ("relu", "projector", "avgpool")
    assert (loss.samd_variant, loss.nld_variant, loss.samd_target_class, loss.teacher_mode) == (
        "reference", "reference", "predicted", "train")
    paper = resolve_config("cifar10", options={"preset": "paper"})
    assert (paper.model.last_block, paper.model.head, paper.model.downsample) == ("lif", "linear", None)
    assert (paper.loss.samd_variant, paper.loss.nld_variant, paper.loss.teacher_mode) == ("paper", "paper", "eval")
    mixed = resolve_config("cifar10", options={"preset": "reference"}, overrides=("model.head=linear",))
    assert mixed.model.head == "linear" and mixed.model.last_block == "relu" and mixed.preset == "reference"
    assert resolve_config("cifar10", overrides=("preset=reference",)).model.head == "projector"
    assert resolve_config("cifar10").preset is None and resolve_config("cifar10").model.head == "linear"


@pytest.mark.parametrize("override, words", [
    ("model.head=mlp", ["model.head", "linear, projector"]),
    ("model.last_block=gelu", ["model.last_block", "lif, relu"]),
    ("model.downsample=maxpool", ["model.downsample", "conv, avgpool"]),
    ("preset=bogus", ["preset 'bogus'", "reference, paper"]),
    ("loss.teacher_mode=frozen", ["loss.teacher_mode", "eval, train"]),
    ("model.init_from_teacher=true", ["model.init_from_teacher", "model.head=linear"]),
])
def test_bad_options_fail_before_anything_is_written(tiny_frames, tmp_path, override, words):
    extra = ["--set", "model.head=projector"] if "init_from_teacher" in override else []  # after the helper's false
    result = cli("distill", "--dataset", "digits-dvs", "--run-dir", str(tmp_path / "run"),
                 *tiny_cli_options(tiny_frames, tmp_path), *extra, "--set", override)
    assert_user_error(result, *words)
    assert not (tmp_path / "run").exists() and not (tmp_path / "digits-dvs").exists()


def test_unknown_preset_on_the_command_line_is_refused(tiny_frames, tmp_path):
    result = cli("distill", "--dataset", "digits-dvs", "--run-dir", str(tmp_path / "run"),
                 *tiny_cli_options(tiny_frames, tmp_path), "--preset", "released")
    assert result.exit_code == 2 and "Traceback" not in result.output and "--preset" in result.output
    assert not (tmp_path / "run").exists()


def test_unalignable_pair_fails_before_anything_is_written(digits_dvs_root, tmp_path):
    from ckdsnn_events.pipelines.preprocess import PreprocessConfig, run_preprocess

    frames = tmp_path / "frames20"
    run_preprocess(PreprocessConfig(dataset="digits-dvs", root=str(digits_dvs_root), out=str(frames), timesteps=2,
                                    size=20, workers=0), progress=False)
    runs = tmp_path / "runs"
    result = cli("distill", "--dataset", "digits-dvs", "--run-dir", str(runs / "run"), *tiny_cli_options(frames, runs),
                 "--set", "model.teacher=resnet18", "--set", "model.student=resnet19")
    assert_user_error(result, "model.teacher 'resnet18'", "model.student 'resnet19'", "3x3 and 5x5")
    assert not runs.exists()


# --- training with the reference options, checkpoints that record them ------------------------------


@pytest.fixture(scope="module")
def reference_run(tiny_frames, tmp_path_factory) -> dict:
    """One tiny distillation with --preset reference (its own avgpool-shortcut teacher trained first)."""
    runs = tmp_path_factory.mktemp("reference-runs")
    config = tiny_config(tiny_frames, runs, preset="reference", **{"model.student_width": 4, "model.teacher_width": 4,
                                                                  "optim.epochs": 1, "model.init_from_teacher": False})
    return run_distill(config, progress=False)


def test_reference_run_records_and_rebuilds_its_options(reference_run):
    best = load_checkpoint(reference_run["best_checkpoint"], "student")
    assert best["options"] == {"last_block": "relu", "head": "projector", "downsample": "avgpool"}
    assert best["config"]["loss"]["teacher_mode"] == "train"
    assert load_checkpoint(reference_run["teacher_checkpoint"], "teacher")["options"] == {"downsample": "avgpool"}
    result = run_evaluate(reference_run["best_checkpoint"])  # rebuilt from the checkpoint: projector head
    assert result["n"] == 10 and 0 <= result["acc"] <= 1


def test_teacher_trained_with_another_shortcut_is_refused(reference_run, tiny_frames, tmp_path):
    result = cli("distill", "--dataset", "digits-dvs", "--teacher", reference_run["teacher_checkpoint"],
                 "--run-dir", str(tmp_path / "run"), *tiny_cli_options(tiny_frames, tmp_path),
                 "--set", "model.teacher_width=4", "--set", "model.downsample=conv")
    assert_user_error(result, "model.downsample='avgpool'", "model.downsample='conv'", "--teacher")
    assert not (tmp_path / "run").exists()


def test_resume_with_another_head_is_refused_before_anything_is_written(reference_run, tiny_frames, tmp_path):
    run_dir = Path(reference_run["run_dir"])
    before = (run_dir / "config.toml").read_bytes(), (run_dir / "last.pt").read_bytes()
    result = cli("distill", "--dataset", "digits-dvs", "--teacher", reference_run["teacher_checkpoint"],
                 "--run-dir", str(run_dir), "--resume", *tiny_cli_options(tiny_frames, tmp_path),
                 "--preset", "reference", "--set", "model.teacher_width=4", "--set", "model.student_width=4",
                 "--set", "model.head=linear")
    assert_user_error(result, "--resume", "model.head='projector'", "model.head='linear'")
    assert ((run_dir / "config.toml").read_bytes(), (run_dir / "last.pt").read_bytes()) == before


def test_checkpoint_whose_options_differ_from_its_model_is_refused(reference_run, tmp_path):
    payload = load_checkpoint(reference_run["best_checkpoint"], "student")
    payload["options"] = {**payload["options"], "head": "linear"}
    doctored = tmp_path / "doctored.pt"
    save_checkpoint(doctored, {k: v for k, v in payload.items() if k != "format"})
    assert_user_error(cli("evaluate", "--checkpoint", str(doctored)), "model.head='linear'", "--checkpoint")


# --- ckd-events models -----------------------------------------------------------------------------


def test_models_command_lists_every_architecture_with_its_parameters():
    result = cli("models", "--dataset", "cifar10", "--preset", "reference")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    chosen = [line for line in lines if line.startswith("*")]
    assert len(chosen) == 2 and "12,569,226" in chosen[0] and "12,697,994" in chosen[1]
    assert "teacher resnet19" in chosen[0] and "student resnet19" in chosen[1]
    assert "head=projector" in chosen[1] and "fused kernel" in chosen[1]
    from ckdsnn_events.models import STUDENTS, TEACHERS

    assert sum(" student " in line for line in lines) == len(STUDENTS)
    assert sum(" teacher " in line for line in lines) == len(TEACHERS)
    spikformer = next(line for line in lines if "student spikformer-4-384" in line)
    assert "9,324,730" in spikformer  # the CIFAR-10 Spikformer-4-384 (the paper's 9.32 M)
    dvs = cli("models", "--dataset", "cifar10dvs")
    assert dvs.exit_code == 0 and "2 input channels" in dvs.output
    assert any(line.startswith("*") and "student resnet20m" in line and "11,247,370" in line
               for line in dvs.output.splitlines())
    assert_user_error(cli("models", "--set", "model.head=mlp"), "model.head", "linear, projector")


def test_energy_report_of_a_reference_student(reference_run, tmp_path):
    from ckdsnn_events.pipelines.energy import run_energy

    summary = run_energy(reference_run["best_checkpoint"], limit=4, out_dir=tmp_path, progress=False)
    layers = {layer["name"]: layer for layer in summary["student"]["report"]["layers"]}
    # the projector reads real values: 16 channels (width 4) x 256, then 256 x 10 classes, once per sample
    assert (layers["fc.fc2"]["input_kind"], layers["fc.fc2"]["macs"]) == ("real", 16 * 256)
    assert (layers["fc.fc1"]["input_kind"], layers["fc.fc1"]["macs"]) == ("real", 256 * 10)
    assert (tmp_path / "energy.json").exists()


def test_models_package_imports_only_itself_and_errors_at_top_level():
    """No import circle back into models/, and models/ depends on no other package of the library."""
    import ast

    import ckdsnn_events.models as models

    for path in Path(models.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ckdsnn_events"):
                assert node.module.startswith(("ckdsnn_events.models", "ckdsnn_events.errors")), (path, node.module)
                assert node.col_offset == 0, f"{path.name}: import of {node.module} inside a function"
