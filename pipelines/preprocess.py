"""Stage: event recordings -> HDF5 frame stores (``train.h5``, ``test.h5``).

Resumable: finished samples go to a progress log (see :mod:`ckdsnn_events.data.frame_store`);
re-running the same command continues where an interrupted run stopped, and does nothing when the
stores are up to date. A store made with a different config is never overwritten silently.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ckdsnn_events.atomic import atomic_path, ensure_writable_dir, remove_stale_temps
from ckdsnn_events.data.event_folders import EVENT_DATASETS, EventFolder, find_event_folder, split_indices
from ckdsnn_events.data.frame_store import (
    STATUS_BAD,
    STATUS_DONE,
    ProgressLog,
    assemble_store,
    encode_chunk,
    read_store_attrs,
)
from ckdsnn_events.data.store_check import bad_samples
from ckdsnn_events.errors import Interrupted, UserError
from ckdsnn_events.events.framing import BIN_MODES, to_count_frames
from ckdsnn_events.limits import check_fits, format_bytes

SPLITS = ("train", "test")


@dataclass(frozen=True)
class PreprocessConfig:
    """Options of ``ckd-events preprocess`` (see its ``--help``)."""

    dataset: str = "cifar10dvs"
    root: str = "data/cifar10dvs"
    out: str = "data/cifar10dvs-frames"
    format: str = "auto"
    timesteps: int = 10
    size: int = 48
    bins: str = "count"
    window_us: int | None = None
    split: float = 0.9
    workers: int = min(4, os.cpu_count() or 1)
    skip_bad: bool = False
    overwrite: bool = False

    def validate(self) -> None:
        if self.dataset not in EVENT_DATASETS:
            raise UserError(f"--dataset '{self.dataset}' is not an event dataset; choose one of {', '.join(EVENT_DATASETS)}.")
        if self.timesteps < 1:
            raise UserError(f"--timesteps must be at least 1, got {self.timesteps}.")
        if self.size < 1:
            raise UserError(f"--size must be at least 1 pixel, got {self.size}.")
        if self.bins not in BIN_MODES:
            raise UserError(f"--bins must be one of {', '.join(BIN_MODES)}, got '{self.bins}'.")
        if self.bins == "window" and (self.window_us is None or self.window_us <= 0):
            raise UserError("--bins window needs --window-us with a positive window length in microseconds.")
        if not 0 < self.split <= 1:
            raise UserError(f"--split is the training fraction per class, in (0, 1]; got {self.split}.")
        if self.workers < 0:
            raise UserError(f"--workers must be >= 0 (0: work in this process), got {self.workers}.")
        # one sample is one HDF5 chunk (< 4 GiB); framing holds ~8 bytes per frame cell per worker
        cells = self.timesteps * 2 * self.size * self.size
        if cells * 2 >= 2**32:
            raise UserError(f"-T {self.timesteps} with --size {self.size} makes {format_bytes(cells * 2)} frames per "
                            "sample, more than an HDF5 chunk holds (4 GiB); use fewer time steps or a smaller --size.")
        check_fits(cells * 8 * max(1, self.workers), f"-T {self.timesteps} with --size {self.size}",
                   "Use fewer time steps, a smaller --size or fewer --workers.")
        if self.format not in ("auto", "aedat", "aedat4", "npz"):
            raise UserError(f"--format must be auto, aedat, aedat4 or npz; got '{self.format}'.")


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

    @property
    def samples_per_s(self) -> float:
        return self.recordings_done / self.wall_s if self.wall_s > 0 else 0.0


def framing_config(config: PreprocessConfig, folder: EventFolder, split: str) -> dict:
    """Everything that determines a store's content, apart from the source files themselves."""
    return {
        "dataset": config.dataset,
        "form": folder.form,
        "classes": list(folder.classes),
        "sensor_size": list(folder.sensor_size),
        "timesteps": config.timesteps,
        "size": [config.size, config.size],
        "bins": config.bins,
        "window_us": config.window_us,
        "train_fraction": config.split,
        "split": split,
        "skip_bad": config.skip_bad,
    }


# --- worker side -------------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(folder: EventFolder, size: int, timesteps: int, bins: str, window_us) -> None:
    _WORKER.update(folder=folder, size=size, timesteps=timesteps, bins=bins, window_us=window_us)


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
        events, w["folder"].sensor_size, (w["size"], w["size"]), w["timesteps"], w["bins"], w["window_us"]
    )
    t2 = time.perf_counter()
    payload = encode_chunk(frames)
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
    folder = find_event_folder(config.root, config.dataset, config.format)
    out = ensure_writable_dir(config.out, "--out directory")
    fingerprint = folder.fingerprint()
    labels = folder.labels
    split_idx = dict(zip(SPLITS, split_indices(labels, config.split)))
    if len(split_idx["train"]) == 0:
        raise UserError(f"--split {config.split} leaves no training recording in any class ({len(labels)} recordings "
                        f"in {len(folder.classes)} classes); use a larger --split.")
    remove_stale_temps(out, [f"{split}.h5" for split in SPLITS] + [".preprocess.partial.json"])
    result = PreprocessResult(folder.form, str(folder.folder), {})

    todo: dict[str, dict] = {}
    for split in SPLITS:
        if len(split_idx[split]) == 0:
            continue
        path = out / f"{split}.h5"
        attrs = {"config": framing_config(config, folder, split), "fingerprint": fingerprint,
                 "classes": list(folder.classes), "source_root": str(Path(config.root).resolve())}
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
        log_path.unlink(missing_ok=True)
    with atomic_path(key_path) as tmp:
        tmp.write_text(run_key)
    log = ProgressLog(log_path)
    try:
        needed = sorted(int(i) for split in todo for i in split_idx[split])
        pending = [i for i in needed if i not in log.records]
        _run_workers(config, folder, pending, log, len(needed), result, progress)
        t_write = time.perf_counter()
        for split, job in todo.items():
            n = assemble_store(job["path"], log, split_idx[split], labels,
                               [r.relpath for r in folder.recordings], _frame_shape(config), job["attrs"])
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


def _frame_shape(config: PreprocessConfig) -> tuple[int, int, int, int]:
    return (config.timesteps, 2, config.size, config.size)


def _run_workers(config, folder, pending, log, total, result, progress) -> None:
    init_args = (folder, config.size, config.timesteps, config.bins, config.window_us)
    bar = tqdm(total=total, initial=total - len(pending), unit="rec", desc="preprocess",
               disable=not progress, dynamic_ncols=True)
    pool = None
    try:
        if config.workers <= 1 or len(pending) < 2:
            _init_worker(*init_args)
            results = map(_process, pending)
        else:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            pool = multiprocessing.get_context(method).Pool(config.workers, _init_worker, init_args)
            results = pool.imap_unordered(_process, pending, chunksize=4)
        n_bad = 0
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
        if pool is not None:
            pool.terminate()
            pool.join()


def check_static_dataset(dataset: str, root: str | None):
    """Load an image dataset's description (counts, classes, shapes): raises UserError if it is not there."""
    from ckdsnn_events.data.loaders import DataConfig, build_loaders

    config = DataConfig(dataset=dataset, root=root, workers=0)
    config.validate()
    return build_loaders(config)[3]
