"""Stage: the paper's ablation studies, each a set of students distilled from one teacher.

A study is a list of rows (loss settings) and a baseline row. Every row is trained with the same
seeds from the same teacher (paired: seed s of every row shares its initialisation, data order,
augmentation and noise streams), one resumable run directory per (row, seed) under
``OUT/<row>-seed<s>``. Runs go seed by seed (all rows of seed 0, then seed 1, ...), so that an
interrupted study leaves complete pairs; the same command continues it, finished runs are read
back from their ``last.pt`` and ``metrics.csv``, not trained again. Each run directory records
what decides its result (``ablation-run.json``: the whole run config but where it is written, and the
teacher checkpoint's content hash): a run directory trained with other settings is refused, not
reused, and a run another study of the same folder already trained with identical settings (the
CKDSNN row every study but ``terms`` compares against) is read from there instead of being trained
again. The result of every run is its test accuracy at its best validation epoch. Reports:
:mod:`ckdsnn_events.pipelines.ablate_report`.

Studies (CKDSNN's ablations, AAAI 2026, arXiv 2511.06902):

- ``terms``: CE; KD (Hinton, on top of CE); KDSNN (CE + KD + feature KD); CE + SAMD; CE + NLD;
  CE + SAMD + NLD (CKDSNN). Baseline: CE.
- ``scaling``: CE + SAMD + NLD with SAMD's softmax, none, z-score and L2 scaling
  (``loss.samd_scaling``; the recipe's normalisation). Baseline: softmax.
- ``stage``: CE + SAMD + NLD with SAMD on the output spikes of stage 1 .. N of the student
  (``loss.samd_stage``), against the teacher's last-stage CAM resized to that grid. Baseline: N.
- ``maps``: teacher CAM vs student spike activation map (CKDSNN) against teacher CAM vs the
  student's Grad-CAM (``loss.samd_map``). Baseline: the spike activation map.
- ``noise``: NLD with adaptive noise (CKDSNN) against fixed-std Gaussian noise (std 1 and 5 logit
  units) and no noise (``loss.nld_noise``). Baseline: adaptive.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path

from ckdsnn_events.atomic import atomic_path, ensure_writable_dir
from ckdsnn_events.checkpoints import content_hash, load_checkpoint
from ckdsnn_events.config import to_dict
from ckdsnn_events.distill.config import RunConfig
from ckdsnn_events.errors import UserError

__all__ = ["Row", "STUDIES", "study_rows", "run_ablation", "run_settings", "QUICK_EPOCHS", "RUN_RECORD"]

QUICK_EPOCHS = 1  # --quick: one epoch per student (the README says which form made each figure)
FIXED_NOISE_STDS = (1.0, 5.0)


@dataclass(frozen=True)
class Row:
    """One setting of a study: a name (its run directories), a label (tables) and loss overrides."""

    name: str
    label: str
    loss: dict


_OFF = {"beta": 0.0, "gamma": 0.0, "alpha_kd": 0.0, "alpha_feat": 0.0}
_CKDSNN = {**_OFF, "beta": 1.0, "gamma": 1.0}

STUDIES = ("terms", "scaling", "stage", "maps", "noise")


def study_rows(study: str, stages: int) -> tuple[tuple[Row, ...], str]:
    """The rows of ``study`` and the name of its baseline row (``stages``: the student's stages)."""
    if study == "terms":
        rows = (Row("ce", "CE", dict(_OFF)),
                Row("kd", "CE + KD (Hinton)", {**_OFF, "alpha_kd": 1.0}),
                Row("kdsnn", "CE + KD + feature KD (KDSNN)", {**_OFF, "alpha_kd": 1.0, "alpha_feat": 1.0}),
                Row("samd", "CE + SAMD", {**_OFF, "beta": 1.0}),
                Row("nld", "CE + NLD", {**_OFF, "gamma": 1.0}),
                Row("samd+nld", "CE + SAMD + NLD (CKDSNN)", dict(_CKDSNN)))
        return rows, "ce"
    if study == "scaling":
        return tuple(Row(s, f"SAMD scaling: {s}", {**_CKDSNN, "samd_scaling": s})
                     for s in ("softmax", "none", "zscore", "l2")), "softmax"
    if study == "stage":
        # the last stage is samd_stage unset (the default), so that row is the other studies' CKDSNN row
        rows = tuple(Row(f"stage{i}", f"SAMD on stage {i}" + (" (last)" if i == stages else ""),
                         {**_CKDSNN, "samd_stage": i if i < stages else None}) for i in range(1, stages + 1))
        return rows, f"stage{stages}"
    if study == "maps":
        return (Row("sam", "teacher CAM vs student SAM (CKDSNN)", {**_CKDSNN, "samd_map": "sam"}),
                Row("gradcam", "teacher CAM vs student Grad-CAM", {**_CKDSNN, "samd_map": "gradcam"})), "sam"
    if study == "noise":
        fixed = tuple(Row(f"fixed{std:g}", f"NLD, fixed-std noise (std {std:g})",
                          {**_CKDSNN, "nld_noise": "fixed", "nld_noise_std": std}) for std in FIXED_NOISE_STDS)
        return (Row("adaptive", "NLD, adaptive noise (CKDSNN)", {**_CKDSNN, "nld_noise": "adaptive"}), *fixed,
                Row("none", "NLD, no noise", {**_CKDSNN, "nld_noise": "none"})), "adaptive"
    raise UserError(f"--study '{study}' is unknown; choose one of {', '.join(STUDIES)}.")


def _student_stages(config: RunConfig) -> int:
    from ckdsnn_events.models import build_student

    model = build_student(config.model.student, num_classes=2, in_channels=2, width=config.model.student_width)
    return len(model.stage_names)


RUN_RECORD = "ablation-run.json"


def run_settings(config: RunConfig, teacher_sha256: str) -> dict:
    """What decides a run's result: its whole config but where it is written, and its teacher."""
    settings = to_dict(config)
    for where in ("run_dir", "runs_root"):
        settings.pop(where, None)
    return {"config": json.loads(json.dumps(settings, default=str)), "teacher_sha256": teacher_sha256}


def _first_difference(a, b, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
    return f"{prefix.rstrip('.')}: {a!r} there, {b!r} now"


def _recorded(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return None


def _finished(run_dir: Path, epochs: int) -> dict | None:
    """The result of a finished run in ``run_dir`` (None when it has not finished)."""
    last = run_dir / "last.pt"
    if not last.is_file():
        return None
    state = load_checkpoint(last, "student", "ablation run")
    if state.get("epoch", 0) < epochs:
        return None
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    row = next((r for r in rows if int(r["epoch"]) == state["best_epoch"]), None)
    if row is None:
        raise UserError(f"'{run_dir / 'metrics.csv'}' lacks epoch {state['best_epoch']} that last.pt names as "
                        "its best; delete the run directory and repeat the command to train it again.")
    seconds = sum(float(r["seconds"] or 0) for r in rows if int(r["epoch"]) <= epochs)
    return {"test_acc": float(row["test_acc"]), "val_acc": float(row["val_acc"]), "best_epoch": state["best_epoch"],
            "seconds": seconds}


def _test_accuracy_at(metrics: Path, epoch: int | None) -> float | None:
    """Test accuracy of ``epoch`` in a run's metrics.csv (None when the file or the row is missing)."""
    from ckdsnn_events.distill.metrics import read_row

    try:
        value = read_row(metrics, epoch).get("test_acc")
    except (OSError, ValueError, KeyError):  # an unreadable file or a torn row: the report just omits it
        return None
    return value if isinstance(value, float) else None


def _own_run(run_dir: Path, settings: dict) -> None:
    """UserError when ``run_dir`` holds a run of other settings; records ``settings`` in a new one."""
    recorded = _recorded(run_dir)
    if recorded is None and (run_dir / RUN_RECORD).exists():
        raise UserError(f"'{run_dir / RUN_RECORD}' is not readable JSON (damaged or edited); delete the folder "
                        f"'{run_dir}' and repeat the command to train that run again.")
    if recorded is None and (run_dir / "last.pt").exists():
        raise UserError(f"'{run_dir}' holds a run without its {RUN_RECORD} (made by an earlier version, or not by "
                        "`ckd-events ablate`); delete it, or choose another --out, and repeat the command.")
    if recorded is not None and recorded != settings:
        raise UserError(f"'{run_dir}' was trained with other settings ({_first_difference(recorded, settings)}); "
                        "choose another --out for these settings, or delete the folder to train it again.")
    if recorded is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(run_dir / RUN_RECORD) as tmp:
            tmp.write_text(json.dumps(settings, indent=1, sort_keys=True))


def _trained_elsewhere(out: Path, seed: int, settings: dict, epochs: int) -> tuple[Path, dict] | None:
    """A finished run of identical settings in a sibling study folder of ``out`` (same seed)."""
    for record in sorted(out.parent.glob(f"*/*-seed{seed}/{RUN_RECORD}")):
        run_dir = record.parent
        if run_dir.parent.resolve() == out.resolve() or _recorded(run_dir) != settings:
            continue
        result = _finished(run_dir, epochs)
        if result is not None:
            return run_dir, result
    return None


def run_ablation(config: RunConfig, study: str, seeds: int = 5, out_dir: str | Path | None = None,
                 quick: bool = False, progress: bool = True, log=print) -> dict:
    """Train (or read back) every (row, seed) student of ``study``; write its reports.

    Args:
        config: the resolved student config (its loss is the base the rows override; seeds run
            from ``config.seed`` to ``config.seed + seeds - 1``).
        study: one of :data:`STUDIES`.
        seeds: seeds per row (>= 2 for a confidence interval).
        out_dir: default ``<runs_root>/<dataset>/ablation-<study>[-quick]``.
        quick: :data:`QUICK_EPOCHS` epochs per student instead of ``config.optim.epochs``.

    Returns:
        The report dict of :func:`~ckdsnn_events.pipelines.ablate_report.write_reports` (``paths``,
        ``markdown``, per-row statistics).
    """
    from ckdsnn_events.pipelines.ablate_report import write_reports
    from ckdsnn_events.pipelines.train import ensure_teacher, run_distill

    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}.")
    rows, baseline = study_rows(study, _student_stages(config))
    if quick:
        config = replace(config, optim=replace(config.optim, epochs=QUICK_EPOCHS,
                                               warmup_epochs=min(config.optim.warmup_epochs, QUICK_EPOCHS - 1)))
    name = f"ablation-{study}" + ("-quick" if quick else "")
    out = Path(out_dir) if out_dir else Path(config.runs_root) / config.data.dataset / name
    ensure_writable_dir(out, "--out")
    teacher_path, _ = ensure_teacher(config, progress)  # one teacher (the base seed's) for every run
    config = replace(config, teacher_checkpoint=str(teacher_path))
    teacher_state = load_checkpoint(teacher_path, "teacher", "--teacher")
    teacher_sha256 = content_hash(teacher_state)
    teacher_acc = _test_accuracy_at(teacher_path.parent / "metrics.csv", teacher_state.get("epoch"))
    for row in rows:  # a bad row setting fails now, not after hours of other rows
        replace(config, loss=replace(config.loss, **row.loss)).validate()
    plan = [(row, config.seed + k) for k in range(seeds) for row in rows]
    results: dict[str, dict[int, dict]] = {row.name: {} for row in rows}
    for k, (row, seed) in enumerate(plan, start=1):
        run_dir = out / f"{row.name}-seed{seed}"
        run_config = replace(config, seed=seed, loss=replace(config.loss, **row.loss))
        settings = run_settings(run_config, teacher_sha256)
        if (run_dir / "last.pt").exists():
            _own_run(run_dir, settings)  # a run of other settings is refused, not reused
        result = _finished(run_dir, config.optim.epochs)
        elsewhere = None if result is not None else _trained_elsewhere(out, seed, settings, config.optim.epochs)
        if elsewhere is not None:
            run_dir, result = elsewhere
            result = {**result, "reused": True}
            if progress:
                log(f"[{study}] run {k} of {len(plan)}: {row.label}, seed {seed}: trained by another study "
                    f"(test {100 * result['test_acc']:.2f} %) <- {run_dir}")
        elif result is None:
            if progress:
                log(f"[{study}] run {k} of {len(plan)}: {row.label}, seed {seed} "
                    f"({config.optim.epochs} epochs) -> {run_dir}")
            _own_run(run_dir, settings)
            run_distill(run_config, resume=(run_dir / "last.pt").exists(), progress=progress, run_dir=run_dir)
            result = _finished(run_dir, config.optim.epochs)
        elif progress:
            log(f"[{study}] run {k} of {len(plan)}: {row.label}, seed {seed}: done before "
                f"(test {100 * result['test_acc']:.2f} %)")
        results[row.name][seed] = {**result, "run_dir": str(run_dir)}
    return write_reports(out, study, rows, baseline, results, config, teacher_path, quick, teacher_acc)
