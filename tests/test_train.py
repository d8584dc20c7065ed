"""Training stages: teacher, distillation, resume, NaN stop, checkpoints, evaluate, DDP."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_TRAINING, assert_user_error, tiny_config

from ckdsnn_events.checkpoints import load_checkpoint, save_checkpoint
from ckdsnn_events.cli.main import main
from ckdsnn_events.distill import trainer
from ckdsnn_events.errors import UserError
from ckdsnn_events.pipelines.train import run_distill, run_evaluate, teacher_cache_dir


def cli(*args: str):
    result = CliRunner().invoke(main, list(args))
    return result


def tiny_cli_options(frames, runs) -> list[str]:
    opts = ["--root", str(frames), "--workers", "0", "--batch-size", "8", "--device", "cpu",
            "--set", f"runs_root={runs}"]
    for key, value in TINY_TRAINING.items():
        if key.startswith(("model.", "optim.", "teacher_optim.")) or key == "data.val_fraction":
            opts += ["--set", f"{key}={value}"]
    return opts


# --- the whole run -------------------------------------------------------------------------------------

def test_distill_writes_run_directory(trained_student):
    run_dir = Path(trained_student["run_dir"])
    for name in ("config.toml", "metrics.csv", "last.pt", "best.pt"):
        assert (run_dir / name).is_file(), name
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for column in ("train_ce", "train_samd", "train_nld", "val_acc", "test_acc", "firing_rate", "lr", "seconds"):
        assert rows[-1][column] not in ("", None), column
    assert 0 < float(rows[-1]["firing_rate"]) < 1
    best = load_checkpoint(run_dir / "best.pt", "student")
    assert best["epoch"] == trained_student["best_epoch"]
    assert "optimizer" not in best  # best.pt holds the weights only
    assert best["config"]["loss"]["beta"] == 1.0 and best["config"]["loss"]["gamma"] == 1.0
    teacher_dir = Path(trained_student["teacher_checkpoint"]).parent
    assert (teacher_dir / "metrics.csv").is_file()
    assert load_checkpoint(trained_student["teacher_checkpoint"], "teacher")["epoch"] == 1


def test_best_checkpoint_is_chosen_by_validation_accuracy(trained_student):
    rows = list(csv.DictReader(open(Path(trained_student["run_dir"]) / "metrics.csv")))
    vals = [float(r["val_acc"]) for r in rows]
    assert trained_student["best_epoch"] == vals.index(max(vals)) + 1


def test_distill_reuses_the_cached_teacher(trained_student, tiny_frames, tmp_path):
    cached = Path(trained_student["teacher_checkpoint"])
    runs_root = cached.parents[2]
    before = cached.stat().st_mtime_ns
    config = tiny_config(tiny_frames, runs_root, **{"optim.epochs": 1})
    assert teacher_cache_dir(config) == cached.parent
    result = run_distill(config, progress=False, run_dir=tmp_path / "again")
    assert result["teacher_result"] is None
    assert cached.stat().st_mtime_ns == before


def test_teacher_stays_frozen_during_distillation(trained_student, tiny_frames, tmp_path):
    teacher_path = trained_student["teacher_checkpoint"]
    before = load_checkpoint(teacher_path)["model"]
    config = tiny_config(tiny_frames, tmp_path, **{"optim.epochs": 1, "teacher_checkpoint": teacher_path})
    from ckdsnn_events.data.loaders import build_loaders
    from ckdsnn_events.pipelines.train import load_teacher

    info = build_loaders(config.data)[3]
    teacher = load_teacher(config, teacher_path, info)
    trainer.fit(config, "student", tmp_path / "run", teacher=teacher, progress=False)
    after = teacher.state_dict()
    for key, value in before.items():  # BN running statistics included
        assert torch.equal(value, after[key]), key


# --- resume ------------------------------------------------------------------------------------------

def test_interrupted_and_resumed_run_ends_with_the_same_weights(trained_student, tiny_frames, tmp_path, monkeypatch):
    teacher_path = trained_student["teacher_checkpoint"]
    config = tiny_config(tiny_frames, tmp_path, teacher_checkpoint=teacher_path, **{"optim.epochs": 3})
    straight = run_distill(config, progress=False, run_dir=tmp_path / "straight")

    calls = {"n": 0}
    original = trainer.DistillationLoss.forward

    def interrupt_in_epoch_two(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # 2 steps per epoch: the 2nd step of epoch 2, after epoch 1's checkpoint
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(trainer.DistillationLoss, "forward", interrupt_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        run_distill(config, progress=False, run_dir=tmp_path / "resumed")
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 1
    monkeypatch.setattr(trainer.DistillationLoss, "forward", original)
    with pytest.raises(UserError, match="--resume"):
        run_distill(config, progress=False, run_dir=tmp_path / "resumed")
    resumed = run_distill(config, resume=True, progress=False, run_dir=tmp_path / "resumed")

    a = load_checkpoint(Path(straight["last_checkpoint"]))
    b = load_checkpoint(Path(resumed["last_checkpoint"]))
    assert a["epoch"] == b["epoch"] == 3
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    rows = list(csv.DictReader(open(tmp_path / "resumed" / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]


def test_nan_loss_stops_with_the_last_good_checkpoint(trained_student, tiny_frames, tmp_path, monkeypatch):
    config = tiny_config(tiny_frames, tmp_path, teacher_checkpoint=trained_student["teacher_checkpoint"])
    calls = {"n": 0}
    original = trainer.DistillationLoss.forward

    def nan_in_epoch_two(self, *args, **kwargs):
        total, terms = original(self, *args, **kwargs)
        calls["n"] += 1
        return (total * float("nan"), terms) if calls["n"] == 3 else (total, terms)

    monkeypatch.setattr(trainer.DistillationLoss, "forward", nan_in_epoch_two)
    with pytest.raises(UserError) as err:
        run_distill(config, progress=False, run_dir=tmp_path / "run")
    message = str(err.value)
    assert "epoch 2, step 1" in message and "last.pt" in message and "--resume" in message
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())


# --- CLI and bad input ----------------------------------------------------------------------------------

def test_cli_train_teacher_distill_evaluate(tiny_frames, tmp_path):
    opts = tiny_cli_options(tiny_frames, tmp_path)
    result = cli("train-teacher", "--dataset", "digits-dvs", "--run-dir", str(tmp_path / "t"), *opts)
    assert result.exit_code == 0, result.output
    assert "teacher: best validation accuracy" in result.output
    result = cli("distill", "--dataset", "digits-dvs", "--teacher", str(tmp_path / "t" / "best.pt"),
                 "--run-dir", str(tmp_path / "s"), "--variant", "reference", "--epochs", "1", *opts)
    assert result.exit_code == 0, result.output
    best = load_checkpoint(tmp_path / "s" / "best.pt", "student")
    saved = best["config"]["loss"]
    assert saved["samd_variant"] == saved["nld_variant"] == "reference"
    assert (tmp_path / "s" / "config.toml").read_text().count("reference") == 2
    result = cli("evaluate", "--checkpoint", str(tmp_path / "s" / "best.pt"))
    assert result.exit_code == 0, result.output
    assert f"student (epoch {best['epoch']}): test accuracy" in result.output and "firing rate" in result.output
    direct = run_evaluate(str(tmp_path / "s" / "best.pt"))
    assert direct["n"] == 10 and 0 <= direct["acc"] <= 1


def test_evaluate_bad_checkpoints(tmp_path):
    assert_user_error(cli("evaluate", "--checkpoint", str(tmp_path / "missing.pt")), "does not exist")
    corrupt = tmp_path / "corrupt.pt"
    # random bytes that make torch.load raise UnpicklingError, IndexError, UnicodeDecodeError, KeyError
    for seed in (0, 17, 54, 62):
        corrupt.write_bytes(np.random.default_rng(seed).integers(0, 256, 300, dtype=np.uint8).tobytes())
        assert_user_error(cli("evaluate", "--checkpoint", str(corrupt)), "not a readable checkpoint")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    assert_user_error(cli("evaluate", "--checkpoint", str(foreign)), "not a ckdsnn-events checkpoint")


def _doctored_teacher(source: str, path: Path, **changes) -> str:
    payload = load_checkpoint(source)
    payload.update(changes)
    save_checkpoint(path, {k: v for k, v in payload.items() if k != "format"})
    return str(path)


def test_distill_rejects_incompatible_teachers(trained_student, tiny_frames, tmp_path):
    opts = tiny_cli_options(tiny_frames, tmp_path)
    teacher = trained_student["teacher_checkpoint"]
    cases = [
        (str(tmp_path / "none.pt"), ["--teacher", "does not exist"]),
        (str(Path(trained_student["best_checkpoint"])), ["holds a student model, but a teacher is needed"]),
        (_doctored_teacher(teacher, tmp_path / "classes.pt", num_classes=7), ["7 classes, the data has 10"]),
        (_doctored_teacher(teacher, tmp_path / "arch.pt", arch="resnet19"), ["architecture resnet19"]),
    ]
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(Path(teacher).read_bytes()[:2000])
    cases.append((str(truncated), ["not a readable checkpoint"]))
    weights = load_checkpoint(teacher)
    weights["model"] = {k: v for k, v in list(weights["model"].items())[:-2]}
    save_checkpoint(tmp_path / "weights.pt", {k: v for k, v in weights.items() if k != "format"})
    cases.append((str(tmp_path / "weights.pt"), ["does not fit the model"]))
    for path, fragments in cases:
        run_dir = tmp_path / f"run-{Path(path).stem}"
        result = cli("distill", "--dataset", "digits-dvs", "--teacher", path, "--run-dir", str(run_dir), *opts)
        assert_user_error(result, *fragments)
        assert not (run_dir / "last.pt").exists()


@pytest.mark.parametrize("override, fragment", [
    ("loss.beta=-1", "beta"),
    ("loss.samd_temperature=0", "samd_temperature"),
    ("loss.nld_variant=other", "nld_variant"),
    ("model.student=vgg16", "model.student 'vgg16'"),
    ("model.teacher=resnet50", "model.teacher 'resnet50'"),
    ("optim.lr=-0.1", "optim.lr"),
    ("data.timesteps=0", "timesteps"),
    ("optim.warmup_epochs=5", "warmup_epochs"),
])
def test_invalid_hyper_parameters_fail_before_training(tiny_frames, tmp_path, override, fragment):
    result = cli("distill", "--dataset", "digits-dvs", "--run-dir", str(tmp_path / "run"),
                 *tiny_cli_options(tiny_frames, tmp_path), "--set", override)
    assert_user_error(result, fragment)
    assert not (tmp_path / "run").exists() and not (tmp_path / "digits-dvs").exists()


def test_missing_frame_store_is_a_clear_error(tmp_path):
    result = cli("train-teacher", "--dataset", "digits-dvs", "--root", str(tmp_path / "nothing"),
                 "--device", "cpu", "--set", f"runs_root={tmp_path}")
    assert_user_error(result, "preprocess")


# --- distributed ----------------------------------------------------------------------------------------

def _torchrun(nproc: int, frames: Path, run_dir: Path, teacher: str, batch: int) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "ckdsnn_events.cli", "distill", "--dataset", "digits-dvs", "--root", str(frames),
               "--teacher", teacher, "--run-dir", str(run_dir), "--device", "cpu", "--workers", "0",
               "--batch-size", str(batch), "--set", "data.augment=false", "--set", "loss.noise_weight=0",
               "--set", "model.student_width=8", "--set", "model.teacher_width=8", "--set", "optim.epochs=1",
               "--set", "optim.warmup_epochs=0", "--set", "data.val_fraction=0.34",
               "--set", "model.init_from_teacher=true",
               # the reference SAMD min-max normalises over the (local) batch, so only the paper form,
               # which is per sample, is expected to give the same step on 1 and 2 ranks
               "--set", "loss.samd_variant=paper"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_two_processes_train_the_same_model_as_one(trained_student, tiny_frames, tmp_path):
    """DDP on CPU (gloo): 2 ranks x batch 5 make the same SGD step as 1 rank x batch 10.

    One step over the whole training split (10 samples), starting from the teacher's weights, so
    that the update can be compared: float32 reductions run in another order on 2 ranks, which can
    flip the odd spike whose membrane sits within ~1e-7 of the threshold, hence a tolerance of 0.5 %
    of each tensor's update (measured: 3e-6; a stale parameter or a different batch gave 4-100 %).
    """
    teacher = trained_student["teacher_checkpoint"]
    _torchrun(1, tiny_frames, tmp_path / "one", teacher, 10)
    _torchrun(2, tiny_frames, tmp_path / "two", teacher, 5)
    start = load_checkpoint(teacher)["model"]
    one = load_checkpoint(tmp_path / "one" / "last.pt")["model"]
    two = load_checkpoint(tmp_path / "two" / "last.pt")["model"]
    assert one.keys() == two.keys() == start.keys()
    for key in one:
        if key.endswith("num_batches_tracked"):
            assert torch.equal(one[key], two[key]), key
            continue
        update_one, update_two = one[key] - start[key], two[key] - start[key]
        assert update_one.norm() > 0, key
        error = float((update_one - update_two).norm() / update_one.norm())
        assert error < 5e-3, f"{key}: updates differ by {error:.2e} of their norm"
    rows = [list(csv.DictReader(open(tmp_path / d / "metrics.csv"))) for d in ("one", "two")]
    assert len(rows[0]) == len(rows[1]) == 1
    assert math.isclose(float(rows[0][0]["train_loss"]), float(rows[1][0]["train_loss"]), rel_tol=1e-3)
def test_student_can_start_from_the_teacher_weights(trained_student, tiny_frames, tmp_path):
    teacher_path = trained_student["teacher_checkpoint"]
    config = tiny_config(tiny_frames, tmp_path, teacher_checkpoint=teacher_path,
                         **{"optim.epochs": 1, "optim.lr": 1e-9, "model.init_from_teacher": True})
    result = run_distill(config, progress=False, run_dir=tmp_path / "run")
    student = load_checkpoint(result["last_checkpoint"])["model"]
    teacher = load_checkpoint(teacher_path)["model"]
    assert torch.allclose(student["conv1.weight"], teacher["conv1.weight"], atol=1e-6)
    assert torch.allclose(student["fc.weight"], teacher["fc.weight"], atol=1e-6)
    # --resume of a run that has no last.pt yet (killed in its first epoch, or never started) is a
    # fresh start and starts from the teacher's weights too
    resumed = run_distill(config, resume=True, progress=False, run_dir=tmp_path / "fresh")
    student = load_checkpoint(resumed["last_checkpoint"])["model"]
    assert torch.allclose(student["conv1.weight"], teacher["conv1.weight"], atol=1e-6)
    with pytest.raises(UserError, match="init_from_teacher"):
        tiny_config(tiny_frames, tmp_path, **{"model.init_from_teacher": True, "model.student_width": 4})


def test_a_missing_split_is_a_clear_error():
    from ckdsnn_events.pipelines.train import pick_split

    assert pick_split(("a", None, "c"), "test") == "c"
    with pytest.raises(UserError, match="--split val: this run has no val split"):
        pick_split(("a", None, "c"), "val")
