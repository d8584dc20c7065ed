"""Measure a trained student and its teacher on a dataset, and write the energy report.

:func:`measure_student` runs the student over a loader once, inside a
:class:`~ckdsnn_events.energy.counting.SynapticOpCounter`, and returns the per-sample counts with
the accuracy of the same pass; :func:`measure_teacher` does the same for the ANN teacher (MACs are
counted from the model for one input, accuracy from the loader). :func:`energy_summary` puts both
into one plain dict (what ``energy.json`` holds); :func:`render_markdown` and :func:`plot_energy`
turn that dict into ``energy.md`` and ``energy.png``.

Units: operation counts and energies are **per sample** (one inference of one sample over all T
steps); energies in the dict are in pJ, the tables show nJ/uJ for reading.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ckdsnn_events.energy.counting import SynapticOpCounter, count_ann_macs
from ckdsnn_events.energy.presets import EnergyCosts
from ckdsnn_events.energy.report_types import EnergyReport


@torch.no_grad()
def measure_student(
    model: nn.Module,
    loader,
    device: torch.device,
    timesteps: int,
    costs: EnergyCosts,
    neurons: type | tuple[type, ...] | None = None,
    progress: bool = True,
) -> tuple[EnergyReport, dict]:
    """Count the student's spikes, SOPs and MACs over ``loader`` and score it in the same pass.

    Args:
        model: the spiking student; called as ``model(batch.inputs)`` with (T, B, C, H, W) inputs.
        loader: yields :class:`~ckdsnn_events.data.batch.Batch` items.
        timesteps: T of the inputs (the counter reads the sample count from them).
        neurons: neuron module class(es) whose output firing rates to report.

    Returns:
        ``(report, {"acc", "correct", "n"})``; ``report`` holds per-sample counts.
    """
    model.eval().to(device)
    correct = n = 0
    with SynapticOpCounter(model, timesteps, neurons=neurons) as counter:
        for batch in tqdm(loader, desc="student (counting)", leave=False, disable=not progress):
            batch = batch.to(device)
            logits = model(batch.inputs)
            correct += int((logits.argmax(1) == batch.labels).sum())
            n += len(batch.labels)
    report = counter.report(costs=costs)
    return report, {"acc": correct / n if n else float("nan"), "correct": correct, "n": n}


@torch.no_grad()
def measure_teacher(
    model: nn.Module,
    loader,
    device: torch.device,
    input_shape: tuple[int, int, int],
    costs: EnergyCosts,
    progress: bool = True,
) -> tuple[EnergyReport, dict]:
    """The ANN teacher's MACs for one (C, H, W) input, and its accuracy on the teacher view."""
    model.eval().to(device)
    report = count_ann_macs(model, tuple(input_shape), costs)
    correct = n = 0
    if loader is not None:
        for batch in tqdm(loader, desc="teacher", leave=False, disable=not progress):
            batch = batch.to(device)
            correct += int((model(batch.teacher_inputs).argmax(1) == batch.labels).sum())
            n += len(batch.labels)
    return report, {"acc": correct / n if n else None, "correct": correct, "n": n}


def energy_summary(student: EnergyReport, student_eval: dict, teacher: EnergyReport | None,
                   teacher_eval: dict | None, meta: dict) -> dict:
    """Everything the report shows, as plain JSON-ready data.

    ``meta`` carries the run's identity (checkpoint paths, dataset, architecture, T, encoder).
    ``ann_to_snn`` is the teacher's energy over the student's (how many times less energy the
    student spends per sample); None without a teacher.
    """
    snn = student.totals()
    ann = teacher.totals() if teacher is not None else None
    ratio = ann["energy_pj"] / snn["energy_pj"] if ann and snn["energy_pj"] > 0 else None
    return {
        "meta": meta,
        "costs": {"preset": student.costs.name, "e_ac_pj": student.costs.e_ac_pj, "e_mac_pj": student.costs.e_mac_pj},
        "student": {"accuracy": student_eval.get("acc"), "samples": student_eval.get("n"), "report": student.to_dict()},
        "teacher": None if teacher is None else {
            "accuracy": (teacher_eval or {}).get("acc"), "samples": (teacher_eval or {}).get("n"),
            "report": teacher.to_dict(),
        },
        "ann_to_snn_energy": ratio,
    }


