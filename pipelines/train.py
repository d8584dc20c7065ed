"""Stages: train-teacher, distill, evaluate (the ablation studies are in ``ablate.py``).

A run is configured by a TOML recipe (``recipes/<dataset>.toml`` by default), command-line options
and ``--set section.key=value`` overrides; the resolved config is written to the run directory as
``config.toml`` before training starts.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

from ckdsnn_events.atomic import ensure_writable_dir, remove_stale_temps
from ckdsnn_events.checkpoints import RUN_FILES, load_checkpoint
from ckdsnn_events.config import apply_overrides, apply_values, from_dict, load_toml, to_dict, write_toml
from ckdsnn_events.distill.config import RunConfig
from ckdsnn_events.distill.presets import apply_preset
from ckdsnn_events.distill.runs import (
    architecture,
    check_run_dir_free,
    checkpoint_misfits,
    model_from_checkpoint,
    prepare_device,
)
from ckdsnn_events.errors import UserError
from ckdsnn_events.models.arch import check_same_options, recorded_options
from ckdsnn_events.models.registry import check_alignment, config_options

RECIPES = Path(__file__).resolve().parent / "recipes"


def recipe_path(dataset: str) -> Path:
    return RECIPES / f"{dataset}.toml"


def resolve_config(dataset: str, recipe: str | None = None, options: dict | None = None,
                   overrides: tuple[str, ...] = ()) -> RunConfig:
    """Recipe, then its preset (``preset`` from any of them), then CLI options (``{"optim.lr": 0.05,
    ...}``, None values skipped), then ``--set``."""
    # --recipe: a TOML file, or the name of a packaged recipe (e.g. cifar100-spikformer)
    packaged = recipe is not None and not Path(recipe).exists() and recipe_path(recipe).is_file()
    path = recipe_path(recipe) if packaged else Path(recipe) if recipe else recipe_path(dataset)
    if not recipe and not path.exists():
        raise UserError(f"no recipe for --dataset '{dataset}'; pass --recipe FILE.toml "
                        f"(recipes: {', '.join(sorted(p.stem for p in RECIPES.glob('*.toml')))}).")
    data = load_toml(path)
    data.setdefault("data", {})["dataset"] = dataset
    # the preset (named by any layer) sits between the recipe and the options given on top of it
    preset = apply_overrides(apply_values(data, options or {}), overrides).get("preset")
    if preset is not None:
        data = apply_preset(data, preset)
    data = apply_overrides(apply_values(data, options or {}), overrides)
    try:
        config = from_dict(RunConfig, data)
        config.validate()
        config.data.validate()
    except UserError as err:  # say where the values came from
        raise UserError(f"{err} (settings from recipe '{path}' and the command line)") from None
    if config.data.root:  # absolute: checkpoints record it, and evaluate may run from another folder
        config = replace(config, data=replace(config.data, root=str(Path(config.data.root).expanduser().resolve())))
    return config


def default_run_dir(config: RunConfig, kind: str, tag: str | None = None) -> Path:
    arch, _ = architecture(kind, config.model)
    name = f"{kind}-{arch}" + (f"-{tag}" if tag else "") + f"-seed{config.seed}"
    return Path(config.runs_root) / config.data.dataset / name


def _prepare_run_dir(config: RunConfig, run_dir: Path, resume: bool, kind: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 writes
        ensure_writable_dir(run_dir, "--run-dir")
        remove_stale_temps(run_dir, RUN_FILES)  # left by a kill -9 (atomic writes clean up otherwise)
        check_run_dir_free(run_dir, resume)
        if (run_dir / "last.pt").exists():  # before config.toml is rewritten: refuse other model options
            last = load_checkpoint(run_dir / "last.pt", kind, "--resume")
            check_same_options(last.get("options"), config_options(config, kind), f"--resume '{run_dir / 'last.pt'}'")
        from ckdsnn_events.data.loaders import store_split_protocol

        # the split protocol the event stores were made with goes into the run's record
        config = replace(config, data=replace(config.data, split_protocol=store_split_protocol(config.data)))
        write_toml(config, run_dir / "config.toml")


def run_train_teacher(config: RunConfig, resume: bool = False, progress: bool = True,
                      run_dir: Path | None = None, optim=None) -> dict:
    """Train the ANN teacher with CE on the teacher view of the data (settings: ``[teacher_optim]``)."""
    from ckdsnn_events.distill.trainer import fit

    run_dir = Path(run_dir or config.run_dir or default_run_dir(config, "teacher"))
    _prepare_run_dir(config, run_dir, resume, "teacher")
    return fit(config, "teacher", run_dir, optim=optim or config.teacher_optim, resume=resume, progress=progress)


def teacher_cache_dir(config: RunConfig) -> Path:
    """Where ``distill`` keeps the teacher it trained itself for this data and teacher setting."""
    key = {"data": to_dict(replace(config.data, workers=0, batch_size=0)), "teacher": config.model.teacher,
           "width": config.model.teacher_width, "optim": to_dict(config.teacher_optim), "seed": config.seed}
    if config.model.downsample:  # only when set, so that the caches made before the option keep their names
        key["downsample"] = config.model.downsample
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return Path(config.runs_root) / config.data.dataset / f"teacher-{config.model.teacher}-cached-{digest}"


def load_teacher(config: RunConfig, path: str | os.PathLike, info, option: str = "--teacher"):
    """The teacher checkpoint at ``path``, checked against the data and the config."""
    payload = load_checkpoint(path, "teacher", option)
    problems = checkpoint_misfits(payload, info, shapes=False)
    if payload.get("arch") != config.model.teacher:
        problems.append(f"architecture {payload.get('arch')}, the config names {config.model.teacher} "
                        f"(set --set model.teacher={payload.get('arch')})")
    if problems:
        raise UserError(f"{option} '{path}' does not fit this run: " + "; ".join(problems) + ".")
    if config.model.init_from_teacher and payload["width"] != config.model.student_width:
        raise UserError(f"{option} '{path}' has width {payload['width']}, the student {config.model.student_width}, and "
                        "model.init_from_teacher copies the teacher's weights into the student: pass --set "
                        f"model.student_width={payload['width']}, or --set model.init_from_teacher=false.")
    _, teacher = model_from_checkpoint(payload, config, info, path, option)
    return teacher


def ensure_teacher(config: RunConfig, progress: bool = True, info=None) -> tuple[Path, dict | None]:
    """The teacher checkpoint a student of ``config`` distils from, trained (and cached) if needed.

    Returns ``(path, result)``: the checkpoint made from ``model.teacher_weights`` when set (see
    :mod:`ckdsnn_events.pipelines.teacher_weights`; ``info`` is the dataset's DatasetInfo, read
    when not given), else ``config.teacher_checkpoint`` when set, else the cached teacher's best.pt
    (see :func:`teacher_cache_dir`); ``result`` is the training summary when the teacher was
    trained (or finished) now, None otherwise.
    """
    if config.model.teacher_weights:
        from ckdsnn_events.data.loaders import build_loaders
        from ckdsnn_events.pipelines.teacher_weights import teacher_from_weights

        info = info or build_loaders(replace(config.data, workers=0))[3]
        return teacher_from_weights(config, config.model.teacher_weights, info), None
    if config.teacher_checkpoint:
        return Path(config.teacher_checkpoint), None
    cache = teacher_cache_dir(config)
    teacher_path = cache / "best.pt"
    if teacher_path.exists() and not ((cache / "last.pt").exists() and not _finished(cache / "last.pt", config)):
        return teacher_path, None
    if progress:
        print(f"no teacher given: training one ({config.model.teacher}) into {cache}")
    result = run_train_teacher(config, resume=(cache / "last.pt").exists(), progress=progress, run_dir=cache,
                               optim=config.teacher_optim)
    return teacher_path, result


def run_distill(config: RunConfig, resume: bool = False, progress: bool = True, run_dir: Path | None = None,
                tag: str | None = None) -> dict:
    """Distil a spiking student from a teacher; trains (and caches) the teacher when none is given."""
    from ckdsnn_events.data.loaders import build_loaders
    from ckdsnn_events.distill.trainer import fit

    _, _, _, info = build_loaders(replace(config.data, workers=0))
    if config.loss.beta > 0 or config.loss.alpha_feat > 0:  # the maps SAMD / feature KD compare
        check_alignment(config.model.teacher, config.model.student, info.input_size)
    teacher_path, teacher_result = ensure_teacher(config, progress, info)
    option = ("--teacher" if config.teacher_checkpoint else "--teacher-weights" if config.model.teacher_weights
              else "cached teacher")
    teacher = load_teacher(config, teacher_path, info, option)
    config = replace(config, teacher_checkpoint=str(teacher_path))
    run_dir = Path(run_dir or config.run_dir or default_run_dir(config, "student", tag))
    _prepare_run_dir(config, run_dir, resume, "student")
    result = fit(config, "student", run_dir, optim=config.optim, teacher=teacher, resume=resume, progress=progress)
    result["teacher_checkpoint"] = str(teacher_path)
    result["teacher_result"] = teacher_result
    return result


def _finished(last: Path, config: RunConfig) -> bool:
    payload = load_checkpoint(last, "teacher", "cached teacher")
    return payload.get("epoch", 0) >= config.teacher_optim.epochs


def load_trained(checkpoint: str | os.PathLike, overrides: dict | None = None, kind: str | None = None,
                 option: str = "--checkpoint"):
    """A saved model, its config and the loaders of its dataset, checked against each other.

    Args:
        checkpoint: best.pt / last.pt of a teacher or student.
        overrides: ``[data]`` keys to change (``root`` when the data moved, ``batch_size``, ``workers``);
            None values are ignored.
        kind: "teacher" or "student" to insist on one.

    Returns:
        ``(payload, config, model, (train, val, test), info)``; the model is on the CPU in eval mode.
    """
    from ckdsnn_events.data.loaders import build_loaders

    payload = load_checkpoint(checkpoint, kind, option)
    try:
        config = from_dict(RunConfig, payload["config"])
        config.validate()
    except UserError as err:
        raise UserError(f"{option} '{checkpoint}' holds an invalid config ({err}).") from None
    if overrides:
        config = replace(config, data=replace(config.data, **{k: v for k, v in overrides.items() if v is not None}))
        config.data.validate()
    train, val, test, info = build_loaders(config.data)
    problems = checkpoint_misfits(payload, info)
    if problems:
        raise UserError(f"{option} '{checkpoint}' does not fit the dataset at '{config.data.root}': "
                        + "; ".join(problems) + ". Point --root at the dataset it was trained on.")
    config, model = model_from_checkpoint(payload, config, info, checkpoint, option)
    return payload, config, model.eval(), (train, val, test), info


def pick_split(loaders: tuple, split: str):
    """The loader of ``split`` ("train", "val" or "test") from ``(train, val, test)``."""
    loader = dict(zip(("train", "val", "test"), loaders))[split]
    if loader is None:
        raise UserError(f"--split {split}: this run has no {split} split (val_fraction = 0).")
    return loader


def run_evaluate(checkpoint: str, overrides: dict | None = None, split: str = "test") -> dict:
    """Accuracy (and firing rate) of a saved teacher or student on its dataset's ``split``."""
    from ckdsnn_events.distill.trainer import evaluate

    payload, config, model, loaders, info = load_trained(checkpoint, overrides)
    device = prepare_device(config.device)
    loader = pick_split(loaders, split)
    result = evaluate(model.to(device), loader, device, payload["kind"], config.optim.precision)
    return {"kind": payload["kind"], "split": split, "epoch": payload.get("epoch"), **result}

