"""``ckd-events export``: a trained student as a NIR graph (thin: parses options, calls the pipeline)."""

from __future__ import annotations

import click


@click.command("export")
@click.option("--checkpoint", required=True, type=click.Path(), help="A student's best.pt / last.pt.")
@click.option("--format", "form", default="nir", show_default=True, type=click.Choice(["nir"]),
              help="Output format: NIR (neuroir.org), read by Norse, snnTorch, Sinabs, Lava-DL, Rockpool, ...")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The file to write, e.g. model.nir.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--dt", default=None, type=float,
              help="Simulation time step in seconds; sets the LIF time constants (tau = dt / (1 - decay)). "
                   "Default: 0.001, Norse's from_nir default.")
@click.option("--verify-samples", default=1, show_default=True, type=click.IntRange(min=0),
              help="Random inputs on which the written file is run and compared with the model (0: skip).")
@click.option("--pool", default="sum", show_default=True, type=click.Choice(["sum", "avg"]),
              help="Average pools as SumPool2d with 1/k^2 folded into the next weights (Norse, Lava, Sinabs, "
                   "SpiNNaker2, Spyx) or as AvgPool2d (snnTorch, which has no SumPool2d).")
def export(checkpoint, form, out, overwrite, dt, verify_samples, pool) -> None:
    """Export a trained student to a NIR graph (BN folded, LIF as nir.LIF, residuals as summed edges).

    Layers NIR cannot express (a ReLU last block, a projector head, a subtractive reset, ...) stop
    the export with an error naming the layer. The written file is read back and run next to the
    model on random inputs; the figures are printed.
    """
    from ckdsnn_events.pipelines.export import run_export

    result = run_export(checkpoint, out, form, dt, overwrite, verify_samples, pool=pool)
    click.echo(f"wrote {result['path']}: {result['nodes']} nodes, {result['edges']} edges, dt = {result['dt']} s "
               f"({result['seconds']:.2f} s)")
    check = result["check"]
    if check is not None:
        click.echo(f"round trip on {verify_samples} random inputs: {check['differing']} of {check['spikes']} spikes "
                   f"differ (fraction {check['fraction']:.2e}), max |logit difference| {check['max_logit_diff']:.2e}")
