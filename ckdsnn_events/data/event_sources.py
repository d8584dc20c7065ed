"""One entry point for every event dataset: open its recordings, resolve its frame size, T and split protocol."""

from __future__ import annotations

import os

from ckdsnn_events.data.event_datasets import EVENT_DATASETS, OFFICIAL_SPLITS, TONIC_DATASETS, default_protocol
from ckdsnn_events.data.event_folders import EventFolder, find_event_folder
from ckdsnn_events.data.splits import SplitProtocol, parse_protocol
from ckdsnn_events.errors import UserError

FOLDER_DEFAULT_SIZE = 48  # CIFAR10-DVS at 48x48, the paper's protocol
FOLDER_DEFAULT_TIMESTEPS = 10


def open_event_source(root: str | os.PathLike, dataset: str, form: str = "auto", download: bool = False) -> EventFolder:
    """The recordings of ``dataset`` under ``root`` (tonic's datasets through tonic's classes).

    Raises:
        UserError: an unknown dataset, a missing or incomplete root, ``--download`` where it does not apply.
    """
    if dataset not in EVENT_DATASETS:
        raise UserError(f"--dataset '{dataset}' is not an event dataset; choose one of {', '.join(EVENT_DATASETS)}.")
    if dataset in TONIC_DATASETS:
        if form != "auto":
            raise UserError(f"--format applies to CIFAR10-DVS's forms; {dataset} is read by tonic (leave --format out).")
        from ckdsnn_events.data.tonic_datasets import find_tonic_dataset

        return find_tonic_dataset(root, dataset, download)
    if download:
        raise UserError(f"--download fetches tonic's datasets ({', '.join(TONIC_DATASETS)}); {dataset} has to be "
                        "put under --root by hand (see --help).")
    return find_event_folder(root, dataset, form)


def default_timesteps(dataset: str) -> int:
    """T used when --timesteps is not given (the literature's setting, see each dataset's recipe)."""
    if dataset in TONIC_DATASETS:
        from ckdsnn_events.data.tonic_datasets import tonic_spec

        return tonic_spec(dataset).default_timesteps
    return FOLDER_DEFAULT_TIMESTEPS


def frame_size(dataset: str, sensor_size, size: int | tuple[int, int] | None) -> tuple[int, int]:
    """The frames' (H, W) from ``--size``.

    ``None``: the dataset's default. ``N``: an N x N frame on a square sensor; on a non-square one the
    longer side becomes N and the other keeps the aspect ratio (rounded, at least 1). ``(W, H)``:
    exactly that (the aspect changes as asked). Frames never exceed the sensor: ``--size`` only
    downsamples.

    Raises:
        UserError: a size larger than the sensor on either axis.
    """
    width_in, height_in = int(sensor_size[0]), int(sensor_size[1])
    if size is None:
        if dataset in TONIC_DATASETS:
            from ckdsnn_events.data.tonic_datasets import tonic_spec

            width, height = tonic_spec(dataset).default_size
            return height, width
        size = FOLDER_DEFAULT_SIZE
    if isinstance(size, int):
        longer = max(width_in, height_in)
        width = max(1, round(width_in * size / longer))
        height = max(1, round(height_in * size / longer))
    else:
        width, height = (int(v) for v in size)
    if width > width_in or height > height_in:
        raise UserError(f"--size {size} asks for {width}x{height} frames from the {width_in}x{height_in} sensor of "
                        f"{dataset}; --size only downsamples. Use at most {max(width_in, height_in)}.")
    return height, width


def resolve_protocol(dataset: str, text: str | None, train_fraction: float = 0.9) -> SplitProtocol:
    """The split protocol of a preprocess run (``text`` None: the dataset's default).

    Raises:
        UserError: an unknown or malformed protocol, or one that does not exist for ``dataset``.
    """
    if text is None:
        if dataset not in OFFICIAL_SPLITS and train_fraction == 1:
            return SplitProtocol("ratio", 1.0)  # --split 1: every file trains (no test store)
        text = default_protocol(dataset, train_fraction)
    protocol = parse_protocol(text)
    if protocol.kind == "official" and dataset not in OFFICIAL_SPLITS:
        raise UserError(f"--split-protocol official: {dataset} has no official train/test split; use ratio:F or "
                        f"random:F:SEED (official exists for {', '.join(OFFICIAL_SPLITS)}).")
    if protocol.kind == "tebn" and dataset != "cifar10dvs":
        raise UserError(f"--split-protocol tebn is CIFAR10-DVS's split (SpikingJelly's CIFAR10DVSTEBNSplit); it does "
                        f"not exist for {dataset}. Use ratio:F or random:F:SEED"
                        + (", or official." if dataset in OFFICIAL_SPLITS else "."))
    return protocol
