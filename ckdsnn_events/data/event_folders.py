"""Event datasets on disk: find the recordings, their labels and the train/test split.

A dataset here only knows its files. Three on-disk forms are recognised (the readers document how
each maps to the project's orientation/polarity convention):

- ``aedat4``: tonic's layout, ``ROOT/CIFAR10DVS/<class>/*.aedat4``;
- ``aedat``: the original release, ``ROOT/<class>/*.aedat`` (AER-DAT 2.0, DVS128);
- ``npz``: SpikingJelly's converted layout, ``ROOT/events_np/<class>/*.npz``.

``ROOT`` may also point straight at the folder holding the class folders. Files are sorted, the
class order is fixed per dataset, and the split is a pure function of the sorted file list.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ckdsnn_events.errors import UserError
from ckdsnn_events.events.aedat2 import read_aedat2
from ckdsnn_events.events.aedat4 import read_aedat4
from ckdsnn_events.events.npz import read_npz
from ckdsnn_events.events.types import DVS128_SENSOR_SIZE

CIFAR10DVS_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
DIGITS_CLASSES = tuple(str(d) for d in range(10))

EXTENSIONS = {"aedat": ".aedat", "aedat4": ".aedat4", "npz": ".npz"}
# When one root holds several forms (SpikingJelly keeps extract/ beside events_np/), the original
# recordings win, then SpikingJelly's lossless copy of them, then tonic's conversion.
FORM_PRIORITY = ("aedat", "npz", "aedat4")
_SUBFOLDERS = {"aedat": ("", "extract"), "npz": ("events_np", ""), "aedat4": ("CIFAR10DVS", "")}


def _read_aedat(path: Path, sensor_size: tuple[int, int, int]):
    if tuple(sensor_size[:2]) != DVS128_SENSOR_SIZE[:2]:
        raise UserError(f"{path}: .aedat files hold DVS128 (128x128) recordings, not {sensor_size[:2]}.")
    return read_aedat2(path)


READERS: dict[str, Callable] = {
    "aedat": _read_aedat,
    "aedat4": lambda path, sensor_size: read_aedat4(path, sensor_size),
    "npz": lambda path, sensor_size: read_npz(path, sensor_size),
}


@dataclass(frozen=True)
class EventDatasetSpec:
    """What a named event dataset looks like: its classes (None: the class folders found) and sensor."""

    name: str
    classes: tuple[str, ...] | None
    sensor_size: tuple[int, int, int] = DVS128_SENSOR_SIZE
    download_hint: str = ""


EVENT_DATASETS = {
    "cifar10dvs": EventDatasetSpec(
        "cifar10dvs",
        CIFAR10DVS_CLASSES,
        download_hint=(
            "Get it with tonic (tonic.datasets.CIFAR10DVS(save_to=ROOT) downloads the .aedat4 "
            "form), from the original release https://figshare.com/articles/dataset/"
            "CIFAR10-DVS_New/4724671 (unzip each class into ROOT/<class>/), or with SpikingJelly "
            "(spikingjelly.datasets.cifar10_dvs.CIFAR10DVS(ROOT, data_type='event'))."
        ),
    ),
    "digits-dvs": EventDatasetSpec(
        "digits-dvs",
        DIGITS_CLASSES,
        download_hint="Make it offline with: ckd-events simulate --out ROOT",
    ),
    "event-folder": EventDatasetSpec(
        "event-folder",
        None,
        download_hint="Make one from a folder of images with: ckd-events simulate --images DIR --out ROOT",
    ),
}


@dataclass(frozen=True)
class Recording:
    path: Path
    label: int
    relpath: str  # relative to the dataset folder, '/'-separated


@dataclass(frozen=True)
class EventFolder:
    """The recordings of one event dataset, sorted by class then file name."""

    folder: Path
    form: str
    classes: tuple[str, ...]
    sensor_size: tuple[int, int, int]
    recordings: tuple[Recording, ...]

    def __len__(self) -> int:
        return len(self.recordings)

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([r.label for r in self.recordings], dtype=np.int64)

    def read(self, index: int) -> np.ndarray:
        """Events (N,) of recording ``index``; raises UserError for a bad file."""
        return READERS[self.form](self.recordings[index].path, self.sensor_size)

    def fingerprint(self) -> str:
        """Hash of every file's relative path, size and first and last 4 KiB (fast, content-aware)."""
        digest = hashlib.sha256()
        digest.update(f"{self.form}|{','.join(self.classes)}".encode())
        for rec in self.recordings:
            try:
                size = rec.path.stat().st_size
                digest.update(f"|{rec.relpath}|{size}|".encode())
                with open(rec.path, "rb") as f:
                    digest.update(f.read(4096))
                    if size > 4096:
                        f.seek(max(4096, size - 4096))
                        digest.update(f.read())
            except OSError as err:  # a dangling link, a folder named x.aedat: its reader reports it
                digest.update(f"|{rec.relpath}|unreadable {err.errno}|".encode())
        return digest.hexdigest()


