"""Ablation studies (paired seeds, statistics, resumption), training curves, reproducibility."""

from __future__ import annotations

import csv
import math
import shutil
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import assert_user_error, tiny_config

from ckdsnn_events.checkpoints import load_checkpoint
from ckdsnn_events.cli.main import main
from ckdsnn_events.errors import UserError
from ckdsnn_events.pipelines import ablate
from ckdsnn_events.pipelines.ablate_report import t_interval
from ckdsnn_events.pipelines.train import run_distill


def test_t_interval_matches_the_t_table():
    values = [61.0, 64.5, 59.0, 66.0, 62.5]
    mean, std, half = t_interval(values)
    assert mean == pytest.approx(statistics.fmean(values))
    assert std == pytest.approx(statistics.stdev(values))
    assert half == pytest.approx(2.776445 * std / math.sqrt(5), rel=1e-5)  # t_{0.975, 4}
    assert math.isnan(t_interval([1.0])[2])


def test_every_study_has_its_rows_and_a_baseline_among_them():
    expected = {"terms": ["ce", "kd", "kdsnn", "samd", "nld", "samd+nld"],
                "scaling": ["softmax", "none", "zscore", "l2"],
                "stage": ["stage1", "stage2", "stage3"],
                "maps": ["sam", "gradcam"],
                "noise": ["adaptive", "fixed1", "fixed5", "none"]}
    for study, names in expected.items():
        rows, baseline = ablate.study_rows(study, stages=3)
        assert [r.name for r in rows] == names
        assert baseline in names
    rows, _ = ablate.study_rows("terms", 3)
    by_name = {r.name: r.loss for r in rows}
    assert by_name["ce"] == {"beta": 0, "gamma": 0, "alpha_kd": 0, "alpha_feat": 0}
    assert by_name["samd+nld"]["beta"] == by_name["samd+nld"]["gamma"] == 1
    assert by_name["kdsnn"]["alpha_feat"] == 1
    with pytest.raises(UserError, match="--study"):
        ablate.study_rows("bogus", 3)


def test_ablation_is_paired_tabulated_and_resumable(trained_student, tiny_frames, tmp_path, monkeypatch):
    teacher = trained_student["teacher_checkpoint"]
    config = tiny_config(tiny_frames, tmp_path, teacher_checkpoint=teacher, **{"optim.epochs": 1})
    out = tmp_path / "maps"
    result = ablate.run_ablation(config, "maps", seeds=2, out_dir=out, progress=False)
    for name in ("ablation.md", "ablation.csv", "ablation.png", "ablation.json"):
        assert (out / name).is_file(), name
    lines = list(csv.DictReader(open(out / "ablation.csv")))
    assert sorted((r["row"], int(r["seed"])) for r in lines) == [("gradcam", 0), ("gradcam", 1), ("sam", 0), ("sam", 1)]
    for r in lines:  # every run distilled from the same teacher, with its row's loss and its seed
        saved = load_checkpoint(Path(r["run_dir"]) / "best.pt", "student")
        assert saved["config"]["teacher_checkpoint"] == teacher
        assert saved["config"]["seed"] == int(r["seed"])
        assert saved["config"]["loss"]["samd_map"] == r["row"]
    acc = {(r["row"], int(r["seed"])): float(r["test_acc"]) for r in lines}
    table = {row["row"]: row for row in result["table"]}
    diffs = [acc[("gradcam", s)] - acc[("sam", s)] for s in (0, 1)]
    assert table["gradcam"]["diff_mean"] == pytest.approx(statistics.fmean(diffs), abs=1e-3)
    assert table["gradcam"]["diff_ci"] == pytest.approx(
        12.7062 * statistics.stdev(diffs) / math.sqrt(2), rel=1e-3, abs=1e-3)
    assert "paired diff." in result["markdown"] and "95 % CI" in result["markdown"]
    teacher_state = load_checkpoint(teacher, "teacher")
    teacher_row = next(r for r in csv.DictReader(open(Path(teacher).parent / "metrics.csv"))
                       if int(r["epoch"]) == teacher_state["epoch"])
    assert f"Teacher: {100 * float(teacher_row['test_acc']):.2f} % test accuracy" in result["markdown"]

    # a second call trains nothing and gives the same table
    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("ckdsnn_events.pipelines.train.run_distill", no_training)
    again = ablate.run_ablation(config, "maps", seeds=2, out_dir=out, progress=False)
    assert again["markdown"] == result["markdown"]

    # an interrupted study (killed before one run's first checkpoint) trains only that run
    monkeypatch.undo()
    calls = []

    def counting(config, resume=False, **kwargs):
        calls.append((config.seed, config.loss.samd_map, resume))
        return run_distill(config, resume=resume, **kwargs)

    monkeypatch.setattr("ckdsnn_events.pipelines.train.run_distill", counting)
    shutil.rmtree(out / "gradcam-seed1")
    ablate.run_ablation(config, "maps", seeds=2, out_dir=out, progress=False)
    assert calls == [(1, "gradcam", False)]


