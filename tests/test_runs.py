"""Run assembly (distill/runs.py): every entry point that runs a model sets up the CPU allocator."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config

from ckdsnn_events.checkpoints import load_checkpoint
from ckdsnn_events.distill import runs
from ckdsnn_events.errors import UserError


@pytest.fixture
def allocator_calls(monkeypatch) -> list[int]:
    """Records every call of the allocator set-up that runs.prepare_device makes."""
    calls: list[int] = []
    monkeypatch.setattr(runs, "reuse_freed_memory", lambda: calls.append(1) or True)
    return calls


def test_prepare_device_sets_up_the_allocator_on_cpu_only(allocator_calls):
    assert runs.pick_device("cpu") == torch.device("cpu")
    assert allocator_calls == []  # picking a device has no side effect
    assert runs.prepare_device("cpu") == torch.device("cpu")
    assert allocator_calls == [1]


def _train(trained_student, tiny_frames, tmp_path):
    from ckdsnn_events.pipelines.train import run_train_teacher

    run_train_teacher(tiny_config(tiny_frames, tmp_path), progress=False, run_dir=tmp_path / "teacher")


def _distill(trained_student, tiny_frames, tmp_path):
    from ckdsnn_events.pipelines.train import run_distill

    config = tiny_config(tiny_frames, tmp_path, **{"optim.epochs": 1,
                                                   "teacher_checkpoint": trained_student["teacher_checkpoint"]})
    run_distill(config, progress=False, run_dir=tmp_path / "student")


def _evaluate(trained_student, tiny_frames, tmp_path):
    from ckdsnn_events.pipelines.train import run_evaluate

    run_evaluate(trained_student["best_checkpoint"])


def _energy(trained_student, tiny_frames, tmp_path):
    from ckdsnn_events.pipelines.energy import run_energy

    run_energy(trained_student["best_checkpoint"], limit=4, out_dir=tmp_path, progress=False)


def _saliency(trained_student, tiny_frames, tmp_path):
    from ckdsnn_events.pipelines.energy import run_saliency

    run_saliency(trained_student["best_checkpoint"], samples=2, out=tmp_path / "saliency.png")


@pytest.mark.parametrize("entry_point", [_train, _distill, _evaluate, _energy, _saliency],
                         ids=["train", "distill", "evaluate", "energy", "saliency"])
def test_every_entry_point_that_runs_a_model_sets_up_the_allocator(
        entry_point, allocator_calls, trained_student, tiny_frames, tmp_path):
    assert load_checkpoint(trained_student["best_checkpoint"])["config"]["device"] == "cpu"
    entry_point(trained_student, tiny_frames, tmp_path)
    assert allocator_calls, f"{entry_point.__name__[1:]} ran its model on the CPU without reuse_freed_memory()"


def test_checkpoint_misfits_names_each_difference(trained_student):
    from ckdsnn_events.data.loaders import DatasetInfo

    payload = load_checkpoint(trained_student["best_checkpoint"], "student")
    info = trained_student["info"]
    assert runs.checkpoint_misfits(payload, info) == []
    fields = {f: getattr(info, f) for f in DatasetInfo.__dataclass_fields__}
    other = DatasetInfo(**{**fields, "num_classes": info.num_classes + 1, "input_size": (7, 7),
                           "timesteps": info.timesteps + 1})
    problems = runs.checkpoint_misfits(payload, other)
    assert len(problems) == 3
    assert f"the data has {info.num_classes + 1}" in problems[0]
    assert "(7, 7)" in problems[1] and f"T={info.timesteps + 1}" in problems[2]
    assert runs.checkpoint_misfits(payload, other, shapes=False) == problems[:1]


def test_check_run_dir_free(tmp_path):
    runs.check_run_dir_free(tmp_path, resume=False)
    (tmp_path / "last.pt").write_bytes(b"")
    runs.check_run_dir_free(tmp_path, resume=True)
    with pytest.raises(UserError, match="already holds a run"):
        runs.check_run_dir_free(tmp_path, resume=False)


def test_neuron_parameters_carry_the_threshold():
    from ckdsnn_events.distill.config import ModelConfig

    neuron = runs.neuron_parameters(ModelConfig(threshold=0.7, decay=0.25, reset="subtract", surrogate_width=0.5))
    assert (neuron.v_th, neuron.decay, neuron.reset, neuron.surrogate_width) == (0.7, 0.25, "subtract", 0.5)
