"""``ckd-events verify``: check frame stores sample by sample (and rebuild damaged ones)."""

from __future__ import annotations

import click

from ckdsnn_events.errors import UserError


@click.command()
@click.argument("stores", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--rebuild", is_flag=True,
              help="Remake damaged stores from their recordings, with the options they were made with.")
@click.option("--root", default=None, type=click.Path(file_okay=False),
              help="Where the recordings are, if they moved since the store was made (with --rebuild).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=0),
              help="Processes that read and frame recordings when rebuilding.")
def verify(stores, rebuild, root, workers) -> None:
    """Check frame stores (train.h5, test.h5): structure, labels, and every sample's checksum.

    Names the damaged samples and their recordings; exits 2 if any store is damaged (after
    --rebuild: if a rebuilt store is still damaged).
    """
    from ckdsnn_events.pipelines.verify import describe, run_verify

    results = run_verify(list(stores), rebuild=rebuild, root=root, workers=workers)
    damaged = [r for r in results if r.bad or r.damage]
    for result in results:
        if result not in damaged:
            click.echo(describe(result) + (" (rebuilt)" if result.rebuilt else ""))
    if damaged:
        hint = "" if rebuild else " Rebuild with: ckd-events verify --rebuild " + " ".join(r.path for r in damaged)
        raise UserError(" ".join(describe(r) for r in damaged) + hint)
