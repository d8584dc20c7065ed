"""``ckd-events simulate`` and ``preprocess``: recordings in, HDF5 frame stores out."""

from __future__ import annotations

import click

from ckdsnn_events.cli.options import DEFAULT_WORKERS, LibraryChoice
from ckdsnn_events.errors import UserError

EVENT_FOLDERS = "ckdsnn_events.data.event_folders"
LOADERS = "ckdsnn_events.data.loaders"


@click.command()
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
    summary = run_simulate(SimulateJob(out=out, images=images, limit=limit, workers=workers, overwrite=overwrite), config)
    mean = f", {summary['mean_events']:.0f} events per recording" if summary["mean_events"] else ""
    click.echo(
        f"{summary['recordings']} recordings in {len(summary['classes'])} classes under {summary['out']} "
        f"({summary['written']} written now{mean})."
    )


@click.command()
@click.option("--dataset", default="cifar10dvs", show_default=True,
              type=LibraryChoice(f"{EVENT_FOLDERS}:EVENT_DATASETS", f"{LOADERS}:IMAGE_DATASETS"),
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
              type=LibraryChoice("auto", f"{EVENT_FOLDERS}:EXTENSIONS"),
              help="Force one on-disk form when ROOT holds several.")
@click.option("--timesteps", "-T", default=10, show_default=True, type=click.IntRange(min=1),
              help="Frames per sample (T).")
@click.option("--size", default=48, show_default=True, type=click.IntRange(min=1),
              help="Frame side after spatial downsampling from the 128x128 sensor.")
@click.option("--bins", default="count", show_default=True, type=LibraryChoice("ckdsnn_events.events.framing:BIN_MODES"),
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
    from ckdsnn_events.data.loaders import IMAGE_DATASETS
    from ckdsnn_events.pipelines.preprocess import PreprocessConfig, check_static_dataset, run_preprocess

    if dataset in IMAGE_DATASETS:
        info = check_static_dataset(dataset, root)
        click.echo(f"{dataset}: {info.n_train} training, {info.n_val} validation and {info.n_test} test images "
                   f"in {info.num_classes} classes, {info.in_channels}x{info.input_size[0]}x{info.input_size[1]}. "
                   "Images are spike-encoded on the fly during training; nothing to write.")
        return
    for option, value in (("--root", root), ("--out", out)):
        if value is None:
            raise UserError(f"{option} is required for --dataset {dataset}.")
    config = PreprocessConfig(dataset=dataset, root=root, out=out, format=form, timesteps=timesteps, size=size,
                              bins=bins, window_us=window_us, split=split, workers=workers, skip_bad=skip_bad,
                              overwrite=overwrite)
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