def test_a_run_of_other_settings_is_refused_and_identical_runs_are_shared(trained_student, tiny_frames, tmp_path,
                                                                          monkeypatch):
    teacher = trained_student["teacher_checkpoint"]
    config = tiny_config(tiny_frames, tmp_path, teacher_checkpoint=teacher, **{"optim.epochs": 1})
    maps = ablate.run_ablation(config, "maps", seeds=1, out_dir=tmp_path / "studies" / "maps", progress=False)
    sam = next(r for r in maps["table"] if r["row"] == "sam")

    # the noise study's adaptive row is the maps study's SAM row (both CKDSNN): read, not trained again
    trained = []

    def counting(config, resume=False, **kwargs):
        trained.append((config.loss.nld_noise, config.loss.nld_noise_std))
        return run_distill(config, resume=resume, **kwargs)

    monkeypatch.setattr("ckdsnn_events.pipelines.train.run_distill", counting)
    noise = ablate.run_ablation(config, "noise", seeds=1, out_dir=tmp_path / "studies" / "noise", progress=False)
    assert trained == [("fixed", 1.0), ("fixed", 5.0), ("none", 1.0)]
    adaptive = next(r for r in noise["table"] if r["row"] == "adaptive")
    assert adaptive["accs"] == sam["accs"]
    lines = {r["row"]: r for r in csv.DictReader(open(tmp_path / "studies" / "noise" / "ablation.csv"))}
    assert Path(lines["adaptive"]["run_dir"]) == tmp_path / "studies" / "maps" / "sam-seed0"
    assert "1 read from another study" in noise["markdown"]

    # other base settings in the same folder: refused with the first difference named, nothing trained
    monkeypatch.undo()
    other = tiny_config(tiny_frames, tmp_path, teacher_checkpoint=teacher,
                        **{"optim.epochs": 1, "loss.samd_norm": "sample-minmax"})
    before = sorted(p.name for p in (tmp_path / "studies" / "maps").iterdir())
    with pytest.raises(UserError, match=r"other settings \(config\.loss\.samd_norm"):
        ablate.run_ablation(other, "maps", seeds=1, out_dir=tmp_path / "studies" / "maps", progress=False)
    assert sorted(p.name for p in (tmp_path / "studies" / "maps").iterdir()) == before

    # a damaged record, or a run without one, is refused with the folder named
    (tmp_path / "studies" / "maps" / "sam-seed0" / ablate.RUN_RECORD).write_text("{not json")
    with pytest.raises(UserError, match=r"sam-seed0/ablation-run.json' is not readable JSON"):
        ablate.run_ablation(config, "maps", seeds=1, out_dir=tmp_path / "studies" / "maps", progress=False)
    (tmp_path / "studies" / "maps" / "sam-seed0" / ablate.RUN_RECORD).unlink()
    with pytest.raises(UserError, match=r"sam-seed0' holds a run without its ablation-run.json"):
        ablate.run_ablation(config, "maps", seeds=1, out_dir=tmp_path / "studies" / "maps", progress=False)


def test_ablate_cli_bad_study_and_seeds(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["ablate", "--study", "bogus", "--dataset", "digits-dvs"])
    assert result.exit_code == 2 and "bogus" in result.output
    result = runner.invoke(main, ["ablate", "--study", "terms", "--dataset", "digits-dvs", "--root",
                                  str(tmp_path / "none"), "--set", f"runs_root={tmp_path}", "--device", "cpu"])
    assert_user_error(result, "preprocess")


def test_every_run_directory_gets_curves_and_plot_overlays_runs(trained_student, tmp_path):
    run_dir = Path(trained_student["run_dir"])
    assert (run_dir / "curves.png").stat().st_size > 1000
    teacher_dir = Path(trained_student["teacher_checkpoint"]).parent
    assert (teacher_dir / "curves.png").is_file()
    out = tmp_path / "overlay.png"
    result = CliRunner().invoke(main, ["plot", str(run_dir), str(teacher_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_user_error(CliRunner().invoke(main, ["plot", str(tmp_path / "nothing")]), "metrics.csv")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.csv").write_text("not,a\nmetrics,file\n")
    assert_user_error(CliRunner().invoke(main, ["plot", str(bad)]), "metrics.csv")


def _metrics_without_time(path: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(open(path))]


def test_same_seed_gives_identical_metrics_end_to_end(tiny_frames, tmp_path):
    # teacher trained, cached and distilled twice from nothing, in separate runs roots
    results = [run_distill(tiny_config(tiny_frames, tmp_path / name), progress=False, run_dir=tmp_path / name / "s")
               for name in ("a", "b")]
    teachers = [Path(r["teacher_checkpoint"]).parent / "metrics.csv" for r in results]
    assert _metrics_without_time(teachers[0]) == _metrics_without_time(teachers[1])
    students = [Path(r["run_dir"]) / "metrics.csv" for r in results]
    first = _metrics_without_time(students[0])
    assert first == _metrics_without_time(students[1])
    assert len(first) == 2 and first[0]["train_samd"] not in ("", None)


def test_make_results_commands_parse():
    """Every ckd-events command `make results` runs names real options with valid values."""
    import re
    import shlex
    import subprocess

    dry = subprocess.run(["make", "-n", "results", "RUNS=/tmp/runs"], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    commands = []
    for line in dry.replace("\\\n", " ").replace("$study", "terms").splitlines():
        for segment in re.split(r";|\|\||&&", line):  # the shell loop: for ...; do CMD || exit 1; done
            words = shlex.split(segment)
            words = words[1:] if words[:1] == ["do"] else words
            if words and words[0].endswith("ckd-events"):
                commands.append(words[1:])
    names = [c[0] for c in commands]
    assert names[0] == "demo" and "ablate" in names and "distill" in names, names
    for args in commands:
        command = main.commands[args[0]]
        command.make_context(args[0], args[1:])  # raises click.UsageError on an unknown option or a bad value
