"""`ckd-events energy`, `saliency`, `demo` and `make energy-report`: outputs, numbers, bad input."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import assert_user_error

from ckdsnn_events.checkpoints import load_checkpoint
from ckdsnn_events.cli.main import main
from ckdsnn_events.energy.report_types import EnergyReport
from ckdsnn_events.energy.report import render_markdown
from ckdsnn_events.pipelines.energy import run_energy, take

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def student_run(trained_student, tmp_path_factory) -> Path:
    """A copy of the trained student's run directory (reports get written into it)."""
    run = tmp_path_factory.mktemp("energy-run") / "student"
    shutil.copytree(trained_student["run_dir"], run)
    return run


def test_energy_report_files_and_numbers(student_run, trained_student):
    result = cli("energy", "--checkpoint", str(student_run / "best.pt"))
    assert result.exit_code == 0, result.output
    assert "ANN/SNN energy" in result.output
    summary = json.loads((student_run / "energy.json").read_text())
    report = EnergyReport.from_dict(summary["student"]["report"])
    totals = report.totals()
    assert math.isclose(totals["energy_pj"], 0.9 * totals["sops"] + 4.6 * totals["macs"], rel_tol=1e-9)
    assert report.n_samples == 10 and report.timesteps == 3
    assert totals["sops"] > 0 and totals["macs"] > 0
    assert 0 < totals["neuron_firing_rate"] < 1
    kinds = {layer.name: layer.input_kind for layer in report.layers}
    assert list(kinds.values()).count("real") == 1  # the stem conv sees event counts: MACs
    assert kinds["fc"] == "pooled-spikes"
    teacher = EnergyReport.from_dict(summary["teacher"]["report"])
    assert teacher.sops == 0 and teacher.macs > 0
    assert math.isclose(summary["ann_to_snn_energy"], teacher.energy_pj / report.energy_pj)
    assert 0 <= summary["teacher"]["accuracy"] <= 1 and summary["teacher"]["samples"] == 10
    # the accuracy counted here is the one `evaluate` reports
    evaluated = cli("evaluate", "--checkpoint", str(student_run / "best.pt"))
    assert f"{100 * summary['student']['accuracy']:.2f}%" in evaluated.output
    md = (student_run / "energy.md").read_text()
    for text in ("| layer | type |", "**total**", "ANN teacher", "E_AC = 0.9 pJ", "E_MAC = 4.6 pJ", "ANN / SNN energy"):
        assert text in md
    assert (student_run / "energy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_energy_presets_and_custom_values(student_run, tmp_path):
    out = run_energy(str(student_run / "best.pt"), preset="45nm-int8", out_dir=tmp_path / "int8", progress=False)
    assert out["costs"] == {"preset": "45nm-int8", "e_ac_pj": 0.03, "e_mac_pj": 0.23}
    custom = run_energy(str(student_run / "best.pt"), e_ac_pj=1.0, e_mac_pj=0.0, out_dir=tmp_path / "c",
                        limit=4, progress=False)
    totals = custom["student"]["report"]["totals"]
    assert custom["student"]["report"]["n_samples"] == 4
    assert math.isclose(totals["energy_pj"], totals["sops"])


def test_energy_bad_input(student_run, trained_student, tmp_path):
    best = str(student_run / "best.pt")
    assert_user_error(cli("energy", "--checkpoint", str(tmp_path / "none" / "best.pt")), "does not exist")
    assert not (tmp_path / "none").exists()
    assert_user_error(cli("energy", "--checkpoint", trained_student["teacher_checkpoint"], "--out", str(tmp_path / "a")),
                      "holds a teacher model, but a student is needed")
    assert not (tmp_path / "a" / "energy.json").exists()
    assert_user_error(cli("energy", "--checkpoint", best, "--preset", "7nm", "--out", str(tmp_path / "b")),
                      "unknown energy preset", "45nm-fp32")
    assert not (tmp_path / "b").exists()
    assert_user_error(cli("energy", "--checkpoint", best, "--e-ac-pj", "-1"), "e_ac_pj")
    assert_user_error(cli("energy", "--checkpoint", best, "--limit", "0"), "--limit")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_user_error(cli("energy", "--checkpoint", best, "--out", str(blocker / "sub")), "cannot write")
    assert_user_error(cli("energy"), "exactly one of")
    assert_user_error(cli("energy", "--run-dir", str(tmp_path)), "holds no best.pt")


def test_energy_rejects_a_dataset_that_does_not_match(student_run, digits_dvs_root, tmp_path):
    from ckdsnn_events.pipelines.preprocess import PreprocessConfig, run_preprocess

    other = tmp_path / "frames12"
    run_preprocess(PreprocessConfig(dataset="digits-dvs", root=str(digits_dvs_root), out=str(other), timesteps=3,
                                    size=12, workers=0), progress=False)
    result = cli("energy", "--checkpoint", str(student_run / "best.pt"), "--root", str(other),
                 "--out", str(tmp_path / "out"))
    assert_user_error(result, "does not fit the dataset", "(16, 16)", "(12, 12)")
    assert not (tmp_path / "out" / "energy.json").exists()


def test_latest_run_and_make_energy_report(student_run, tmp_path):
    runs = student_run.parent
    result = cli("energy", "--latest", "--runs-root", str(runs))
    assert result.exit_code == 0, result.output
    assert f"latest student run: {student_run / 'best.pt'}" in result.output
    empty = cli("energy", "--latest", "--runs-root", str(tmp_path / "empty"))
    assert_user_error(empty, "no student run found", "make demo")
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    ckd = Path(sys.executable).parent / "ckd-events"  # the console script of this environment
    if not ckd.is_file():
        pytest.skip(f"no ckd-events console script beside {sys.executable}")
    done = subprocess.run([make, "-s", "-C", str(REPO), "energy-report", f"RUNS={tmp_path / 'empty'}", f"CKD={ckd}"],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "no student run found" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([make, "-s", "-C", str(REPO), "energy-report", f"RUN={student_run}", f"CKD={ckd}"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "energy.md" in done.stdout


def test_saliency_grid(student_run, tmp_path):
    out = tmp_path / "grid.png"
    result = cli("saliency", "--checkpoint", str(student_run / "best.pt"), "--samples", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert_user_error(cli("saliency", "--checkpoint", str(student_run / "best.pt"), "--samples", "0"), "--samples")
    teacher = load_checkpoint(student_run / "best.pt")["config"]["teacher_checkpoint"]
    assert_user_error(cli("saliency", "--checkpoint", teacher, "--out", str(tmp_path / "t.png")),
                      "holds a teacher model, but a student is needed")
    assert not (tmp_path / "t.png").exists()


def test_demo_rejects_bad_overrides_before_simulating(tmp_path):
    result = cli("demo", "--data", str(tmp_path / "data"), "--set", "optim.epochs=0")
    assert_user_error(result, "optim.epochs")
    assert not (tmp_path / "data").exists()


def test_take_cuts_the_last_batch_and_keeps_stride_zero():
    from ckdsnn_events.data.batch import Batch

    images = torch.rand(4, 1, 2, 2)
    batch = Batch(images.unsqueeze(0).expand(3, -1, -1, -1, -1), images, torch.arange(4))
    cut = list(take([batch, batch], 6))
    assert [len(b.labels) for b in cut] == [4, 2]
    assert cut[1].inputs.stride(0) == 0 and cut[1].inputs.shape == (3, 2, 1, 2, 2)


def test_markdown_without_teacher():
    summary = {"meta": {"dataset": "x"}, "costs": {"preset": "45nm-fp32", "e_ac_pj": 0.9, "e_mac_pj": 4.6},
               "student": {"accuracy": 0.5, "samples": 2, "report": {"timesteps": 2, "n_samples": 2, "layers": [],
                                                                       "totals": {"sops": 0.0, "macs": 0.0,
                                                                                  "approx_sops": 0.0, "energy_pj": 0.0,
                                                                                  "approx_energy_pj": 0.0}}},
               "teacher": None, "ann_to_snn_energy": None}
    assert "No teacher checkpoint" in render_markdown(summary)


def test_demo_runs_end_to_end_through_the_cli(tmp_path):
    """The README's first command at a tiny size: simulate -> ... -> energy report, one CLI call."""
    args = ["demo", "--data", str(tmp_path / "data"), "--runs-root", str(tmp_path / "runs"), "--limit", "4",
            "-T", "3", "--size", "16", "--workers", "0"]
    for override in ("optim.epochs=1", "teacher_optim.epochs=1", "optim.warmup_epochs=0",
                     "teacher_optim.warmup_epochs=0", "model.student_width=4", "model.teacher_width=4",
                     "data.workers=0", "data.batch_size=8", "data.val_fraction=0.25", "device=cpu"):
        args += ["--set", override]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    for text in ("teacher ANN test accuracy", "student SNN test accuracy", "ANN/SNN", "report:"):
        assert text in result.output
    report = next((tmp_path / "runs").glob("digits-dvs/student-*/energy.md"))
    assert report.is_file()
    again = cli(*args)  # resumable: a second run finds everything done
    assert again.exit_code == 0, again.output
    assert load_checkpoint(report.parent / "last.pt")["epoch"] == 1
