"""``ckd-events``: a thin Click layer. Each command parses options and calls one pipeline stage.

User mistakes arrive as :class:`ckdsnn_events.errors.UserError` and leave as one ``Error:`` line
on stderr and a non-zero exit code, never as a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ckdsnn_events import __version__
from ckdsnn_events.errors import UserError

DEFAULT_WORKERS = min(4, os.cpu_count() or 1)


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as err:
            click.echo(f"Error: {err}", err=True)
            ctx.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ckd-events")
def main() -> None:
    """ckd-events: event-camera data to spike-ready tensors, CKDSNN distillation into Norse LIF
    students, and energy reports from the spikes they fire.

    \b
    The offline demo, start to end (or all at once: ckd-events demo):
      ckd-events simulate --out data/digits-dvs
      ckd-events preprocess --dataset digits-dvs --root data/digits-dvs --out data/digits-dvs-frames -T 6 --size 32
      ckd-events distill --dataset digits-dvs          (trains the teacher first)
      ckd-events evaluate --checkpoint runs/digits-dvs/student-resnet20-seed0/best.pt
      ckd-events energy --checkpoint runs/digits-dvs/student-resnet20-seed0/best.pt
    """


@main.command()
@click.option("--out", default="data/digits-dvs", show_default=True, type=click.Path(file_okay=False),
              help="Folder to write ROOT/<class>/<name>.aedat recordings into.")
@click.option("--images", default=None, type=click.Path(file_okay=False),
              help="A folder with one subfolder of images per class. Default: scikit-learn's bundled "
                   "handwritten digits (1797 images, 10 classes, no download).")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="At most this many images per class.")
@click.option("--workers", default=DEFAULT_WORKERS, show_default=True, type=click.IntRange(min=0),
              help="Processes to simulate with (0 or 1: this process).")
@click.option("--image-px", default=64, show_default=True, type=click.IntRange(min=1),
              help="Side of the image on the 128x128 sensor, pixels.")
@click.option("--saccades", default=3, show_default=True, type=click.IntRange(min=1),
              help="Saccades per recording (corners of the closed eye path; 3 = N-MNIST's triangle).")
@click.option("--saccade-ms", default=100.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Duration of one saccade.")
@click.option("--amplitude-px", default=3.0, show_default=True, type=click.FloatRange(min=0),
              help="How far the image moves, pixels.")
@click.option("--threshold", default=0.2, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Log-intensity contrast threshold of a pixel.")
@click.option("--threshold-sigma", default=0.03, show_default=True, type=click.FloatRange(min=0),
              help="Per-pixel threshold mismatch (standard deviation).")
@click.option("--refractory-us", default=0, show_default=True, type=click.IntRange(min=0),
              help="Refractory period of a pixel after an event.")
@click.option("--noise-hz", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Background-activity noise events per pixel per second.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of mismatch and noise.")
@click.option("--overwrite", is_flag=True, help="Replace recordings simulated earlier with other settings.")
def simulate(out, images, limit, workers, image_px, saccades, saccade_ms, amplitude_px, threshold,
             threshold_sigma, refractory_us, noise_hz, seed, overwrite) -> None:
    """Simulate DVS recordings of images (the embedded digits by default).

    Each image moves in small saccades in front of a simulated 128x128 DVS that emits an event when
    a pixel's log intensity changes by more than its threshold. The output has the on-disk form
    of the original CIFAR10-DVS release, so `preprocess --dataset digits-dvs` (or
    `--dataset event-folder` for your own images) reads it like the real thing. Re-running the
    same command skips recordings already written.
    """
    from ckdsnn_events.events.simulate import SimulatorConfig
    from ckdsnn_events.pipelines.simulate import SimulateJob, run_simulate

    config = SimulatorConfig(
        image_px=image_px, saccades=saccades, saccade_ms=saccade_ms, amplitude_px=amplitude_px,
        threshold=threshold, threshold_sigma=threshold_sigma, refractory_us=refractory_us,
        noise_hz=noise_hz, seed=seed,
    )
    summary = run_simulate(SimulateJob(out, images, limit, workers, overwrite), config)
    mean = f", {summary['mean_events']:.0f} events per recording" if summary["mean_events"] else ""
    click.echo(
        f"{summary['recordings']} recordings in {len(summary['classes'])} classes under {summary['out']} "
        f"({summary['written']} written now{mean})."
    )


STATIC_DATASETS = ["cifar10", "cifar100", "imagefolder", "digits"]


@main.command()
@click.option("--dataset", default="cifar10dvs", show_default=True,
              type=click.Choice(["cifar10dvs", "digits-dvs", "event-folder", *STATIC_DATASETS]),
              help="Event data (framed into HDF5 stores): cifar10dvs: CIFAR10-DVS (10 fixed classes); "
                   "digits-dvs: the embedded simulated digits; event-folder: any simulated/recorded folder "
                   "of class subfolders. Image data (cifar10, cifar100, imagefolder, digits) is encoded on "
                   "the fly during training: preprocess only checks that it loads.")
@click.option("--root", default=None, type=click.Path(),
              help="Dataset root: ROOT/CIFAR10DVS/<class>/*.aedat4 (tonic), ROOT/<class>/*.aedat "
                   "(original release) or ROOT/events_np/<class>/*.npz (SpikingJelly); detected. Image data: "
                   "the folder holding cifar-10-batches-py/ or cifar-100-python/, or ROOT/train + ROOT/val.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Folder for the frame stores train.h5 and test.h5 (event data).")
@click.option("--format", "form", default="auto", show_default=True,
              type=click.Choice(["auto", "aedat", "aedat4", "npz"]),
              help="Force one on-disk form when ROOT holds several.")
@click.option("--timesteps", "-T", default=10, show_default=True, type=click.IntRange(min=1),
              help="Frames per sample (T).")
@click.option("--size", default=48, show_default=True, type=click.IntRange(min=1),
              help="Frame side after spatial downsampling from the 128x128 sensor.")
@click.option("--bins", default="count", show_default=True, type=click.Choice(["count", "time", "window"]),
              help="count: T bins of equal event count; time: T bins of equal duration; "
                   "window: T windows of --window-us each from the first event.")
@click.option("--window-us", default=None, type=click.IntRange(min=1), help="Window length for --bins window.")
@click.option("--split", default=0.9, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="Training fraction per class; the first files (sorted) of each class train.")
@click.option("--workers", default=DEFAULT_WORKERS, show_default=True, type=click.IntRange(min=0),
              help="Processes that read and frame recordings (0 or 1: this process).")
@click.option("--skip-bad", is_flag=True,
              help="Leave out unreadable/corrupt recordings (listed at the end and in the store's "
                   "'skipped' attribute) instead of stopping at the first one.")
@click.option("--overwrite", is_flag=True, help="Replace stores made with a different config.")
def preprocess(dataset, root, out, form, timesteps, size, bins, window_us, split, workers, skip_bad,
               overwrite) -> None:
    """Frame event recordings into HDF5 stores (train.h5, test.h5) of (T, 2, H, W) counts.

    Progress survives Ctrl-C and kill -9: run the same command again to resume. With the same
    inputs and options a re-run does nothing; a store made with other options is never
    overwritten without --overwrite.
    """
    from ckdsnn_events.pipelines.preprocess import PreprocessConfig, check_static_dataset, run_preprocess

    if dataset in STATIC_DATASETS:
        info = check_static_dataset(dataset, root)
        click.echo(f"{dataset}: {info.n_train} training, {info.n_val} validation and {info.n_test} test images "
                   f"in {info.num_classes} classes, {info.in_channels}x{info.input_size[0]}x{info.input_size[1]}. "
                   "Images are spike-encoded on the fly during training; nothing to write.")
        return
    for option, value in (("--root", root), ("--out", out)):
        if value is None:
            raise UserError(f"{option} is required for --dataset {dataset}.")
    config = PreprocessConfig(dataset, root, out, form, timesteps, size, bins, window_us, split, workers,
                              skip_bad, overwrite)
    result = run_preprocess(config)
    click.echo(f"source: {result.folder} ({result.form})")
    for name, split_result in result.splits.items():
        click.echo(f"{name}: {split_result.samples} samples -> {split_result.path} ({split_result.status})")
        for bad in split_result.skipped:
            click.echo(f"  skipped {bad['file']}: {bad['error']}")
    if result.recordings_done:
        total = result.decode_s + result.frame_s + result.encode_s + result.write_s
        share = lambda s: f"{100 * s / total:.0f}%" if total else "-"
        click.echo(
            f"{result.recordings_done} recordings in {result.wall_s:.1f} s "
            f"({result.samples_per_s:.1f} samples/s); time split: decode {share(result.decode_s)}, "
            f"framing {share(result.frame_s)}, compression {share(result.encode_s)}, "
            f"writing {share(result.write_s)}"
        )


# --- training ------------------------------------------------------------------------------------

TRAIN_DATASETS = ["cifar10dvs", "digits-dvs", "cifar10", "cifar100", "imagefolder", "digits"]


def _training_options(command):
    """Options shared by train-teacher, distill and ablate (each maps onto a config key)."""
    options = [
        click.option("--dataset", required=True, type=click.Choice(TRAIN_DATASETS),
                     help="cifar10dvs / digits-dvs: frame stores made by `preprocess` (--root is their folder); "
                          "cifar10 / cifar100 / imagefolder: image datasets (--root is the dataset root); "
                          "digits: the embedded static digits."),
        click.option("--root", default=None, help="Data folder (default: the recipe's). [data.root]"),
        click.option("--recipe", default=None, type=click.Path(dir_okay=False),
                     help="TOML recipe (default: the packaged recipe of --dataset)."),
        click.option("--epochs", default=None, type=click.IntRange(min=1), help="Epochs. [optim.epochs / teacher_optim.epochs]"),
        click.option("--lr", default=None, type=click.FloatRange(min=0, min_open=True), help="Peak learning rate."),
        click.option("--batch-size", default=None, type=click.IntRange(min=1), help="Batch size per process. [data.batch_size]"),
        click.option("--timesteps", "-T", default=None, type=click.IntRange(min=1),
                     help="Time steps of encoded images (event stores fix their own T). [data.timesteps]"),
        click.option("--encoder", default=None, type=click.Choice(["direct", "rate", "latency"]),
                     help="Spike encoder for static images. [data.encoder]"),
        click.option("--workers", default=None, type=click.IntRange(min=0), help="DataLoader workers. [data.workers]"),
        click.option("--download", is_flag=True, default=None, help="cifar10/cifar100: download into --root if missing."),
        click.option("--seed", default=None, type=int, help="Seed of weights, split, shuffling, augmentation, noise."),
        click.option("--device", default=None, help="auto (CUDA if present), cpu, cuda, cuda:N."),
        click.option("--run-dir", default=None, type=click.Path(file_okay=False),
                     help="Run directory (default runs/<dataset>/<kind>-<arch>-seed<seed>)."),
        click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                     help="Override any config key, e.g. --set loss.samd_variant=reference (repeatable)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _resolve(kind: str, dataset, root, recipe, epochs, lr, batch_size, timesteps, encoder, workers, download,
             seed, device, run_dir, overrides, extra=None):
    from ckdsnn_events.pipelines.train import resolve_config

    optim = "teacher_optim" if kind == "teacher" else "optim"
    options = {"data.root": root, f"{optim}.epochs": epochs, f"{optim}.lr": lr, "data.batch_size": batch_size,
               "data.timesteps": timesteps, "data.encoder": encoder, "data.workers": workers,
               "data.download": download, "seed": seed, "device": device, "run_dir": run_dir, **(extra or {})}
    return resolve_config(dataset, recipe, options, overrides)


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


@main.command("train-teacher")
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
    result = run_train_teacher(config, resume=resume)
    if _is_main():
        click.echo(f"teacher: best validation accuracy {100 * result['best_val_acc']:.2f}% (epoch "
                   f"{result['best_epoch']}), test accuracy there {100 * result['test_acc_at_best']:.2f}%; "
                   f"checkpoint {result['best_checkpoint']}")


@main.command()
@_training_options
@click.option("--teacher", default=None, type=click.Path(dir_okay=False),
              help="Teacher checkpoint (best.pt of train-teacher). Default: train one, or reuse the one "
                   "distill trained before for the same data and teacher settings.")
@click.option("--beta", default=None, type=click.FloatRange(min=0), help="SAMD weight. [loss.beta]")
@click.option("--gamma", default=None, type=click.FloatRange(min=0), help="NLD weight. [loss.gamma]")
@click.option("--variant", default=None, type=click.Choice(["paper", "reference"]),
              help="SAMD and NLD in the paper's form or the public reference code's. [loss.samd_variant, loss.nld_variant]")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir from its last.pt.")
def distill(teacher, beta, gamma, variant, resume, **kw) -> None:
    """Distil a Norse LIF student from an ANN teacher with CKDSNN (CE + beta*SAMD + gamma*NLD).

    Runs data-parallel under torchrun:
    `torchrun --nproc_per_node N -m ckdsnn_events.cli distill ...` (gloo on CPU, nccl on GPU).
    """
    from ckdsnn_events.pipelines.train import run_distill

    extra = {"teacher_checkpoint": teacher, "loss.beta": beta, "loss.gamma": gamma,
             "loss.samd_variant": variant, "loss.nld_variant": variant}
    config = _resolve("student", extra=extra, **kw)
    result = run_distill(config, resume=resume)
    if _is_main():
        click.echo(f"student: best validation accuracy {100 * result['best_val_acc']:.2f}% (epoch "
                   f"{result['best_epoch']}), test accuracy there {100 * result['test_acc_at_best']:.2f}%, "
                   f"firing rate {result['firing_rate_at_best']:.3f}; checkpoint {result['best_checkpoint']}")


@main.command()
@click.option("--checkpoint", required=True, type=click.Path(), help="A best.pt / last.pt of a teacher or student.")
@click.option("--root", default=None, help="Data folder, if it moved since training.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["test", "val", "train"]))
@click.option("--batch-size", default=None, type=click.IntRange(min=1))
@click.option("--workers", default=None, type=click.IntRange(min=0))
def evaluate(checkpoint, root, split, batch_size, workers) -> None:
    """Accuracy (and firing rate, for students) of a checkpoint on its dataset."""
    from ckdsnn_events.pipelines.train import run_evaluate

    result = run_evaluate(checkpoint, {"root": root, "batch_size": batch_size, "workers": workers}, split)
    rate = f", firing rate {result['firing_rate']:.4f}" if result["kind"] == "student" else ""
    click.echo(f"{result['kind']} (epoch {result['epoch']}): {split} accuracy {100 * result['acc']:.2f}% "
               f"on {result['n']} samples, loss {result['loss']:.4f}{rate}")


@main.command()
@_training_options
@click.option("--seeds", default=3, show_default=True, type=click.IntRange(min=1), help="Seeds per variant.")
@click.option("--variants", default="ce,kd,samd,nld,samd+nld", show_default=True,
              help="Comma-separated loss variants.")
@click.option("--teacher", default=None, type=click.Path(dir_okay=False), help="Teacher checkpoint (default: cached/trained).")
def ablate(seeds, variants, teacher, **kw) -> None:
    """Train CE-only, KD, SAMD-only, NLD-only and SAMD+NLD students with the same seeds; tabulate.

    Writes ablation.md and ablation.json (mean and std of test accuracy at the best validation
    epoch) under runs/<dataset>/ablation/. Interrupted runs resume when the command is repeated.
    """
    from ckdsnn_events.pipelines.train import run_ablate

    kw.pop("run_dir", None)
    config = _resolve("student", extra={"teacher_checkpoint": teacher}, run_dir=None, **kw)
    result = run_ablate(config, seeds, tuple(v.strip() for v in variants.split(",") if v.strip()))
    click.echo(result["markdown"])
    click.echo(f"(written to {result['out_dir']}/ablation.md and ablation.json)")


# --- after training ------------------------------------------------------------------------------

ENERGY_PRESETS = ["45nm-fp32", "45nm-fp16", "45nm-int32", "45nm-int8", "custom"]


@main.command()
@click.option("--checkpoint", default=None, type=click.Path(), help="A student's best.pt / last.pt.")
@click.option("--run-dir", default=None, type=click.Path(file_okay=False), help="A student's run directory (its best.pt).")
@click.option("--latest", is_flag=True, help="The most recent student run under --runs-root.")
@click.option("--runs-root", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Where --latest looks.")
@click.option("--teacher", default=None, type=click.Path(dir_okay=False),
              help="Teacher checkpoint to compare with (default: the one the student was distilled from).")
@click.option("--root", default=None, help="Dataset folder, if it moved since training.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["test", "val", "train"]))
@click.option("--preset", default="45nm-fp32", show_default=True,
              help=f"Energy per operation: {', '.join(ENERGY_PRESETS)} (45 nm, Horowitz 2014).")
@click.option("--e-ac-pj", default=None, type=float, help="Energy of one accumulate (pJ); overrides the preset.")
@click.option("--e-mac-pj", default=None, type=float, help="Energy of one multiply-accumulate (pJ); overrides the preset.")
@click.option("--limit", default=None, type=int, help="Count on at most this many samples (default: all).")
@click.option("--batch-size", default=None, type=click.IntRange(min=1))
@click.option("--workers", default=None, type=click.IntRange(min=0))
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Output folder (default: the run directory).")
def energy(checkpoint, run_dir, latest, runs_root, teacher, root, split, preset, e_ac_pj, e_mac_pj, limit, batch_size,
           workers, out) -> None:
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

    result = run_energy(checkpoint, teacher, root, split, preset, e_ac_pj, e_mac_pj, batch_size, workers, limit, out)
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
    click.echo("report: " + ", ".join(result["paths"].values()))


@main.command()
@click.option("--checkpoint", required=True, type=click.Path(), help="A student's best.pt / last.pt.")
@click.option("--teacher", default=None, type=click.Path(dir_okay=False),
              help="Teacher checkpoint (default: the one the student was distilled from).")
@click.option("--root", default=None, help="Dataset folder, if it moved since training.")
@click.option("--samples", default=8, show_default=True, type=int, help="Test samples to draw (rows).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["test", "val", "train"]))
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="PNG file (default: saliency.png in the run directory).")
def saliency(checkpoint, teacher, root, samples, split, out) -> None:
    """Save a grid of input, teacher CAM and student spike activation map (what SAMD aligns)."""
    from ckdsnn_events.pipelines.energy import run_saliency

    result = run_saliency(checkpoint, teacher, root, samples, split, out)
    click.echo(f"{result['samples']} samples -> {result['path']}")


@main.command()
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

    summary = run_demo(DemoConfig(data, runs_root, limit, timesteps, size, workers, tuple(overrides)), log=click.echo)
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

from ckdsnn_events.cli.verify import verify as _verify  # noqa: E402 - a command of its own module
main.add_command(_verify)