def _layout_help(spec: EventDatasetSpec, root: Path) -> str:
    classes = ", ".join(spec.classes) if spec.classes else "one folder per class"
    return (
        f"Expected one of these layouts under '{root}':\n"
        f"  {root}/CIFAR10DVS/<class>/*.aedat4   (tonic's layout)\n"
        f"  {root}/<class>/*.aedat              (the original AER-DAT 2.0 release)\n"
        f"  {root}/events_np/<class>/*.npz      (SpikingJelly's converted layout)\n"
        f"with <class> in: {classes}.\n{spec.download_hint}"
    )


def _class_dirs(folder: Path, classes: tuple[str, ...] | None) -> list[Path]:
    if not folder.is_dir():
        return []
    if classes is None:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [folder / c for c in classes if (folder / c).is_dir()]


def _count(folder: Path, classes, extension: str) -> int:
    return sum(
        1 for d in _class_dirs(folder, classes) for f in os.scandir(d) if f.name.endswith(extension)
    )


def find_event_folder(
    root: str | os.PathLike, dataset: str = "cifar10dvs", form: str = "auto"
) -> EventFolder:
    """Detect the on-disk form under ``root`` and list its recordings.

    Args:
        root: the dataset root (see the module docstring for the layouts).
        dataset: a key of ``EVENT_DATASETS``.
        form: ``"auto"`` or one of ``"aedat"``, ``"aedat4"``, ``"npz"`` to force a form.

    Raises:
        UserError: missing root, no recognised layout, missing or empty class folders.
    """
    spec = EVENT_DATASETS[dataset]
    root = Path(root)
    if not root.exists():
        raise UserError(f"--root '{root}' does not exist.\n{_layout_help(spec, root)}")
    if not root.is_dir():
        raise UserError(f"--root '{root}' is a file, not a directory.\n{_layout_help(spec, root)}")
    forms = FORM_PRIORITY if form == "auto" else (form,)
    found: list[tuple[str, Path]] = []
    for candidate_form in forms:
        for sub in _SUBFOLDERS[candidate_form]:
            folder = root / sub if sub else root
            if _count(folder, spec.classes, EXTENSIONS[candidate_form]):
                found.append((candidate_form, folder))
                break
    if not found:
        what = "recordings" if form == "auto" else f"'{EXTENSIONS[form]}' recordings (--format {form})"
        raise UserError(f"no {spec.name} {what} found under '{root}'.\n{_layout_help(spec, root)}")
    chosen_form, folder = found[0]
    extension = EXTENSIONS[chosen_form]
    classes = spec.classes or tuple(d.name for d in _class_dirs(folder, None))
    missing = [c for c in classes if not (folder / c).is_dir()]
    if missing:
        raise UserError(
            f"'{folder}' lacks the class folder(s) {', '.join(missing)}; the dataset is "
            f"incomplete. Re-download or re-extract it.\n{_layout_help(spec, root)}"
        )
    recordings = []
    for label, name in enumerate(classes):
        files = sorted(f.name for f in os.scandir(folder / name) if f.name.endswith(extension))
        if not files:
            raise UserError(
                f"class folder '{folder / name}' holds no {extension} files; the dataset is "
                "incomplete. Re-download or re-extract it."
            )
        recordings += [Recording(folder / name / f, label, f"{name}/{f}") for f in files]
    return EventFolder(folder, chosen_form, classes, spec.sensor_size, tuple(recordings))


def split_indices(labels: np.ndarray, train_fraction: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Per-class split by sorted index: the first ``floor(n_c * train_fraction)`` of class c train.

    Args:
        labels: int array (N,), recordings already in sorted order.

    Returns:
        ``(train_indices, test_indices)``, int64 arrays in ascending order.
    """
    if not 0 < train_fraction <= 1:
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
    labels = np.asarray(labels)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_train = int(len(idx) * train_fraction + 1e-9)
        train.append(idx[:n_train])
        test.append(idx[n_train:])
    cat = lambda parts: np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.empty(0, np.int64)
    return cat(train), cat(test)
