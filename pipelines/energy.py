"""Stages after training: the energy report of a student and the saliency pictures behind SAMD.

``run_energy`` evaluates a student checkpoint on its test set while counting its spikes and
synaptic operations, counts its teacher's MACs, and writes ``energy.json``, ``energy.md`` and
``energy.png`` into the run directory. ``run_saliency`` draws input / teacher CAM / student SAM for
a few test samples into ``saliency.png``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ckdsnn_events.atomic import atomic_path, ensure_writable_dir
from ckdsnn_events.data.batch import Batch
from ckdsnn_events.energy.presets import energy_costs
from ckdsnn_events.errors import UserError


def take(loader, limit: int | None):
    """The batches of ``loader`` up to ``limit`` samples in all (the last batch cut to fit)."""
    seen = 0
    for batch in loader:
        if limit is not None and seen + len(batch.labels) > limit:
            keep = limit - seen
            if keep > 0:
                yield Batch(batch.inputs[:, :keep], batch.teacher_inputs[:keep], batch.labels[:keep])
            return
        seen += len(batch.labels)
        yield batch


def find_latest_student(runs_root: str | os.PathLike = "runs") -> Path:
    """The most recently written ``best.pt`` of a student under ``runs_root``."""
    from ckdsnn_events.checkpoints import load_checkpoint

    candidates = sorted(Path(runs_root).glob("**/best.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        try:
            if load_checkpoint(path).get("kind") == "student":
                return path
        except UserError:
            continue
    raise UserError(f"no student run found under '{runs_root}'. Make one first: `make demo` (the offline "
                    "digits-dvs pipeline) or `ckd-events distill --dataset ...`; or pass RUN=dir / --checkpoint.")


def _teacher_for(config, info, teacher: str | None):
    """The student's teacher: ``--teacher``, else the checkpoint the student was distilled from.

    Returns ``(model, path, trained)``; without any checkpoint, the untrained architecture (its MACs
    do not depend on the weights) and ``trained=False``.
    """
    from ckdsnn_events.distill.runs import make_model
    from ckdsnn_events.pipelines.train import load_teacher

    path = teacher or config.teacher_checkpoint
    if teacher is not None or (path and Path(path).is_file()):
        return load_teacher(config, path, info, "--teacher"), str(path), True
    return make_model("teacher", config, info), path, False


def run_energy(checkpoint: str | os.PathLike, teacher: str | None = None, root: str | None = None,
               split: str = "test", preset: str = "45nm-fp32", e_ac_pj: float | None = None,
               e_mac_pj: float | None = None, batch_size: int | None = None, workers: int | None = None,
               limit: int | None = None, out_dir: str | os.PathLike | None = None, progress: bool = True,
               energy_model: str = "all", memory_preset: str = "lemaire-int32", memory_set: tuple = ()) -> dict:
    """Count a student's spikes/SOPs on ``split``, compare with its ANN teacher, write the report.

    Args:
        checkpoint: a student's best.pt / last.pt.
        teacher: teacher checkpoint (default: the one recorded in the student's config).
        root: the dataset folder, if it moved since training.
        preset, e_ac_pj, e_mac_pj: energy costs (a preset, optionally with custom values).
        limit: count on at most this many samples (default: the whole split).
        out_dir: where to write (default: the checkpoint's run directory).
        energy_model: "ops", "memory" or "all" (see :mod:`ckdsnn_events.energy.memory_report`).
        memory_preset, memory_set: constants of the memory-aware model (a preset and KEY=VALUE changes).

    Returns:
        the summary dict (as in energy.json) plus ``paths``.
    """
    from ckdsnn_events.distill.runs import prepare_device
    from ckdsnn_events.energy.report import energy_summary, measure_student, measure_teacher, plot_energy, \
        render_markdown
    from ckdsnn_events.models import LIF
    from ckdsnn_events.pipelines.train import load_trained, pick_split

    from ckdsnn_events.energy.memory import memory_costs
    from ckdsnn_events.energy.memory_report import check_energy_model, energy_models_summary

    costs = energy_costs(preset, e_ac_pj=e_ac_pj, e_mac_pj=e_mac_pj)
    check_energy_model(energy_model)
    mem_costs = memory_costs(memory_preset, memory_set)  # bad constants fail before any counting
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}.")
    payload, config, student, loaders, info = load_trained(
        checkpoint, {"root": root, "batch_size": batch_size, "workers": workers}, kind="student")
    out_dir = ensure_writable_dir(out_dir or Path(checkpoint).parent, "the run directory (--out)")
    loader = pick_split(loaders, split)
    teacher_model, teacher_path, trained = _teacher_for(config, info, teacher)
    device = prepare_device(config.device)

    report, student_eval = measure_student(student, take(loader, limit), device, info.timesteps, costs,
                                           neurons=LIF, progress=progress)
    input_shape = (info.in_channels, *info.input_size)
    teacher_report, teacher_eval = measure_teacher(teacher_model, take(loader, limit) if trained else None,
                                                   device, input_shape, costs, progress=progress)
    if not trained:
        teacher_eval = {"acc": None, "n": 0}
    meta = {"checkpoint": str(checkpoint), "epoch": payload.get("epoch"), "dataset": info.name,
            "split": split, "student_arch": payload.get("arch"), "teacher_arch": config.model.teacher,
            "teacher_checkpoint": teacher_path, "teacher_trained": trained, "input_shape": list(input_shape),
            "timesteps": info.timesteps, "encoder": info.encoder, "classes": list(info.classes)}
    summary = energy_summary(report, student_eval, teacher_report, teacher_eval, meta)
    summary["energy_models"] = energy_models_summary(energy_model, report, student, teacher_report, teacher_model,
                                                     mem_costs)  # from the counts above, no second pass
    paths = {name: out_dir / f"energy.{name}" for name in ("json", "md", "png")}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(render_markdown(summary))
    with atomic_path(paths["png"]) as tmp:
        plot_energy(summary, tmp)
    return {**summary, "paths": {k: str(v) for k, v in paths.items()}}


def _input_picture(teacher_inputs: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) teacher inputs -> (B, H, W, 3) pictures in [0, 1] for display.

    Event frames (2 channels): ON counts in red/yellow, OFF in blue; images: min-max per sample.
    """
    x = teacher_inputs.float()
    if x.shape[1] == 2:
        scale = x.flatten(1).amax(1).clamp_min(1e-6).view(-1, 1, 1)
        on, off = x[:, 0] / scale, x[:, 1] / scale
        return torch.stack([on, 0.5 * (on + off) * 0.6, off], dim=-1).clamp(0, 1)
    lo = x.flatten(1).amin(1).view(-1, 1, 1, 1)
    hi = x.flatten(1).amax(1).view(-1, 1, 1, 1)
    x = (x - lo) / (hi - lo).clamp_min(1e-6)
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
    return x.permute(0, 2, 3, 1)


@torch.no_grad()
def run_saliency(checkpoint: str | os.PathLike, teacher: str | None = None, root: str | None = None,
                 samples: int = 8, split: str = "test", out: str | os.PathLike | None = None) -> dict:
    """Save a grid of input / teacher CAM / student SAM for the first ``samples`` samples of ``split``.

    The teacher CAM is the classic CAM of the labelled class (what SAMD distils), the student SAM is
    the spike count of its last spiking stage summed over time and channels; both are resized to the
    input size and min-max scaled per picture.
    """
    from ckdsnn_events.distill.runs import prepare_device
    from ckdsnn_events.distill.saliency import class_activation_map, resize_map, spike_activation_map
    from ckdsnn_events.pipelines.train import load_trained, pick_split

    if samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}.")
    payload, config, student, loaders, info = load_trained(checkpoint, {"root": root, "batch_size": samples},
                                                           kind="student")
    out = Path(out) if out else Path(checkpoint).parent / "saliency.png"
    ensure_writable_dir(out.parent, "the output folder (--out)")
    loader = pick_split(loaders, split)
    teacher_model, teacher_path, trained = _teacher_for(config, info, teacher)
    if not trained:
        raise UserError(f"no teacher checkpoint found for '{checkpoint}' (looked for '{teacher_path}'); "
                        "pass --teacher CKPT.")
    device = prepare_device(config.device)
    batch = next(iter(take(loader, samples))).to(device)
    teacher_model.to(device).eval()
    student.to(device)
    t_logits, features = teacher_model(batch.teacher_inputs, return_features=True)
    s_logits, spikes = student(batch.inputs, return_spikes=True)
    size = tuple(batch.teacher_inputs.shape[-2:])
    cam = resize_map(class_activation_map(next(reversed(features.values())), teacher_model.fc.weight,
                                          batch.labels), size)
    sam = resize_map(spike_activation_map(next(reversed(spikes.values()))), size)
    pictures = _input_picture(batch.teacher_inputs)
    _plot_saliency(pictures, cam, sam, batch.labels, t_logits.argmax(1), s_logits.argmax(1), info.classes, out)
    return {"path": str(out), "samples": len(batch.labels), "teacher_checkpoint": teacher_path}


def _plot_saliency(pictures, cam, sam, labels, teacher_pred, student_pred, classes, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def scaled(m):
        m = m - m.amin()
        return m / m.amax().clamp_min(1e-6)

    n = len(labels)
    fig, axes = plt.subplots(n, 3, figsize=(6, 2 * n), squeeze=False)
    for i in range(n):
        name = lambda k: classes[int(k)] if int(k) < len(classes) else str(int(k))
        cells = ((pictures[i], f"input: {name(labels[i])}"),
                 (scaled(cam[i]), f"teacher CAM (pred {name(teacher_pred[i])})"),
                 (scaled(sam[i]), f"student SAM (pred {name(student_pred[i])})"))
        for j, (image, title) in enumerate(cells):
            ax = axes[i, j]
            ax.imshow(image.cpu().numpy(), cmap=None if image.dim() == 3 else "inferno", vmin=0, vmax=1)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
