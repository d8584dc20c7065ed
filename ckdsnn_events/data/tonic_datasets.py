"""tonic's event-vision datasets, listed and read by tonic's own classes, offline first.

Each dataset is ``tonic.datasets.<Class>``: its on-disk layout under ``ROOT/<Class>/``, its
archive names and md5 sums, its sensor size, its official train/test split where it has one, and
its ``__getitem__`` (the reader and whatever it does to the events: N-Caltech101's offset to the
origin, ASL-DVS's y flip, DVS-Gesture's ms -> us). Events come out in tonic's orientation for that
dataset, as ``EVENT_DTYPE``.

Offline first: tonic's classes download whenever their own check fails (archive absent, fewer files
than a full release); here nothing is downloaded unless ``download=True``. Without it, an extracted
folder is used as it is; an archive without its folder is checked against tonic's md5 and
extracted with tonic's ``extract_archive``; anything else is one :class:`UserError` naming the
files expected, where they go and the md5 tonic knows.

Listing order: by label, then relative path, lexicographic (see :mod:`ckdsnn_events.data.splits`).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.lib.recfunctions  # noqa: F401  tonic's DVSGesture/POKERDVS readers call np.lib.recfunctions

from ckdsnn_events.data.event_datasets import TONIC_DATASETS
from ckdsnn_events.data.event_folders import EventFolder, Recording
from ckdsnn_events.errors import UserError
from ckdsnn_events.events.types import check_events, make_events


@dataclass(frozen=True)
class Part:
    """One archive of a release: ``split`` is ``"train"``/``"test"`` (official split) or ``"all"``."""

    split: str
    filename: str
    md5: str
    folder: str  # the folder the archive extracts to, relative to ROOT/<Class>/ ("" = that folder)
    url: str = ""


@dataclass(frozen=True)
class TonicSpec:
    """How one tonic dataset lies on disk and is framed by default (``source``: where the defaults come from)."""

    name: str
    tonic_class: str
    parts: tuple[Part, ...]
    extension: str
    sensor_size: tuple[int, int, int]
    class_folders: tuple[str, ...] | None  # folder names per label; None: labels not from folders / any folders
    default_size: tuple[int, int]  # (W, H) of the frames
    default_timesteps: int
    source: str
    absent_classes: tuple[str, ...] = ()  # labels tonic knows that the release never uses

    @property
    def has_official_split(self) -> bool:
        return any(p.split != "all" for p in self.parts)


def _tonic(name: str):
    return getattr(importlib.import_module("tonic.datasets"), name)


def _spec(name: str) -> TonicSpec:
    """Build the spec from tonic's class attributes (file names, md5s, sensor, classes)."""
    if name == "dvsgesture":
        c = _tonic("DVSGesture")
        parts = (Part("train", c.train_filename, c.train_md5, "ibmGestureTrain", c.train_url),
                 Part("test", c.test_filename, c.test_md5, "ibmGestureTest", c.test_url))
        return TonicSpec(name, "DVSGesture", parts, ".npy", tuple(c.sensor_size), None, (128, 128), 16,
                         "Fang et al., SEW-ResNet (NeurIPS 2021): DVS128 Gesture at 128x128, T=16, "
                         "frames of equal event count (SpikingJelly split_by='number'), official split")
    if name == "nmnist":
        c = _tonic("NMNIST")
        parts = (Part("train", c.train_filename, c.train_md5, c.train_folder, c.train_url),
                 Part("test", c.test_filename, c.test_md5, c.test_folder, c.test_url))
        return TonicSpec(name, "NMNIST", parts, ".bin", tuple(c.sensor_size), tuple(str(d) for d in range(10)),
                         (34, 34), 10, "Fang et al., PLIF (ICCV 2021): N-MNIST at the full 34x34, T=10, "
                         "frames of equal event count, official 60k/10k split")
    if name == "ncaltech101":
        c = _tonic("NCALTECH101")
        parts = (Part("all", c.filename, c.file_md5, c.folder_name, c.url),)
        # tonic gives no sensor size (it moves every recording to the origin); SpikingJelly frames
        # N-Caltech101 on 240 x 180 (NCaltech101.get_H_W), which holds every recording after that shift
        return TonicSpec(name, "NCALTECH101", parts, ".bin", (240, 180, 2), None, (48, 48), 10,
                         "Li et al., NDA (ECCV 2022): N-Caltech101 resized to 48x48, T=10, 9:1 split per class")
    if name == "asldvs":
        c = _tonic("ASLDVS")
        parts = (Part("all", c.filename, c.file_md5, c.folder_name, c.url),)
        return TonicSpec(name, "ASLDVS", parts, ".mat", tuple(c.sensor_size), tuple(c.classes), (60, 45), 10,
                         "split 80/20 per class as Bi et al. (ICCV 2019); no frame size or T is standard "
                         "for SNNs on ASL-DVS: we use a quarter of the 240x180 sensor per axis and T=10",
                         absent_classes=("j", "z"))  # 24 static hand shapes: J and Z need motion
    if name == "pokerdvs":
        c = _tonic("POKERDVS")
        parts = (Part("train", c.train_filename, c.train_md5, "pips_train"),
                 Part("test", c.test_filename, c.test_md5, "pips_test"))
        return TonicSpec(name, "POKERDVS", parts, ".npy", tuple(c.sensor_size), tuple(c.classes), (35, 35), 10,
                         "the full 35x35 sensor and tonic's official train/test split; T=10 is our choice "
                         "(no widely used setting)")
    raise KeyError(name)


