"""``ckd-events demo``: the whole pipeline on the embedded digits-dvs dataset, offline."""

from __future__ import annotations

import click

from ckdsnn_events.cli.options import DEFAULT_WORKERS


@click.command()
@click.option("--data", default="data", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the simulated recordings and frame stores.")
@click.option("--runs-root", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the runs (teacher, student, reports).")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Recordings per class (default: all digits).")
@click.option("--timesteps", "-T", default=6, show_default=True, type=click.IntRange(min=1), help="Frames per sample.")
@click.option("--size", default=32, show_default=True, type=click.IntRange(min=1), help="Frame side.")
@click.option("--workers", default=DEFAULT_WORKERS, show_default=True, type=click.IntRange(min=0))
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a key of the digits-dvs training recipe, e.g. --set optim.epochs=2.")
def demo(data, runs_root, limit, timesteps, size, workers, overrides) -> None:
    """The whole pipeline on the embedded digits-dvs dataset, offline.

    simulate -> preprocess -> train-teacher -> distill (SAMD + NLD) -> evaluate -> energy. Run it
    again to continue after an interruption; finished stages are skipped.
    """
    from ckdsnn_events.pipelines.demo import DemoConfig, run_demo

    summary = run_demo(DemoConfig(data=data, runs_root=runs_root, limit=limit, timesteps=timesteps, size=size,
                                    workers=workers, overrides=tuple(overrides)), log=click.echo)
    teacher = summary["teacher_test_acc"]
    click.echo("")
    click.echo("summary")
    click.echo(f"  teacher ANN test accuracy:  {'-' if teacher is None else f'{100 * teacher:.2f}%'}")
    click.echo(f"  student SNN test accuracy:  {100 * summary['student_test_acc']:.2f}% "
               f"(firing rate {summary['student_firing_rate']:.3f})")
    ratio = summary["ann_to_snn_energy"]
    click.echo(f"  energy per sample: SNN {summary['student_energy_pj'] / 1e6:.4g} uJ, ANN "
               f"{(summary['teacher_energy_pj'] or 0) / 1e6:.4g} uJ"
               + (f" (ANN/SNN {ratio:.2f}x)" if ratio else ""))
    click.echo(f"  report: {summary['report']}")
    click.echo("  seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in summary["seconds"].items()))
