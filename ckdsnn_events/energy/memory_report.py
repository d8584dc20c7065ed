"""The energy models side by side in the report: break-even firing rates, the memory-aware tables
(SNN student and ANN teacher) and the per-layer energy-share panel of ``energy.png``.

``ENERGY_MODELS``: ``ops`` (E_AC x SOPs + E_MAC x MACs, :mod:`.presets`), ``memory`` (the
Lemaire-style model of :mod:`.memory`), ``all`` (both). Everything here is computed from the counts
the counter already took; nothing runs the models again.
"""

from __future__ import annotations

from torch import nn

from ckdsnn_events.energy.memory import COMPONENTS, MemoryCosts, break_even_rate, memory_energy
from ckdsnn_events.energy.report_types import EnergyReport
from ckdsnn_events.errors import UserError

__all__ = ["ENERGY_MODELS", "check_energy_model", "energy_models_summary", "render_models_markdown",
           "plot_energy_share"]

ENERGY_MODELS = ("ops", "memory", "all")


def check_energy_model(name: str) -> str:
    if name not in ENERGY_MODELS:
        raise UserError(f"unknown --energy-model {name!r}; choose one of: {', '.join(ENERGY_MODELS)}.")
    return name


def energy_models_summary(energy_model: str, student: EnergyReport, student_model: nn.Module,
                          teacher: EnergyReport | None, teacher_model: nn.Module | None,
                          memory: MemoryCosts) -> dict:
    """``{"energy_model", "firing_rate", "break_even": {model: rate}, "memory": {...} | None}``.

    The break-even rate is the neuron firing rate at which the student would spend as much energy
    per sample as its teacher, every spike count scaled with the rate (:func:`.memory.break_even_rate`);
    the measured rate is the student's ``neuron_firing_rate``.
    """
    check_energy_model(energy_model)
    totals = student.totals()
    rate = totals.get("neuron_firing_rate")
    out = {"energy_model": energy_model, "firing_rate": rate, "break_even": {}, "memory": None}
    if teacher is not None:
        ann_ops = teacher.totals()["energy_pj"]
        out["break_even"]["ops"] = break_even_rate(rate, totals["energy_pj"], student.costs.e_ac_pj * totals["sops"],
                                                   ann_ops)
    if energy_model in ("memory", "all"):
        snn = memory_energy(student, student_model, memory)
        ann = memory_energy(teacher, teacher_model, memory) if teacher is not None else None
        out["memory"] = {"costs": snn["costs"], "student": snn, "teacher": ann,
                         "ann_to_snn_energy": (ann["totals"]["total_pj"] / snn["totals"]["total_pj"]
                                               if ann and snn["totals"]["total_pj"] > 0 else None)}
        if ann is not None:
            out["break_even"]["memory"] = break_even_rate(rate, snn["totals"]["total_pj"],
                                                          snn["totals"]["spike_driven_pj"], ann["totals"]["total_pj"])
    if energy_model == "memory":
        out["break_even"].pop("ops", None)
    return out


def _nj(pj: float) -> str:
    return f"{pj / 1e3:.4g}"


def _rate(value) -> str:
    if value is None:
        return "- (no teacher or no spikes)"
    if value == 0:
        return "never (its fixed costs alone exceed the teacher's)"
    return f"{value:.4f}" + (" (above 1: the student spends less at any firing rate)" if value > 1 else "")


def _table(title: str, data: dict) -> list[str]:
    total = data["totals"]["total_pj"] or 1.0
    lines = [f"### {title}", "", "| layer | kind | " + " | ".join(f"{c} (nJ)" for c in COMPONENTS)
             + " | total (nJ) | share |", "|---|---|" + "---|" * (len(COMPONENTS) + 2)]
    for row in data["layers"]:
        lines.append(f"| {row['name']} | {row['kind']}, {row['input_kind']} | "
                     + " | ".join(_nj(row[c]) for c in COMPONENTS)
                     + f" | {_nj(row['total_pj'])} | {100 * row['total_pj'] / total:.1f} % |")
    t = data["totals"]
    lines += [f"| **total** | | " + " | ".join(f"**{_nj(t[c])}**" for c in COMPONENTS) + f" | **{_nj(t['total_pj'])}** | |",
              ""]
    return lines


def render_models_markdown(models: dict, ops_costs: dict) -> str:
    """The report's section on the energy models (appended to ``energy.md``)."""
    lines = ["## Energy models and break-even firing rate", "",
             f"Energy model(s): **{models['energy_model']}**. Measured neuron firing rate of the student: "
             f"{_rate(models['firing_rate'])}.", "",
             "| model | break-even firing rate (SNN = ANN energy) |", "|---|---|"]
    for name, value in models["break_even"].items():
        lines.append(f"| {name} | {_rate(value)} |")
    lines += ["", "Below the break-even rate the student spends less energy per sample than its teacher; every "
              "spike-driven count (SOPs, addressing, weight and membrane accesses, events) is scaled with the "
              "rate, the rest (stem MACs, per-step neuron updates) stays.", ""]
    if "ops" in models["break_even"]:
        lines += [f"Op model constants: E_AC = {ops_costs['e_ac_pj']} pJ, E_MAC = {ops_costs['e_mac_pj']} pJ "
                  f"(preset {ops_costs['preset']}).", ""]
    memory = models.get("memory")
    if memory:
        c = memory["costs"]
        lines += ["### Memory-aware model (Lemaire et al., ICONIP 2022)", "",
                  f"Constants (preset {c['name']}): " + ", ".join(f"{k} = {c[k]:g}" for k in c
                                                                   if k not in ("name", "source")) + ".",
                  f"Source: {c['source']}.", "",
                  "One access to a buffer of N words costs e(N), linear between (0, 0), (8 KiB, sram_8k_pj), "
                  "(32 KiB, sram_32k_pj), (1 MiB, sram_1m_pj), constant above; buffers are per layer (weights, "
                  "membranes, input). Formulas: `ckdsnn_events/energy/memory.py`.", ""]
        lines += _table("SNN student", memory["student"])
        if memory["teacher"] is not None:
            lines += _table("ANN teacher", memory["teacher"])
            lines += [f"**ANN / SNN energy (memory model): {memory['ann_to_snn_energy']:.2f}x**", ""]
    return "\n".join(lines)


def plot_energy_share(ax, models: dict) -> None:
    """Stacked bars: each layer's share (%) of the student's and the teacher's total energy under
    the memory model, by component."""
    memory = models["memory"]
    rows = [(f"SNN {r['name']}", r) for r in memory["student"]["layers"]]
    totals = {"SNN": memory["student"]["totals"]["total_pj"] or 1.0}
    if memory["teacher"] is not None:
        rows += [(f"ANN {r['name']}", r) for r in memory["teacher"]["layers"]]
        totals["ANN"] = memory["teacher"]["totals"]["total_pj"] or 1.0
    x = range(len(rows))
    bottom = [0.0] * len(rows)
    for component, color in zip(COMPONENTS, ("tab:green", "tab:orange", "tab:red", "tab:purple", "tab:gray")):
        heights = [100 * r[component] / totals[label.split(" ")[0]] for label, r in rows]
        ax.bar(x, heights, bottom=bottom, label=component, color=color)
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_ylabel("share of its model's energy (%)")
    ax.set_title(f"Per-layer energy share, memory-aware model ({memory['costs']['name']}); "
                 "SNN rows then ANN rows", fontsize=9)
    ax.set_xticks(list(x))
    ax.set_xticklabels([label for label, _ in rows], rotation=75, ha="right", fontsize=6)
    ax.legend(fontsize=7, ncol=len(COMPONENTS))
