"""``ckd-events models``: the teachers and students a run can use, with their parameter counts."""

from __future__ import annotations

import click

from ckdsnn_events.cli.options import LibraryChoice


@click.command("models")
@click.option("--dataset", default="cifar10dvs", show_default=True,
              type=LibraryChoice("ckdsnn_events.data.loaders:DATASETS"),
              help="Size the models for this dataset's classes and input channels, with its recipe's widths "
                   "and options.")
@click.option("--preset", default=None, type=LibraryChoice("ckdsnn_events.distill.presets:PRESETS"),
              help="Apply this preset's block options (reference: ReLU last block, projector head, avgpool "
                   "shortcut).")
@click.option("--recipe", default=None, type=click.Path(dir_okay=False), help="TOML recipe (default: the dataset's).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a config key, e.g. --set model.head=projector (repeatable).")
def models(dataset, preset, recipe, overrides) -> None:
    """List every teacher and student with its parameter count and the code that runs its neurons.

    The rows marked * are the ones the recipe (after --preset and --set) trains.
    """
    from ckdsnn_events.pipelines.models import DATASET_SHAPES, NEURON_NOTES, model_table
    from ckdsnn_events.pipelines.train import resolve_config

    config = resolve_config(dataset, recipe, {"preset": preset}, overrides)
    classes, channels = DATASET_SHAPES[dataset]
    click.echo(f"{dataset}: {classes} classes, {channels} input channels"
               + (f", preset {config.preset}" if config.preset else ""))
    rows = model_table(config, classes, channels)
    click.echo(f"  {'kind':<8}{'name':<18}{'parameters':>12}  {'options':<51}neurons")
    for row in rows:
        options = ", ".join(f"{k}={v}" for k, v in row.options.items())
        click.echo(f"{'*' if row.chosen else ' '} {row.kind:<8}{row.name:<18}{row.parameters:>12,}  {options:<51}"
                   f"{row.neurons}")
    for code in sorted({row.neurons.split(", ")[-1] for row in rows} & set(NEURON_NOTES)):
        click.echo(f"{code}: {NEURON_NOTES[code]}")
