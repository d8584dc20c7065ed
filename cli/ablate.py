"""``ckd-events ablate``: one of the paper's ablation studies, paired over seeds."""

from __future__ import annotations

import click

from ckdsnn_events.cli.options import LibraryChoice


@click.command("ablate")
@click.option("--study", required=True, type=LibraryChoice("ckdsnn_events.pipelines.ablate:STUDIES"),
              help="terms: CE, KD, KDSNN, SAMD, NLD, SAMD+NLD; scaling: SAMD softmax/none/zscore/l2; stage: SAMD "
                   "on each student stage; maps: student SAM vs Grad-CAM; noise: adaptive vs fixed-std vs no noise.")
@click.option("--dataset", required=True, type=LibraryChoice("ckdsnn_events.data.loaders:DATASETS"), help="Dataset (its recipe is the base config).")
@click.option("--root", default=None, help="Data folder (default: the recipe's). [data.root]")
@click.option("--recipe", default=None, type=click.Path(dir_okay=False), help="TOML recipe (default: the packaged one).")
@click.option("--teacher", default=None, type=click.Path(dir_okay=False),
              help="Teacher checkpoint for every run (default: the cached teacher of the recipe, trained if missing).")
@click.option("--seeds", default=5, show_default=True, type=click.IntRange(min=1),
              help="Seeds per row, the same for every row (paired); --seed is the first.")
@click.option("--seed", default=None, type=int, help="First seed (default: the recipe's).")
@click.option("--epochs", default=None, type=click.IntRange(min=1), help="Epochs per student. [optim.epochs]")
@click.option("--quick", is_flag=True, help="One epoch per student (for machines where the full study takes too long).")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Folder of the runs and reports (default: runs/<dataset>/ablation-<study>[-quick]).")
@click.option("--workers", default=None, type=click.IntRange(min=0), help="DataLoader workers. [data.workers]")
@click.option("--device", default=None, help="auto (CUDA if present), cpu, cuda, cuda:N.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a config key of every run, e.g. --set loss.samd_norm=sample-minmax (repeatable).")
def ablate(study, dataset, root, recipe, teacher, seeds, seed, epochs, quick, out, workers, device, overrides) -> None:
    """Train every row of an ablation study with the same teacher and seeds; tabulate and plot.

    Writes ablation.md (mean, std, 95 % t-interval, paired differences against the study's
    baseline row with their 95 % interval), ablation.csv (one line per run), ablation.png (one dot
    per seed, mean and interval) and ablation.json. Each student is its own resumable run: repeat
    the command after an interruption and it continues where it stopped.
    """
    from ckdsnn_events.pipelines.ablate import run_ablation
    from ckdsnn_events.pipelines.train import resolve_config

    options = {"data.root": root, "teacher_checkpoint": teacher, "seed": seed, "optim.epochs": epochs,
               "data.workers": workers, "device": device}
    config = resolve_config(dataset, recipe, options, overrides)
    result = run_ablation(config, study, seeds, out, quick=quick, log=click.echo)
    click.echo(result["markdown"])
    click.echo("written: " + ", ".join(result["paths"].values()))
