"""``ckd-events energy`` and ``saliency``: what a trained student costs, and what SAMD aligns."""

from __future__ import annotations

from pathlib import Path

import click

from ckdsnn_events.cli.options import SPLITS
from ckdsnn_events.energy.presets import PRESETS
from ckdsnn_events.errors import UserError


@click.command()
@click.option("--checkpoint", default=None, type=click.Path(), help="A student's best.pt / last.pt.")
@click.option("--run-dir", default=None, type=click.Path(file_okay=False), help="A student's run directory (its best.pt).")
@click.option("--latest", is_flag=True, help="The most recent student run under --runs-root.")
@click.option("--runs-root", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Where --latest looks.")
@click.option("--teacher", default=None, type=click.Path(dir_okay=False),
              help="Teacher checkpoint to compare with (default: the one the student was distilled from).")
@click.option("--root", default=None, help="Dataset folder, if it moved since training.")
@click.option("--split", default="test", show_default=True, type=click.Choice(SPLITS))
@click.option("--preset", default="45nm-fp32", show_default=True,
              help=f"Energy per operation: {', '.join([*PRESETS, 'custom'])} (45 nm, Horowitz 2014).")
@click.option("--e-ac-pj", default=None, type=float, help="Energy of one accumulate (pJ); overrides the preset.")
@click.option("--e-mac-pj", default=None, type=float, help="Energy of one multiply-accumulate (pJ); overrides the preset.")
@click.option("--limit", default=None, type=int, help="Count on at most this many samples (default: all).")
@click.option("--batch-size", default=None, type=click.IntRange(min=1))
@click.option("--workers", default=None, type=click.IntRange(min=0))
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Output folder (default: the run directory).")
@click.option("--energy-model", default="all", show_default=True,
              help="ops (E_AC x SOPs + E_MAC x MACs), memory (Lemaire et al. 2022: + weight, membrane and event "
                   "memory traffic and addressing), or all (both, side by side).")
@click.option("--memory-preset", default="lemaire-int32", show_default=True,
              help="Constants of the memory model: lemaire-int32, lemaire-fp32, lemaire-int8 (sources in the report).")
@click.option("--memory-set", multiple=True, metavar="KEY=VALUE",
              help="Change one memory-model constant, e.g. --memory-set sram_8k_pj=5 (keys: e_add_pj, e_mul_pj, "
                   "sram_8k_pj, sram_32k_pj, sram_1m_pj, word_bytes).")
def energy(checkpoint, run_dir, latest, runs_root, teacher, root, split, preset, e_ac_pj, e_mac_pj, limit, batch_size,
           workers, out, energy_model, memory_preset, memory_set) -> None:
    """Energy report of a trained student from the spikes it fires on the test set.

    Counts, per layer, input spikes, firing rates and exact synaptic operations (SOPs), MACs of
    real-valued layers, and the ANN teacher's MACs for the same input; energy = E_AC x SOPs +
    E_MAC x MACs. Writes energy.json, energy.md and energy.png. Give the student as --checkpoint,
    --run-dir or --latest (`make energy-report` uses --latest, or RUN=dir).
    """
    from ckdsnn_events.pipelines.energy import find_latest_student, run_energy

    if sum(x is not None and x is not False for x in (checkpoint, run_dir, latest)) != 1:
        raise UserError("give exactly one of --checkpoint CKPT, --run-dir DIR or --latest.")
    if run_dir is not None:
        checkpoint = str(Path(run_dir) / "best.pt")
        if not Path(checkpoint).is_file():
            raise UserError(f"--run-dir '{run_dir}' holds no best.pt; give the directory of a finished "
                            "`ckd-events distill` run.")
    elif latest:
        checkpoint = str(find_latest_student(runs_root))
        click.echo(f"latest student run: {checkpoint}")

    result = run_energy(checkpoint, teacher, root, split, preset, e_ac_pj, e_mac_pj, batch_size, workers, limit, out,
                        energy_model=energy_model, memory_preset=memory_preset, memory_set=tuple(memory_set))
    totals = result["student"]["report"]["totals"]
    click.echo(f"student: accuracy {100 * result['student']['accuracy']:.2f}%, {totals['sops'] / 1e6:.3g} M SOPs + "
               f"{totals['macs'] / 1e6:.3g} M MACs = {totals['energy_pj'] / 1e6:.4g} uJ per sample "
               f"(firing rate {totals.get('neuron_firing_rate', float('nan')):.4f})")
    if result["teacher"] is not None:
        t = result["teacher"]
        acc = "untrained" if t["accuracy"] is None else f"accuracy {100 * t['accuracy']:.2f}%"
        click.echo(f"teacher: {acc}, {t['report']['totals']['macs'] / 1e6:.3g} M MACs = "
                   f"{t['report']['totals']['energy_pj'] / 1e6:.4g} uJ per sample; ANN/SNN energy "
                   f"{result['ann_to_snn_energy']:.2f}x")
    for name, rate in result["energy_models"]["break_even"].items():
        click.echo(f"break-even firing rate ({name} model): " + ("-" if rate is None else f"{rate:.4f}"))
    click.echo("report: " + ", ".join(result["paths"].values()))


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(), help="A student's best.pt / last.pt.")
@click.option("--teacher", default=None, type=click.Path(dir_okay=False),
              help="Teacher checkpoint (default: the one the student was distilled from).")
@click.option("--root", default=None, help="Dataset folder, if it moved since training.")
@click.option("--samples", default=8, show_default=True, type=int, help="Test samples to draw (rows).")
@click.option("--split", default="test", show_default=True, type=click.Choice(SPLITS))
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="PNG file (default: saliency.png in the run directory).")
def saliency(checkpoint, teacher, root, samples, split, out) -> None:
    """Save a grid of input, teacher CAM and student spike activation map (what SAMD aligns)."""
    from ckdsnn_events.pipelines.energy import run_saliency

    result = run_saliency(checkpoint, teacher, root, samples, split, out)
    click.echo(f"{result['samples']} samples -> {result['path']}")
