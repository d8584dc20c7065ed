"""Stages: train-teacher, distill, evaluate, ablate.

A run is configured by a TOML recipe (``recipes/<dataset>.toml`` by default), command-line options
and ``--set section.key=value`` overrides; the resolved config is written to the run directory as
``config.toml`` before training starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from dataclasses import replace
from pathlib import Path

from ckdsnn_events.atomic import atomic_path, ensure_writable_dir, remove_stale_temps
from ckdsnn_events.checkpoints import RUN_FILES, build_for_state, load_checkpoint
from ckdsnn_events.config import apply_overrides, from_dict, load_toml, to_dict, write_toml
from ckdsnn_events.distill.config import RunConfig
from ckdsnn_events.errors import UserError

RECIPES = Path(__file__).resolve().parent / "recipes"

# ablation variants: name -> loss overrides (everything else from the recipe)
ABLATIONS = {
    "ce": {"beta": 0.0, "gamma": 0.0, "alpha_kd": 0.0},
    "kd": {"beta": 0.0, "gamma": 0.0, "alpha_kd": 1.0},
    "samd": {"beta": 1.0, "gamma": 0.0, "alpha_kd": 0.0},
    "nld": {"beta": 0.0, "gamma": 1.0, "alpha_kd": 0.0},
    "samd+nld": {"beta": 1.0, "gamma": 1.0, "alpha_kd": 0.0},
}


def recipe_path(dataset: str) -> Path:
    return RECIPES / f"{dataset}.toml"


def resolve_config(dataset: str, recipe: str | None = None, options: dict | None = None,
                   overrides: tuple[str, ...] = ()) -> RunConfig:
    """Recipe, then CLI options (``{"optim.lr": 0.05, ...}``, None values skipped), then ``--set``."""
    path = Path(recipe) if recipe else recipe_path(dataset)
    if not recipe and not path.exists():
        raise UserError(f"no recipe for --dataset '{dataset}'; pass --recipe FILE.toml "
                        f"(recipes: {', '.join(sorted(p.stem for p in RECIPES.glob('*.toml')))}).")
    data = load_toml(path)
    data.setdefault("data", {})["dataset"] = dataset
    flat = [f"{key}={json.dumps(value)}" for key, value in (options or {}).items() if value is not None]
    data = apply_overrides(data, flat + list(overrides))
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
    arch = config.model.teacher if kind == "teacher" else config.model.student
    name = f"{kind}-{arch}" + (f"-{tag}" if tag else "") + f"-seed{config.seed}"
    return Path(config.runs_root) / config.data.dataset / name


def _prepare_run_dir(config: RunConfig, run_dir: Path, resume: bool) -> None:
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 writes
        ensure_writable_dir(run_dir, "--run-dir")
        remove_stale_temps(run_dir, RUN_FILES)  # left by a kill -9 (atomic writes clean up otherwise)
        if (run_dir / "last.pt").exists() and not resume:
            raise UserError(f"'{run_dir}' already holds a run (last.pt). Pass --resume to continue it, "
                            "or choose another --run-dir.")
        write_toml(config, run_dir / "config.toml")


def run_train_teacher(config: RunConfig, resume: bool = False, progress: bool = True,
                      run_dir: Path | None = None, optim=None) -> dict:
    """Train the ANN teacher with CE on the teacher view of the data (settings: ``[teacher_optim]``)."""
    from ckdsnn_events.distill.trainer import fit

    run_dir = Path(run_dir or config.run_dir or default_run_dir(config, "teacher"))
    _prepare_run_dir(config, run_dir, resume)
    return fit(config, "teacher", run_dir, optim=optim or config.teacher_optim, resume=resume, progress=progress)


def teacher_cache_dir(config: RunConfig) -> Path:
    """Where ``distill`` keeps the teacher it trained itself for this data and teacher setting."""
    key = {"data": to_dict(replace(config.data, workers=0, batch_size=0)), "teacher": config.model.teacher,
           "width": config.model.teacher_width, "optim": to_dict(config.teacher_optim), "seed": config.seed}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return Path(config.runs_root) / config.data.dataset / f"teacher-{config.model.teacher}-cached-{digest}"


def load_teacher(config: RunConfig, path: str | os.PathLike, info, option: str = "--teacher"):
    """The teacher checkpoint at ``path``, checked against the data and the config."""
    from ckdsnn_events.distill.trainer import make_model

    payload = load_checkpoint(path, "teacher", option)
    problems = []
    if payload.get("num_classes") != info.num_classes:
        problems.append(f"{payload.get('num_classes')} classes, the data has {info.num_classes}")
    if payload.get("in_channels") != info.in_channels:
        problems.append(f"{payload.get('in_channels')} input channels, the data has {info.in_channels}")
    if payload.get("arch") != config.model.teacher:
        problems.append(f"architecture {payload.get('arch')}, the config names {config.model.teacher} "
                        f"(set --set model.teacher={payload.get('arch')})")
    if problems:
        raise UserError(f"{option} '{path}' does not fit this run: " + "; ".join(problems) + ".")
    config = replace(config, model=replace(config.model, teacher_width=payload.get("width")))
    if config.model.init_from_teacher and payload["width"] != config.model.student_width:
        raise UserError(f"{option} '{path}' has width {payload['width']}, the student {config.model.student_width}, and "
                        "model.init_from_teacher copies the teacher's weights into the student: pass --set "
                        f"model.student_width={payload['width']}, or --set model.init_from_teacher=false.")
    return build_for_state(lambda: make_model("teacher", config, info), payload["model"], path, option)


def run_distill(config: RunConfig, resume: bool = False, progress: bool = True, run_dir: Path | None = None,
                tag: str | None = None) -> dict:
    """Distil a spiking student from a teacher; trains (and caches) the teacher when none is given."""
    from ckdsnn_events.data.loaders import build_loaders
    from ckdsnn_events.distill.trainer import fit

    teacher_result = None
    if config.teacher_checkpoint:
        teacher_path = Path(config.teacher_checkpoint)
    else:
        cache = teacher_cache_dir(config)
        teacher_path = cache / "best.pt"
        if not teacher_path.exists() or (cache / "last.pt").exists() and not _finished(cache / "last.pt", config):
            if progress:
                print(f"no teacher given: training one ({config.model.teacher}) into {cache}")
            teacher_result = run_train_teacher(config, resume=(cache / "last.pt").exists(), progress=progress,
                                               run_dir=cache, optim=config.teacher_optim)
    _, _, _, info = build_loaders(replace(config.data, workers=0))
    teacher = load_teacher(config, teacher_path, info, "--teacher" if config.teacher_checkpoint else "cached teacher")
    config = replace(config, teacher_checkpoint=str(teacher_path))
    run_dir = Path(run_dir or config.run_dir or default_run_dir(config, "student", tag))
    _prepare_run_dir(config, run_dir, resume)
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
    from ckdsnn_events.distill.trainer import make_model

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
    expected = payload.get("dataset") or {}
    problems = []
    if info.num_classes != payload["num_classes"]:
        problems.append(f"{payload['num_classes']} classes, the data has {info.num_classes}")
    if info.in_channels != payload["in_channels"]:
        problems.append(f"{payload['in_channels']} input channels, the data has {info.in_channels}")
    if expected.get("input_size") and tuple(expected["input_size"]) != tuple(info.input_size):
        problems.append(f"inputs of {tuple(expected['input_size'])}, the data has {tuple(info.input_size)}")
    if payload["kind"] == "student" and expected.get("timesteps") and expected["timesteps"] != info.timesteps:
        problems.append(f"T={expected['timesteps']}, the data has T={info.timesteps}")
    if problems:
        raise UserError(f"{option} '{checkpoint}' does not fit the dataset at '{config.data.root}': "
                        + "; ".join(problems) + ". Point --root at the dataset it was trained on.")
    model_kind = payload["kind"]
    width = {"teacher_width" if model_kind == "teacher" else "student_width": payload.get("width")}
    config = replace(config, model=replace(config.model, **width))
    model = build_for_state(lambda: make_model(model_kind, config, info), payload["model"], checkpoint, option)
    return payload, config, model.eval(), (train, val, test), info


def pick_split(loaders: tuple, split: str):
    """The loader of ``split`` ("train", "val" or "test") from ``(train, val, test)``."""
    loader = dict(zip(("train", "val", "test"), loaders))[split]
    if loader is None:
        raise UserError(f"--split {split}: this run has no {split} split (val_fraction = 0).")
    return loader


def run_evaluate(checkpoint: str, overrides: dict | None = None, split: str = "test") -> dict:
    """Accuracy (and firing rate) of a saved teacher or student on its dataset's ``split``."""
    from ckdsnn_events.distill.trainer import evaluate, pick_device

    payload, config, model, loaders, info = load_trained(checkpoint, overrides)
    device = pick_device(config.device)
    loader = pick_split(loaders, split)
    result = evaluate(model.to(device), loader, device, payload["kind"], config.optim.precision)
    return {"kind": payload["kind"], "split": split, "epoch": payload.get("epoch"), **result}


