"""``ckd-events train-teacher``, ``distill`` and ``evaluate``: the training stages (``ablate``: cli/ablate.py).

Options map onto keys of the run's typed config (shown in brackets in ``--help``); they travel as
typed values into :func:`ckdsnn_events.pipelines.train.resolve_config`, and ``--set
SECTION.KEY=VALUE`` sets any other key from text.
"""

from __future__ import annotations

import click

from ckdsnn_events.cli.options import SPLITS, LibraryChoice, is_main_process


def _training_options(command):
    """Options shared by train-teacher and distill (each maps onto a config key)."""
    options = [
        click.option("--dataset", required=True, type=LibraryChoice("ckdsnn_events.data.loaders:DATASETS"),
                     help="cifar10dvs / digits-dvs / dvsgesture / nmnist / ncaltech101 / asldvs / pokerdvs: "
                          "frame stores made by `preprocess` (--root is their folder); "
                          "cifar10 / cifar100 / imagefolder: image datasets (--root is the dataset root); "
                          "digits: the embedded static digits."),
        click.option("--root", default=None, help="Data folder (default: the recipe's). [data.root]"),
        click.option("--recipe", default=None, type=click.Path(dir_okay=False),
                     help="TOML recipe file, or the name of a packaged one (e.g. cifar100-spikformer; "
                          "default: the packaged recipe of --dataset)."),
        click.option("--epochs", default=None, type=click.IntRange(min=1), help="Epochs. [optim.epochs / teacher_optim.epochs]"),
        click.option("--lr", default=None, type=click.FloatRange(min=0, min_open=True), help="Peak learning rate."),
        click.option("--batch-size", default=None, type=click.IntRange(min=1), help="Batch size per process. [data.batch_size]"),
        click.option("--timesteps", "-T", default=None, type=click.IntRange(min=1),
                     help="Time steps of encoded images (event stores fix their own T). [data.timesteps]"),
        click.option("--encoder", default=None, type=LibraryChoice("ckdsnn_events.data.encoders:ENCODERS"),
                     help="Spike encoder for static images. [data.encoder]"),
        click.option("--workers", default=None, type=click.IntRange(min=0), help="DataLoader workers. [data.workers]"),
        click.option("--download", is_flag=True, default=None, help="cifar10/cifar100: download into --root if missing."),
        click.option("--seed", default=None, type=int, help="Seed of weights, split, shuffling, augmentation, noise."),
        click.option("--device", default=None, help="auto (CUDA if present), cpu, cuda, cuda:N."),
        click.option("--precision", default=None, type=LibraryChoice("ckdsnn_events.distill.precision:PRECISIONS"),
                     help="32, or bf16-mixed (bf16 autocast; CUDA, or a CPU with AVX512-BF16/AMX). [optim.precision]"),
        click.option("--teacher-arch", default=None, type=LibraryChoice("ckdsnn_events.models:TEACHERS"),
                     help="Teacher architecture. [model.teacher]"),
        click.option("--student-arch", default=None, type=LibraryChoice("ckdsnn_events.models:STUDENTS"),
                     help="Student architecture. [model.student]"),
        click.option("--run-dir", default=None, type=click.Path(file_okay=False),
                     help="Run directory (default runs/<dataset>/<kind>-<arch>-seed<seed>)."),
        click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                     help="Override any config key, e.g. --set loss.samd_variant=reference (repeatable)."),
        click.option("--preset", default=None, type=LibraryChoice("ckdsnn_events.distill.presets:PRESETS"),
                     help="reference: the released CKDSNN code's training step (ReLU last block, projector head, "
                          "avgpool shortcut, train-mode teacher, its loss forms); paper: the paper's formulas. "
                          "Applied over the recipe, under the other options. [preset]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


# option -> the config key it sets ({optim}: teacher_optim for train-teacher, optim for the students)
CONFIG_KEYS = {
    "root": "data.root", "epochs": "{optim}.epochs", "lr": "{optim}.lr", "batch_size": "data.batch_size",
    "timesteps": "data.timesteps", "encoder": "data.encoder", "workers": "data.workers",
    "download": "data.download", "seed": "seed", "device": "device", "run_dir": "run_dir", "precision": "{optim}.precision",
    "teacher_arch": "model.teacher", "student_arch": "model.student", "preset": "preset",
}


def _resolve(kind: str, dataset: str, recipe: str | None, overrides: tuple[str, ...], extra: dict | None = None,
             **options):
    """The run's config: the recipe, then the options given (typed, by CONFIG_KEYS and ``extra``), then --set."""
    from ckdsnn_events.pipelines.train import resolve_config

    optim = "teacher_optim" if kind == "teacher" else "optim"
    values = {CONFIG_KEYS[name].format(optim=optim): value for name, value in options.items()}
    return resolve_config(dataset, recipe, {**values, **(extra or {})}, overrides)


def _echo_best(result: dict) -> None:
    """The line train-teacher and distill end with: the best epoch of the run (rank 0 only)."""
    if not is_main_process():
        return
    rate = f", firing rate {result['firing_rate_at_best']:.3f}" if result["kind"] == "student" else ""
    click.echo(f"{result['kind']}: best validation accuracy {100 * result['best_val_acc']:.2f}% (epoch "
               f"{result['best_epoch']}), test accuracy there {100 * result['test_acc_at_best']:.2f}%{rate}; "
               f"checkpoint {result['best_checkpoint']}")


@click.command("train-teacher")
@_training_options
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir from its last.pt.")
def train_teacher(resume, **kw) -> None:
    """Train the ANN teacher (CE) on the teacher view of a dataset.

    Event datasets give the teacher the accumulated frame (sum over T), image datasets the image.
    Writes config.toml, metrics.csv, last.pt and best.pt (best validation accuracy) to the run
    directory; Ctrl-C or kill -9, then the same command with --resume, continue where it stopped.
    """
    from ckdsnn_events.pipelines.train import run_train_teacher

    config = _resolve("teacher", **kw)
    _echo_best(run_train_teacher(config, resume=resume))


@click.command()
@_training_options
@click.option("--teacher", default=None, type=click.Path(dir_okay=False),
              help="Teacher checkpoint (best.pt of train-teacher). Default: train one, or reuse the one "
                   "distill trained before for the same data and teacher settings.")
@click.option("--teacher-weights", default=None,
              help="Use these teacher weights instead of training a teacher: a file holding a torchvision "
                   "state_dict, or 'imagenet' (torchvision's ImageNet-1K weights of a tv-resnet teacher; "
                   "needs the network once). [model.teacher_weights]")
@click.option("--beta", default=None, type=click.FloatRange(min=0), help="SAMD weight. [loss.beta]")
@click.option("--gamma", default=None, type=click.FloatRange(min=0), help="NLD weight. [loss.gamma]")
@click.option("--variant", default=None, type=LibraryChoice("ckdsnn_events.distill.losses:VARIANTS"),
              help="SAMD and NLD in the paper's form or the public reference code's. [loss.samd_variant, loss.nld_variant]")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir from its last.pt.")
def distill(teacher, teacher_weights, beta, gamma, variant, resume, **kw) -> None:
    """Distil a spiking LIF student from an ANN teacher with CKDSNN (CE + beta*SAMD + gamma*NLD).

    The neurons run on our fused kernel (numba on CPU; the default, faster) or, with
    --set model.neuron_backend=norse, on Norse's own neuron steps; both give the same results
    (tested). Neuron keys: model.neuron (lif, if), surrogate (triangle, atan, sigmoid),
    surrogate_width, surrogate_alpha, reset, detach_reset, decay, threshold.

    Runs data-parallel under torchrun:
    `torchrun --nproc_per_node N -m ckdsnn_events.cli distill ...` (gloo on CPU, nccl on GPU).
    """
    from ckdsnn_events.pipelines.train import run_distill

    extra = {"teacher_checkpoint": teacher, "model.teacher_weights": teacher_weights, "loss.beta": beta,
             "loss.gamma": gamma, "loss.samd_variant": variant, "loss.nld_variant": variant}
    config = _resolve("student", extra=extra, **kw)
    _echo_best(run_distill(config, resume=resume))


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(), help="A best.pt / last.pt of a teacher or student.")
@click.option("--root", default=None, help="Data folder, if it moved since training.")
@click.option("--split", default="test", show_default=True, type=click.Choice(SPLITS))
@click.option("--batch-size", default=None, type=click.IntRange(min=1))
@click.option("--workers", default=None, type=click.IntRange(min=0))
def evaluate(checkpoint, root, split, batch_size, workers) -> None:
    """Accuracy (and firing rate, for students) of a checkpoint on its dataset."""
    from ckdsnn_events.pipelines.train import run_evaluate

    result = run_evaluate(checkpoint, {"root": root, "batch_size": batch_size, "workers": workers}, split)
    rate = f", firing rate {result['firing_rate']:.4f}" if result["kind"] == "student" else ""
    click.echo(f"{result['kind']} (epoch {result['epoch']}): {split} accuracy {100 * result['acc']:.2f}% "
               f"on {result['n']} samples, loss {result['loss']:.4f}{rate}")