TONIC_SPECS: dict[str, TonicSpec] = {}


def tonic_spec(name: str) -> TonicSpec:
    """The spec of a dataset in ``TONIC_DATASETS`` (built once from tonic's class attributes)."""
    if name not in TONIC_SPECS:
        TONIC_SPECS[name] = _spec(name)
    return TONIC_SPECS[name]


# --- offline checks ------------------------------------------------------------------------------


def _location(spec: TonicSpec, root: Path) -> Path:
    """``ROOT/<Class>`` (tonic's ``save_to`` layout), or ROOT itself when it already is that folder."""
    nested = root / spec.tonic_class
    if nested.is_dir() or root.name != spec.tonic_class:
        return nested
    return root


def _has_files(folder: Path, extension: str) -> bool:
    return folder.is_dir() and next(folder.rglob(f"*{extension}"), None) is not None


def _expected(spec: TonicSpec, location: Path) -> str:
    lines = []
    for part in spec.parts:
        target = location / part.folder if part.folder else location
        inner = f"<class>/*{spec.extension}" if spec.name != "dvsgesture" else "user<NN>_<lighting>/<label>.npy"
        where = f"from {part.url}" if part.url else "(not downloadable: get it from the dataset's authors)"
        lines.append(f"  {target}/{inner}: extract {part.filename} (md5 {part.md5}, {where}) "
                     f"into {location}/")
    return "\n".join(lines)


def _looks_like(root: Path, own: str) -> str:
    for other in TONIC_DATASETS:
        if other != own and (root / tonic_spec(other).tonic_class).is_dir():
            return f" '{root}' holds a {tonic_spec(other).tonic_class} folder: is it --dataset {other}?"
    return ""


def _check_md5(spec: TonicSpec, part: Part, archive: Path) -> None:
    from tonic.download_utils import calculate_md5

    actual = calculate_md5(str(archive))
    if actual != part.md5:
        raise UserError(f"{archive}: checksum mismatch: md5 {actual}, tonic's {spec.tonic_class} expects "
                        f"{part.md5}. The archive is incomplete or another file; download it again"
                        + (f" from {part.url}" if part.url else "") + " (or pass --download).")


def ensure_extracted(spec: TonicSpec, root: Path) -> Path:
    """Check every part is there, extracting archives that are present but not yet extracted.

    Returns the dataset folder (``ROOT/<Class>``). Raises UserError for anything missing or a
    checksum mismatch; downloads nothing.
    """
    from tonic.download_utils import extract_archive

    location = _location(spec, root)
    missing = []
    for part in spec.parts:
        folder = location / part.folder if part.folder else location
        if _has_files(folder, spec.extension):
            continue
        archive = location / part.filename
        if archive.is_file():
            _check_md5(spec, part, archive)
            try:
                extract_archive(str(archive), str(location))
                if not _has_files(folder, spec.extension):  # archives in the archive (ASL-DVS's Yin*.zip)
                    for inner in sorted(location.glob("*.zip")):
                        if inner.name != part.filename:
                            extract_archive(str(inner))
            except Exception as err:  # tonic/tarfile/zipfile raise many kinds for a damaged archive
                raise UserError(f"{archive}: cannot be extracted ({type(err).__name__}: {err}).") from None
            if _has_files(folder, spec.extension):
                continue
        missing.append(part)
    if missing:
        names = ", ".join(p.filename for p in missing)
        raise UserError(
            f"--root '{root}': {spec.name} is missing or incomplete ({names} not found, nor what they "
            f"extract to). Expected tonic's layout:\n{_expected(spec, location)}\n"
            f"Nothing is downloaded without --download.{_looks_like(root, spec.name)}"
        )
    return location