def run_ablate(config: RunConfig, seeds: int = 3, variants: tuple[str, ...] = tuple(ABLATIONS),
               progress: bool = True, out_dir: Path | None = None) -> dict:
    """Train one student per (variant, seed) with the same teacher and seeds; tabulate accuracies."""
    unknown = [v for v in variants if v not in ABLATIONS]
    if unknown:
        raise UserError(f"unknown ablation variant(s) {', '.join(unknown)}; choose from {', '.join(ABLATIONS)}.")
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}.")
    out_dir = Path(out_dir or Path(config.runs_root) / config.data.dataset / "ablation")
    ensure_writable_dir(out_dir, "--out")
    results: dict[str, list[dict]] = {}
    for variant in variants:
        for k in range(seeds):
            run_config = replace(config, seed=config.seed + k, loss=replace(config.loss, **ABLATIONS[variant]))
            run_dir = out_dir / f"{variant}-seed{run_config.seed}"
            resume = (run_dir / "last.pt").exists()
            if progress:
                print(f"ablation: {variant}, seed {run_config.seed} -> {run_dir}")
            results.setdefault(variant, []).append(run_distill(run_config, resume=resume, progress=progress, run_dir=run_dir))
    table = {}
    for variant, runs in results.items():
        accs = [100 * float(r["test_acc_at_best"]) for r in runs]
        table[variant] = {"mean": statistics.mean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                          "runs": accs}
    lines = ["| loss | test accuracy % (mean ± std) | runs |", "|---|---|---|"]
    lines += [f"| {v} | {t['mean']:.2f} ± {t['std']:.2f} | {', '.join(f'{a:.2f}' for a in t['runs'])} |"
              for v, t in table.items()]
    with atomic_path(out_dir / "ablation.json") as tmp:
        tmp.write_text(json.dumps({"seeds": seeds, "table": table}, indent=2))
    with atomic_path(out_dir / "ablation.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return {"out_dir": str(out_dir), "table": table, "markdown": "\n".join(lines)}