def _si(value: float | None, unit: str = "") -> str:
    """1234567 -> '1.23 M'; None -> '-'."""
    if value is None:
        return "-"
    if value == 0:
        return f"0 {unit}".strip()
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}".strip()
    return f"{value:.3g} {unit}".strip()


def _energy(pj: float | None) -> str:
    """pJ -> the most readable of pJ / nJ / uJ / mJ."""
    if pj is None:
        return "-"
    for factor, unit in ((1e9, "mJ"), (1e6, "uJ"), (1e3, "nJ")):
        if abs(pj) >= factor:
            return f"{pj / factor:.3g} {unit}"
    return f"{pj:.3g} pJ"


def _pct(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f} %"


def render_markdown(summary: dict) -> str:
    """``energy.md``: per-layer table of the student, totals, the teacher, the ratio, constants."""
    meta, costs = summary["meta"], summary["costs"]
    student = summary["student"]["report"]
    teacher = summary["teacher"]
    totals = student["totals"]
    lines = [
        f"# Energy report: {meta.get('student_arch')} student on {meta.get('dataset')}",
        "",
        f"Student checkpoint: `{meta.get('checkpoint')}` (epoch {meta.get('epoch')}); "
        f"T = {student['timesteps']}, input {meta.get('input_shape')}, encoder {meta.get('encoder')}; "
        f"counted on {student['n_samples']} {meta.get('split', 'test')} samples. All figures are per sample "
        "(one inference over all T steps).",
        "",
        "| layer | type | input shape (per step) | input | input firing rate | SOPs (exact) | "
        "SOPs (rate x T x dense) | MACs | energy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for layer in student["layers"]:
        rate = layer["input_firing_rate"]
        kind = layer["input_kind"] + (" (once)" if layer["input_kind"] == "real" and layer["steps_per_sample"] == 1
                                      and (student["timesteps"] or 1) > 1 else "")
        lines.append(
            f"| {layer['name']} | {layer['type']} | {'x'.join(map(str, layer['input_shape']))} | {kind} | "
            f"{'-' if rate is None else f'{rate:.4f}'} | {_si(layer['sops'])} | {_si(layer['approx_sops'])} | "
            f"{_si(layer['macs'])} | {_energy(layer['energy_pj'])} |"
        )
    lines += [
        f"| **total** | | | | {totals.get('neuron_firing_rate', float('nan')):.4f} (neurons) | "
        f"**{_si(totals['sops'])}** | {_si(totals['approx_sops'])} | **{_si(totals['macs'])}** | "
        f"**{_energy(totals['energy_pj'])}** |",
        "",
        "## Student vs ANN teacher",
        "",
        "| model | accuracy | SOPs | MACs | energy per sample |",
        "|---|---|---|---|---|",
        f"| SNN student ({meta.get('student_arch')}, T={student['timesteps']}) | {_pct(summary['student']['accuracy'])} | "
        f"{_si(totals['sops'])} | {_si(totals['macs'])} | {_energy(totals['energy_pj'])} |",
        f"| SNN student, rate x T x dense approximation | | {_si(totals['approx_sops'])} | {_si(totals['macs'])} | "
        f"{_energy(totals['approx_energy_pj'])} |",
    ]
    if teacher is not None:
        t_totals = teacher["report"]["totals"]
        lines.append(f"| ANN teacher ({meta.get('teacher_arch')}) | {_pct(teacher['accuracy'])} | - | "
                     f"{_si(t_totals['macs'])} | {_energy(t_totals['energy_pj'])} |")
        lines += ["", f"**ANN / SNN energy: {summary['ann_to_snn_energy']:.2f}x**" if summary["ann_to_snn_energy"]
                  else "", f"Teacher checkpoint: `{meta.get('teacher_checkpoint')}`"
                  + ("" if teacher["accuracy"] is not None else " (not found: MACs of the untrained architecture, "
                     "no accuracy)")]
    else:
        lines += ["", "No teacher checkpoint was found, so there is no ANN comparison (pass --teacher CKPT)."]
    lines += [
        "",
        "## How this was counted",
        "",
        f"- Energy = E_AC x SOPs + E_MAC x MACs with E_AC = {costs['e_ac_pj']} pJ, E_MAC = {costs['e_mac_pj']} pJ "
        f"(preset {costs['preset']}).",
        "- SOPs: exact, from the spikes the student fired on these samples: each input spike of a conv/linear "
        "layer costs one accumulate per synapse it reaches (padding, stride, groups exact). The classifier's "
        "average pool is folded into its weights (one accumulate per class per pooled spike).",
        "- MACs: layers fed with real values (the stem conv under direct encoding or event counts > 1); "
        "'(once)' marks a stem conv computed once per sample because the input is constant in time.",
        "- The approximation column is the common `firing rate x T x dense ops` estimate, for comparison.",
        "- Not counted: batch norm (folds into the conv at inference), biases, residual additions, pooling "
        "additions, neuron updates. The teacher's MACs are counted from the model for one input of the same size.",
        "",
    ]
    if summary.get("energy_models"):  # break-even rates and the memory-aware model (energy/memory_report.py)
        from ckdsnn_events.energy.memory_report import render_models_markdown

        lines.append(render_models_markdown(summary["energy_models"], costs))
    return "\n".join(lines)


def plot_energy(summary: dict, path: str | Path) -> None:
    """``energy.png``: per-layer input firing rate, and per-layer energy (exact vs approximation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = summary["student"]["report"]["layers"]
    names = [layer["name"] for layer in layers]
    rates = [layer["input_firing_rate"] or 0.0 for layer in layers]
    exact = [layer["energy_pj"] / 1e3 for layer in layers]
    approx = [layer["approx_energy_pj"] / 1e3 for layer in layers]
    x = range(len(names))
    models = summary.get("energy_models") or {}
    fig = plt.figure(figsize=(max(8, 0.45 * len(names) + 2), 11 if models.get("memory") else 7))
    grid = fig.add_gridspec(3 if models.get("memory") else 2, 1)
    top = fig.add_subplot(grid[0])
    bottom = fig.add_subplot(grid[1], sharex=top)
    top.bar(x, rates, color="tab:blue")
    top.set_ylabel("input firing rate")
    top.set_title("Per-layer input firing rate and energy per sample "
                  f"({summary['costs']['preset']}: E_AC={summary['costs']['e_ac_pj']} pJ, "
                  f"E_MAC={summary['costs']['e_mac_pj']} pJ)", fontsize=9)
    width = 0.4
    bottom.bar([i - width / 2 for i in x], exact, width, label="exact (spikes fired)", color="tab:green")
    bottom.bar([i + width / 2 for i in x], approx, width, label="rate x T x dense", color="tab:gray")
    bottom.set_ylabel("energy per sample (nJ)")
    bottom.set_yscale("log")
    bottom.legend(fontsize=8)
    bottom.set_xticks(list(x))
    bottom.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    top.tick_params(labelbottom=False)
    teacher = summary.get("teacher")
    if teacher is not None:
        t = teacher["report"]["totals"]["energy_pj"] / 1e3
        s = summary["student"]["report"]["totals"]["energy_pj"] / 1e3
        bottom.text(0.99, 0.97, f"total: SNN {s:.3g} nJ, ANN {t:.3g} nJ", transform=bottom.transAxes,
                    ha="right", va="top", fontsize=8)
    if models.get("memory"):
        from ckdsnn_events.energy.memory_report import plot_energy_share

        plot_energy_share(fig.add_subplot(grid[2]), models)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
