"""Run assembly: the device, the models a config names, and the checks between runs and data.

Everything a stage needs before its loop starts lives here, once: the device
(:func:`prepare_device`, which also sets up the CPU allocator), the teacher or student of a config
(:func:`make_model`, with the config's neuron as :class:`~ckdsnn_events.models.LIFParameters`
from :func:`neuron_parameters`), what a new checkpoint records (:func:`checkpoint_header`), a saved
model rebuilt from its checkpoint (:func:`model_from_checkpoint`), whether a checkpoint fits the
data at hand (:func:`checkpoint_misfits`), and the guard against training over an existing run
(:func:`check_run_dir_free`). Training, distillation, evaluation, energy and saliency all go
through it, so they agree on each of these.
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch import nn

from ckdsnn_events.checkpoints import build_for_state
from ckdsnn_events.config import to_dict
from ckdsnn_events.data.loaders import DatasetInfo
from ckdsnn_events.distill.config import ModelConfig, RunConfig
from ckdsnn_events.errors import UserError
from ckdsnn_events.models import LIFParameters, build_student, build_teacher, neuron_options, reuse_freed_memory
from ckdsnn_events.models.arch import check_same_options, recorded_options


def pick_device(name: str) -> torch.device:
    """``"auto"``: CUDA when available (the local rank's GPU under torchrun), else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device '{name}' is not a torch device; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device '{name}' asked for, but CUDA is not available here; use --device cpu.")
    return device


def prepare_device(name: str) -> torch.device:
    """:func:`pick_device`, and on the CPU :func:`~ckdsnn_events.models.reuse_freed_memory` first.

    Every entry point that runs a model calls this: without the allocator set-up a CPU student's
    steps page-fault on every freed activation (an inference step measured 2.2x slower, a
    training step ~1.8x).
    """
    device = pick_device(name)
    if device.type == "cpu":
        reuse_freed_memory()
    return device


def neuron_parameters(model: ModelConfig) -> LIFParameters:
    """The student's neuron as the config's ``[model]`` section describes it (checked for its backend)."""
    return neuron_options(model)[0]


def make_model(kind: str, config: RunConfig, info: DatasetInfo) -> nn.Module:
    """The teacher or student the config names, for the dataset ``info`` describes."""
    m = config.model
    if kind == "teacher":
        return build_teacher(m.teacher, num_classes=info.num_classes, in_channels=info.in_channels, width=m.teacher_width,
                             downsample=m.downsample)
    return build_student(m.student, num_classes=info.num_classes, in_channels=info.in_channels,
                         width=m.student_width, neuron=neuron_parameters(m), last_block=m.last_block, head=m.head,
                         downsample=m.downsample, connect=m.connect, neuron_backend=m.neuron_backend)


def architecture(kind: str, model: ModelConfig) -> tuple[str, int | None]:
    """``(name, width)`` of the ``kind`` ("teacher" or "student") model the ``[model]`` section names."""
    if kind == "teacher":
        return model.teacher, model.teacher_width
    return model.student, model.student_width


def checkpoint_header(kind: str, config: RunConfig, info: DatasetInfo) -> dict:
    """What every checkpoint of a run says about its model and data (see :mod:`ckdsnn_events.checkpoints`)."""
    arch, width = architecture(kind, config.model)
    return {"kind": kind, "arch": arch, "width": width,
            "num_classes": info.num_classes, "in_channels": info.in_channels,
            "neuron": asdict(neuron_parameters(config.model)) if kind == "student" else None,
            "dataset": {"name": info.name, "kind": info.kind, "classes": list(info.classes),
                        "input_size": list(info.input_size), "timesteps": info.timesteps,
                        "encoder": info.encoder},
            "config": to_dict(config)}


def model_from_checkpoint(payload: dict, config: RunConfig, info: DatasetInfo, path: str | os.PathLike,
                          option: str) -> tuple[RunConfig, nn.Module]:
    """The ``payload["kind"]`` model of a loaded checkpoint with its weights, and ``config`` with its width.

    The width is the checkpoint's (``None``: the architecture's own), whatever ``config`` says.
    """
    kind = payload["kind"]
    width = {"teacher_width" if kind == "teacher" else "student_width": payload.get("width")}
    config = replace(config, model=replace(config.model, **width))
    with torch.device("meta"):  # options first (the clearer message), on a model that allocates nothing
        check_same_options(payload.get("options"), recorded_options(make_model(kind, config, info)), f"{option} '{path}'")
    # the shapes are checked on the meta device too: edited fields cannot make a huge model
    model = build_for_state(lambda: make_model(kind, config, info), payload["model"], path, option)
    return config, model


def checkpoint_misfits(payload: dict, info: DatasetInfo, shapes: bool = True) -> list[str]:
    """What keeps a checkpoint from the data ``info`` describes, one phrase each (empty: it fits).

    Always compared: classes and input channels. With ``shapes`` also the input size and, for
    students, T as recorded under the checkpoint's ``dataset``.
    """
    problems = []
    if payload.get("num_classes") != info.num_classes:
        problems.append(f"{payload.get('num_classes')} classes, the data has {info.num_classes}")
    if payload.get("in_channels") != info.in_channels:
        problems.append(f"{payload.get('in_channels')} input channels, the data has {info.in_channels}")
    if not shapes:
        return problems
    expected = payload.get("dataset") or {}
    if expected.get("input_size") and tuple(expected["input_size"]) != tuple(info.input_size):
        problems.append(f"inputs of {tuple(expected['input_size'])}, the data has {tuple(info.input_size)}")
    if payload.get("kind") == "student" and expected.get("timesteps") and expected["timesteps"] != info.timesteps:
        problems.append(f"T={expected['timesteps']}, the data has T={info.timesteps}")
    return problems


def check_run_dir_free(run_dir: str | os.PathLike, resume: bool) -> None:
    """UserError when ``run_dir`` already holds a run (``last.pt``) and ``resume`` is not asked for."""
    if not resume and (Path(run_dir) / "last.pt").exists():
        raise UserError(f"'{run_dir}' already holds a run (last.pt). Pass --resume to continue it, "
                        "or choose another --run-dir.")