def download(spec: TonicSpec, root: Path) -> None:
    """Let tonic fetch and extract the dataset into ``ROOT/<Class>`` (only with ``--download``)."""
    cls = _tonic(spec.tonic_class)
    for part in spec.parts:
        kwargs = {"train": part.split == "train"} if spec.has_official_split else {}
        try:
            cls(save_to=str(root), **kwargs)
        except Exception as err:  # network, host and archive errors of every kind
            raise UserError(f"--download: tonic could not fetch {part.filename} into '{root}' "
                            f"({type(err).__name__}: {err}). Fetch it by hand:\n{_expected(spec, _location(spec, root))}") from None


# --- listing and reading -------------------------------------------------------------------------


def _offline_class(spec: TonicSpec):
    """tonic's class with its download and its existence check switched off (done above instead)."""
    base = _tonic(spec.tonic_class)

    def refuse(self):
        raise UserError(f"{spec.name}: refusing to download without --download.")

    return type(base.__name__, (base,), {"_check_exists": lambda self: True, "download": refuse})


def _tonic_listing(spec: TonicSpec, root: Path, part: Part) -> list[tuple[str, object]]:
    """(path, tonic's target) for each file of one part, as tonic's class lists them."""
    if spec.name == "pokerdvs":
        # tonic's POKERDVS loads every array in __init__ (a bad file would stop the listing): list as it does,
        # label = tonic's int_classes[last two characters of the folder]
        folder = _location(spec, root) / part.folder
        cls = _tonic("POKERDVS")
        return [(str(p), cls.int_classes[p.parent.name[-2:]]) for p in folder.rglob(f"*{spec.extension}")
                if p.parent.name[-2:] in cls.int_classes]
    kwargs = {"train": part.split == "train"} if spec.has_official_split else {}
    try:
        dataset = _offline_class(spec)(save_to=str(root.parent if _location(spec, root) == root else root), **kwargs)
    except (ValueError, KeyError, IndexError) as err:
        raise UserError(f"--root '{root}': tonic's {spec.tonic_class} cannot list it ({type(err).__name__}: {err}); "
                        f"the folder does not have {spec.name}'s layout:\n{_expected(spec, _location(spec, root))}") from None
    return list(zip(dataset.data, dataset.targets))


@dataclass(frozen=True)
class TonicFolder(EventFolder):
    """An :class:`EventFolder` read through tonic; ``official`` is each recording's split or None."""

    dataset: str = ""
    official: tuple[str, ...] | None = None

    def read(self, index: int) -> np.ndarray:
        return read_recording(self.dataset, self.recordings[index])


def _check_classes(spec: TonicSpec, location: Path, part: Part, labels: set[int], n_classes: int) -> None:
    absent = {spec.class_folders.index(c) for c in spec.absent_classes} if spec.class_folders else set()
    lacking = sorted(set(range(n_classes)) - labels - absent)
    if not lacking:
        return
    folder = location / part.folder if part.folder else location
    if spec.class_folders is not None:
        names = ", ".join(spec.class_folders[i] for i in lacking)
        raise UserError(f"'{folder}' lacks the class folder(s) {names} (or they hold no {spec.extension} files); "
                        f"the dataset is incomplete. Re-extract {part.filename} (md5 {part.md5}).")
    raise UserError(f"'{folder}' holds no recordings of class(es) {', '.join(map(str, lacking))}; the dataset is "
                    f"incomplete. Re-extract {part.filename} (md5 {part.md5}).")


