"""``ckd-events plot``: training curves of one or more run directories in one figure."""

from __future__ import annotations

import click


@click.command("plot")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="PNG file (default: curves.png in the run directory for one run, curves-overlay.png here for several).")
def plot(run_dirs, out) -> None:
    """Draw the curves of RUN_DIR (loss terms, accuracies, firing rate, learning rate), or overlay several.

    One run: redraws RUN_DIR/curves.png (the trainer keeps it current after every epoch). Several
    runs: validation and test accuracy, training loss and firing rate of each, one colour per run.
    """
    from ckdsnn_events.distill.curves import draw_curves, overlay_curves

    if len(run_dirs) == 1:
        path = draw_curves(run_dirs[0], out)
    else:
        path = overlay_curves(list(run_dirs), out or "curves-overlay.png")
    click.echo(f"curves of {len(run_dirs)} run(s) -> {path}")
