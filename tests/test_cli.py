"""The ckd-events command line: help texts, exit codes, one-line errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from ckdsnn_events.cli.main import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_help_texts():
    result = run("--help")
    assert result.exit_code == 0 and "simulate" in result.output and "preprocess" in result.output
    for command, words in (("simulate", ["--images", "--noise-hz", "digits"]),
                           ("preprocess", ["--root", "--timesteps", "--skip-bad", "tonic", "SpikingJelly"])):
        result = run(command, "--help")
        assert result.exit_code == 0
        for word in words:
            assert word in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["preprocess", "--root", "x", "--out", "y", "--timesteps", "0"], "--timesteps"),
        (["preprocess", "--root", "x", "--out", "y", "--bins", "fast"], "--bins"),
        (["preprocess", "--out", "y"], "--root"),
        (["preprocess", "--root", "x", "--out", "y", "--split", "0"], "--split"),
        (["preprocess", "--root", "x", "--out", "y", "--dataset", "mnist"], "--dataset"),
        (["simulate", "--threshold", "0"], "--threshold"),
        (["simulate", "--limit", "0"], "--limit"),
    ],
)
def test_bad_options_exit_2_naming_the_option(args, message):
    result = run(*args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_user_errors_are_one_message_not_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ckdsnn_events", "preprocess", "--dataset", "cifar10dvs",
         "--root", str(tmp_path / "missing"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("Error: --root") and "Traceback" not in result.stderr
    assert "tonic.datasets.CIFAR10DVS" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_simulate_then_preprocess_through_the_cli(tmp_path):
    result = run("simulate", "--out", str(tmp_path / "dd"), "--limit", "2", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "20 recordings in 10 classes" in result.output
    result = run("preprocess", "--dataset", "digits-dvs", "--root", str(tmp_path / "dd"),
                 "--out", str(tmp_path / "f"), "--workers", "0", "--split", "0.5", "-T", "4")
    assert result.exit_code == 0, result.output
    assert "train: 10 samples" in result.output and "samples/s" in result.output
    again = run("preprocess", "--dataset", "digits-dvs", "--root", str(tmp_path / "dd"),
                "--out", str(tmp_path / "f"), "--workers", "0", "--split", "0.5", "-T", "4")
    assert "up to date" in again.output
    other = run("preprocess", "--dataset", "digits-dvs", "--root", str(tmp_path / "dd"),
                "--out", str(tmp_path / "f"), "--workers", "0", "--split", "0.5", "-T", "5")
    assert other.exit_code == 2 and other.output.startswith("Error:") and "--overwrite" in other.output


def test_version():
    result = subprocess.run([sys.executable, "-m", "ckdsnn_events", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "ckd-events" in result.stdout


def test_help_of_the_training_and_report_commands():
    for command, words in (("train-teacher", ["--dataset", "cifar10dvs", "--set", "--resume"]),
                           ("distill", ["--teacher", "--beta", "--gamma", "--variant", "torchrun"]),
                           ("evaluate", ["--checkpoint", "--split"]),
                           ("ablate", ["--study", "--seeds", "--quick"]),
                           ("energy", ["--preset", "--latest", "--run-dir", "45nm-int8"]),
                           ("saliency", ["--samples", "CAM"]),
                           ("demo", ["simulate", "energy", "--set"])):
        result = run(command, "--help")
        assert result.exit_code == 0, command
        for word in words:
            assert word in result.output, (command, word)


def test_preprocess_accepts_image_datasets_and_checks_them(tmp_path):
    result = run("preprocess", "--dataset", "digits")
    assert result.exit_code == 0, result.output
    assert "364 test images" in result.output and "encoded on the fly" in result.output
    assert "10 classes" in result.output and "nothing to write" in result.output
    result = run("preprocess", "--dataset", "cifar10", "--root", str(tmp_path / "nothing"))
    assert result.exit_code == 2 and "Traceback" not in result.output and "cifar-10-batches-py" in result.output
    result = run("preprocess", "--dataset", "digits-dvs", "--root", str(tmp_path))
    assert result.exit_code == 2 and "--out is required" in result.output