def find_tonic_dataset(root: str | os.PathLike, dataset: str, download_missing: bool = False) -> TonicFolder:
    """List a tonic dataset under ``root`` (tonic's ``save_to``, or its ``ROOT/<Class>`` folder).

    Raises:
        UserError: root missing, dataset missing or incomplete, checksum mismatch, foreign layout.
    """
    spec = tonic_spec(dataset)
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise UserError(f"--root '{root}' is a file, not a directory.")
    if download_missing:
        root.mkdir(parents=True, exist_ok=True)
        download(spec, root)
    if not root.is_dir():
        raise UserError(f"--root '{root}' does not exist. Expected tonic's layout:\n"
                        f"{_expected(spec, _location(spec, root))}\nNothing is downloaded without --download.")
    location = ensure_extracted(spec, root)
    listed: list[tuple[str, object, str]] = []
    for part in spec.parts:
        listed += [(path, target, part.split) for path, target in _tonic_listing(spec, root, part)]
    if spec.class_folders is not None:
        classes = spec.class_folders
        to_label = lambda target: int(target)
    elif dataset == "dvsgesture":
        classes = tuple(_tonic("DVSGesture").classes)
        to_label = lambda target: int(target)
    else:  # N-Caltech101: tonic's targets are the class folder names; labels follow their sorted order
        classes = tuple(sorted({str(t) for _, t, _ in listed}))
        to_label = {name: i for i, name in enumerate(classes)}.__getitem__
    recordings = []
    for path, target, split in listed:
        rel = Path(path).resolve().relative_to(location.resolve()).as_posix()
        label = to_label(target)
        if not 0 <= label < len(classes):
            raise UserError(f"{path}: tonic's {spec.tonic_class} gives it label {label}, outside the {len(classes)} "
                            f"classes of {dataset}; the file does not belong to the dataset. Remove it.")
        recordings.append((label, rel, split, Path(path)))
    for part in spec.parts:
        labels = {label for label, _, split, _ in recordings if split == part.split}
        _check_classes(spec, location, part, labels, len(classes))
    recordings.sort(key=lambda r: (r[0], r[1]))
    official = tuple(r[2] for r in recordings) if spec.has_official_split else None
    return TonicFolder(location, "tonic", classes, spec.sensor_size,
                       tuple(Recording(path, label, rel) for label, rel, _, path in recordings),
                       dataset=dataset, official=official)


_READERS: dict[str, object] = {}


def _reader(spec: TonicSpec):
    """A bare instance of tonic's class whose ``__getitem__`` reads one item we put in ``data``."""
    if spec.name not in _READERS:
        cls = _tonic(spec.tonic_class)
        reader = object.__new__(cls)
        reader.transform = reader.target_transform = reader.transforms = None
        reader.first_saccade_only = reader.stabilize = False  # N-MNIST's defaults
        _READERS[spec.name] = reader
    return _READERS[spec.name]


def read_recording(dataset: str, recording: Recording) -> np.ndarray:
    """Events (N,) ``EVENT_DTYPE`` of one recording, read by tonic's ``__getitem__``; UserError if bad."""
    spec = tonic_spec(dataset)
    path = recording.path
    hint = "Re-extract it, or pass --skip-bad to leave it out."
    if spec.extension == ".bin" and path.stat().st_size % 5:
        raise UserError(f"{path}: truncated ({path.stat().st_size} bytes is not a whole number of 5-byte events). {hint}")
    reader = _reader(spec)
    try:
        reader.data = [np.load(path) if spec.name == "pokerdvs" else str(path)]  # tonic's POKERDVS loads in __init__
        reader.targets = [recording.label]
        events = reader[0][0]
    except Exception as err:  # tonic's readers (numpy, scipy.io) raise many kinds on a damaged file
        raise UserError(f"{path}: tonic's {spec.tonic_class} reader failed ({type(err).__name__}: {err}); the file is "
                        f"empty, truncated or corrupt. {hint}") from None
    return to_event_dtype(events, spec.sensor_size, str(path))


def to_event_dtype(events: np.ndarray, sensor_size, source: str) -> np.ndarray:
    """tonic's structured events (any integer/bool field types) -> ``EVENT_DTYPE``, validated."""
    if len(events) and any(int(np.min(events[f])) < 0 for f in ("t", "x", "y")):
        raise UserError(f"{source}: negative timestamps or coordinates; the file is corrupt. "
                        "Re-extract it, or pass --skip-bad to leave it out.")
    events = events.reshape(-1)  # ASL-DVS's .mat columns come out (N, 1)
    out = make_events(events["t"], events["x"], events["y"], np.asarray(events["p"]) > 0)
    return check_events(out, sensor_size, source)
