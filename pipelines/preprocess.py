"""Stage: event recordings -> HDF5 frame stores (``train.h5``, ``test.h5``).

Resumable: finished samples go to a progress log (see :mod:`ckdsnn_events.data.frame_store`);
re-running the same command continues where an interrupted run stopped, and does nothing when the
stores are up to date. A store made with a different config is never overwritten silently.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ckdsnn_events.atomic import atomic_path, ensure_writable_dir, remove_stale_temps
from ckdsnn_events.data.event_datasets import COMPRESSIONS, EVENT_DATASETS
from ckdsnn_events.data.event_folders import EventFolder
from ckdsnn_events.data.event_sources import default_timesteps, frame_size, open_event_source, resolve_protocol
from ckdsnn_events.data.frame_store import (
    DEFAULT_COMPRESSION,
    STATUS_BAD,
    STATUS_DONE,
    ProgressLog,
    assemble_store,
    encode_chunk,
    read_store_attrs,
)
from ckdsnn_events.data.splits import split_by_protocol
from ckdsnn_events.data.store_check import bad_samples
from ckdsnn_events.errors import Interrupted, UserError
from ckdsnn_events.events.framing import BIN_MODES, to_count_frames
from ckdsnn_events.limits import check_fits, format_bytes
from ckdsnn_events.workers import worker_results

SPLITS = ("train", "test")


@dataclass(frozen=True)
class PreprocessConfig:
    """Options of ``ckd-events preprocess`` (see its ``--help``)."""

    dataset: str = "cifar10dvs"
    root: str = "data/cifar10dvs"
    out: str = "data/cifar10dvs-frames"
    format: str = "auto"
    timesteps: int | None = None  # None: the dataset's default (10 for CIFAR10-DVS)
    size: int | tuple[int, int] | None = None  # N (square, or the longer side of a non-square sensor), (W, H)
    bins: str = "count"
    window_us: int | None = None
    split: float = 0.9
    workers: int = min(4, os.cpu_count() or 1)
    skip_bad: bool = False
    overwrite: bool = False
    split_protocol: str | None = None  # None: official where the dataset has one, else ratio:<split>
    compression: str = DEFAULT_COMPRESSION
    download: bool = False

    def validate(self) -> None:
        if self.dataset not in EVENT_DATASETS:
            raise UserError(f"--dataset '{self.dataset}' is not an event dataset; choose one of {', '.join(EVENT_DATASETS)}.")
        if self.timesteps is not None and self.timesteps < 1:
            raise UserError(f"--timesteps must be at least 1, got {self.timesteps}.")
        sizes = () if self.size is None else (self.size,) if isinstance(self.size, int) else tuple(self.size)
        if any(s < 1 for s in sizes):
            raise UserError(f"--size must be at least 1 pixel, got {self.size}.")
        if self.compression not in COMPRESSIONS:
            raise UserError(f"--compression must be one of {', '.join(COMPRESSIONS)}, got '{self.compression}'.")
        if self.bins not in BIN_MODES:
            raise UserError(f"--bins must be one of {', '.join(BIN_MODES)}, got '{self.bins}'.")
        if self.bins == "window" and (self.window_us is None or self.window_us <= 0):
            raise UserError("--bins window needs --window-us with a positive window length in microseconds.")
        if not 0 < self.split <= 1:
            raise UserError(f"--split is the training fraction per class, in (0, 1]; got {self.split}.")
        if self.workers < 0:
            raise UserError(f"--workers must be >= 0 (0: work in this process), got {self.workers}.")
        if self.format not in ("auto", "aedat", "aedat4", "npz"):
            raise UserError(f"--format must be auto, aedat, aedat4 or npz; got '{self.format}'.")


def _check_frame_size(shape: tuple[int, ...], config: PreprocessConfig) -> None:
    """One sample is one HDF5 chunk (< 4 GiB); framing holds ~8 bytes per frame cell per worker."""
    cells, workers = math.prod(shape), config.workers
    size = config.size if isinstance(config.size, int) else f"{shape[3]}x{shape[2]}"
    what = f"-T {shape[0]} with --size {size}"
    if cells * 2 >= 2**32:
        raise UserError(f"{what} makes {format_bytes(cells * 2)} frames per sample, more than an HDF5 chunk holds "
                        "(4 GiB); use fewer time steps or a smaller --size.")
    check_fits(cells * 8 * max(1, workers), what, "Use fewer time steps, a smaller --size or fewer --workers.")


@dataclass
class SplitResult:
    path: str
    samples: int
    status: str  # "written" or "up to date"
    skipped: list[dict] = field(default_factory=list)


@dataclass
class PreprocessResult:
    form: str
    folder: str
    splits: dict[str, SplitResult]
    recordings_done: int = 0
    wall_s: float = 0.0
    decode_s: float = 0.0
    frame_s: float = 0.0
    encode_s: float = 0.0
    write_s: float = 0.0
    protocol: str = ""

    @property
    def samples_per_s(self) -> float:
        return self.recordings_done / self.wall_s if self.wall_s > 0 else 0.0


def framing_config(config: PreprocessConfig, folder: EventFolder, split: str, protocol: str,
                   size: tuple[int, int], timesteps: int) -> dict:
    """Everything that determines a store's content, apart from the source files themselves.

    ``size`` is the frames' (H, W); ``protocol`` the split protocol's text.
    """
    return {
        "dataset": config.dataset,
        "form": folder.form,
        "classes": list(folder.classes),
        "sensor_size": list(folder.sensor_size),
        "timesteps": timesteps,
        "size": list(size),
        "bins": config.bins,
        "window_us": config.window_us,
        "split_protocol": protocol,
        "split": split,
        "skip_bad": config.skip_bad,
        "compression": config.compression,
    }


# --- worker side -------------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(folder: EventFolder, size: tuple[int, int], timesteps: int, bins: str, window_us,
                 compression: str = DEFAULT_COMPRESSION) -> None:
    _WORKER.update(folder=folder, size=size, timesteps=timesteps, bins=bins, window_us=window_us,
                   compression=compression)


def _process(index: int):
    """Read, frame and compress one recording. Returns (index, status, n_events, payload, times)."""
    w = _WORKER
    t0 = time.perf_counter()
    try:
        events = w["folder"].read(index)
    except UserError as err:
        return index, STATUS_BAD, 0, str(err).encode("utf-8"), (time.perf_counter() - t0, 0.0, 0.0)
    t1 = time.perf_counter()
    frames = to_count_frames(
        events, w["folder"].sensor_size, w["size"], w["timesteps"], w["bins"], w["window_us"]
    )
    t2 = time.perf_counter()
    payload = encode_chunk(frames, w["compression"])
    t3 = time.perf_counter()
    return index, STATUS_DONE, len(events), payload, (t1 - t0, t2 - t1, t3 - t2)


# --- main side ---------------------------------------------------------------------------------


def _describe_difference(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(diffs) or "the source files changed"


def run_preprocess(config: PreprocessConfig, progress: bool = True) -> PreprocessResult:
    """Frame every recording of ``config.root`` into ``config.out/{train,test}.h5``."""
    config.validate()
    t_start = time.perf_counter()
    protocol = resolve_protocol(config.dataset, config.split_protocol, config.split)
    folder = open_event_source(config.root, config.dataset, config.format, config.download)
    size, timesteps = frame_size(config.dataset, folder.sensor_size, config.size), config.timesteps
    timesteps = timesteps if timesteps is not None else default_timesteps(config.dataset)
    out = ensure_writable_dir(config.out, "--out directory")
    fingerprint = folder.fingerprint()
    labels = folder.labels
    split_idx = dict(zip(SPLITS, split_by_protocol(protocol, labels, [r.relpath for r in folder.recordings],
                                                   getattr(folder, "official", None), config.dataset)))
    if len(split_idx["train"]) == 0:
        option = f"--split {config.split}" if config.split_protocol is None else f"--split-protocol {protocol}"
        raise UserError(f"{option} leaves no training recording in any class ({len(labels)} recordings in "
                        f"{len(folder.classes)} classes); use a larger training fraction.")
    remove_stale_temps(out, [f"{split}.h5" for split in SPLITS] + [".preprocess.partial.json"])
    result = PreprocessResult(folder.form, str(folder.folder), {}, protocol=str(protocol))
    shape = (timesteps, 2, *size)
    _check_frame_size(shape, config)

    todo: dict[str, dict] = {}
    for split in SPLITS:
        if len(split_idx[split]) == 0:
            continue
        path = out / f"{split}.h5"
        attrs = {"config": framing_config(config, folder, split, str(protocol), size, timesteps),
                 "fingerprint": fingerprint, "classes": list(folder.classes), "split_protocol": str(protocol),
                 "source_root": str(Path(config.root).resolve())}
        if path.exists():
            state, old = _existing_store(path, attrs, config.overwrite)
            if state == "up to date":
                result.splits[split] = SplitResult(str(path), len(split_idx[split]) - len(old.get("skipped", [])),
                                                   "up to date", old.get("skipped", []))
                continue
            if state == "different":
                raise UserError(
                    f"'{path}' already holds frames made with a different config or source "
                    f"({_describe_difference(old.get('config', {}), attrs['config'])}). "
                    "Choose another --out, or pass --overwrite to replace it."
                )
        todo[split] = {"path": path, "attrs": attrs}
    if not todo:
        result.wall_s = time.perf_counter() - t_start
        return result

    # one progress log for the run, valid only for exactly this config and these sources
    log_path = out / ".preprocess.partial.log"
    key_path = out / ".preprocess.partial.json"
    run_key = _run_key(todo)
    if key_path.exists() and key_path.read_text() != run_key or (log_path.exists() and not key_path.exists()):
        if not _keep_partial_run(key_path, log_path, todo, config.overwrite):
            log_path.unlink(missing_ok=True)
    with atomic_path(key_path) as tmp:
        tmp.write_text(run_key)
    log = ProgressLog(log_path)
    try:
        needed = sorted(int(i) for split in todo for i in split_idx[split])
        pending = [i for i in needed if i not in log.records]
        _run_workers(config, folder, (size, timesteps), pending, log, len(needed), result, progress)
        t_write = time.perf_counter()
        for split, job in todo.items():
            n = assemble_store(job["path"], log, split_idx[split], labels,
                               [r.relpath for r in folder.recordings], shape, job["attrs"], config.compression)
            skipped = [{"file": folder.recordings[i].relpath,
                        "error": log.read_payload(i).decode("utf-8", errors="replace")}
                       for i in split_idx[split] if log.records[i].status == STATUS_BAD]
            result.splits[split] = SplitResult(str(job["path"]), n, "written", skipped)
        result.write_s += time.perf_counter() - t_write
    finally:
        log.close()
    log_path.unlink(missing_ok=True)
    key_path.unlink(missing_ok=True)
    result.wall_s = time.perf_counter() - t_start
    return result


def _existing_store(path, attrs: dict, overwrite: bool) -> tuple[str, dict]:
    """``("up to date" | "rebuild" | "different", old attrs)`` for the store already at ``path``.

    A store with this config and these sources is up to date only if its structure and every
    sample's checksum are intact; a damaged one is rebuilt (it is known how). One that cannot be
    opened is replaced with ``overwrite``; without it the error says how to rebuild it.
    """
    try:
        old = read_store_attrs(path)
    except UserError:
        if overwrite:
            return "rebuild", {}
        raise
    if old.get("config") != attrs["config"] or old.get("fingerprint") != attrs["fingerprint"]:
        return ("rebuild" if overwrite else "different"), old
    if overwrite or bad_samples(path):
        return "rebuild", old
    return "up to date", old


def _run_key(todo: dict) -> str:
    import json

    return json.dumps({s: j["attrs"] for s, j in sorted(todo.items())}, sort_keys=True)


def _keep_partial_run(key_path, log_path, todo: dict, overwrite: bool) -> bool:
    """Whether the progress log left by an interrupted run may be resumed by this one.

    Same options and sources: resume (adding --skip-bad changes no finished frame, since a run
    without it stops before logging a bad one). Same options, changed source files: start again,
    the finished frames would not match the files. Other options: UserError unless --overwrite,
    so that the earlier work is kept.
    """
    import json

    if not key_path.exists() or not log_path.exists():
        return False
    try:
        old = json.loads(key_path.read_text())
    except (OSError, ValueError):
        return False
    new = json.loads(_run_key(todo))
    strip = lambda a: {k: v for k, v in a.get("config", {}).items() if k != "skip_bad"}
    old_configs = {s: strip(a) for s, a in old.items()}
    new_configs = {s: strip(a) for s, a in new.items()}
    if old_configs == new_configs:
        return all(old[s].get("fingerprint") == a.get("fingerprint") for s, a in new.items() if s in old)
    if overwrite or log_path.stat().st_size == 0:
        return False
    split = next(iter(new_configs))
    diff = _describe_difference(old_configs.get(split, next(iter(old_configs.values()), {})), new_configs[split])
    raise UserError(
        f"'{log_path.parent}' holds the progress of an interrupted preprocess run with other options ({diff}). "
        "Re-run with those options to resume it, choose another --out, or pass --overwrite to discard it."
    )


def _run_workers(config, folder, frame, pending, log, total, result, progress) -> None:
    init_args = (folder, *frame, config.bins, config.window_us, config.compression)
    bar = tqdm(total=total, initial=total - len(pending), unit="rec", desc="preprocess",
               disable=not progress, dynamic_ncols=True)
    n_bad = 0
    try:
        with worker_results(_process, pending, config.workers, _init_worker, init_args) as results:
            for index, status, n_events, payload, (t_dec, t_frame, t_enc) in results:
                if status == STATUS_BAD and not config.skip_bad:
                    raise UserError(payload.decode("utf-8") + " (or pass --skip-bad to leave bad recordings out)")
                t0 = time.perf_counter()
                log.append(index, status, n_events, payload)
                result.write_s += time.perf_counter() - t0
                result.decode_s += t_dec
                result.frame_s += t_frame
                result.encode_s += t_enc
                result.recordings_done += 1
                n_bad += status == STATUS_BAD
                if n_bad:
                    bar.set_postfix(bad=n_bad, refresh=False)
                bar.update(1)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted after {len(log.records)} of {total} recordings; the progress is kept in "
            f"'{log.path}'. Run the same command again to resume."
        ) from None
    finally:
        bar.close()


def check_static_dataset(dataset: str, root: str | None):
    """Load an image dataset's description (counts, classes, shapes): raises UserError if it is not there."""
    from ckdsnn_events.data.loaders import DataConfig, build_loaders

    config = DataConfig(dataset=dataset, root=root, workers=0)
    config.validate()
    return build_loaders(config)[3]
