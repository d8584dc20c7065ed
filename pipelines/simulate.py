"""Stage: images -> simulated DVS recordings in the original CIFAR10-DVS on-disk form.

``ROOT/<class>/<name>.aedat`` (AER-DAT 2.0, DVS128), so every later stage treats the result exactly
like the real dataset. The default source is scikit-learn's bundled handwritten digits (1797 real
8x8 images, 10 classes, no download): the embedded ``digits-dvs`` dataset. Any folder of images
with one subfolder per class works too.

Resumable: recordings are written atomically, and a re-run with the same settings skips the files
already there. ``simulate.json`` in the output records the settings; different settings never
silently mix with an existing output.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ckdsnn_events.atomic import atomic_path, ensure_writable_dir
from ckdsnn_events.errors import Interrupted, UserError
from ckdsnn_events.events.aedat2 import write_aedat2
from ckdsnn_events.events.simulate import SimulatorConfig, fit_image, simulate_recording
from ckdsnn_events.workers import worker_results

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MANIFEST = "simulate.json"


@dataclass(frozen=True)
class SimulateJob:
    """Where the images come from and where the recordings go."""

    out: str = "data/digits-dvs"
    images: str | None = None  # a folder with one subfolder of images per class; None: digits
    limit: int | None = None  # at most this many images per class
    workers: int = min(4, os.cpu_count() or 1)
    overwrite: bool = False


@dataclass(frozen=True)
class _Source:
    class_name: str
    out_name: str  # "<class>/<file>.aedat"
    image_path: str | None  # None for the embedded digits
    digit_index: int


def digits_sources(limit: int | None = None) -> list[_Source]:
    """The embedded digits, class folders "0".."9", in scikit-learn's order within each class."""
    from sklearn.datasets import load_digits

    targets = load_digits().target
    sources = []
    for digit in range(10):
        idx = np.flatnonzero(targets == digit)[:limit]
        sources += [_Source(str(digit), f"{digit}/{digit}_{k:04d}.aedat", None, int(i)) for k, i in enumerate(idx)]
    return sources


def image_folder_sources(root: str | os.PathLike, limit: int | None = None) -> list[_Source]:
    """Images under ``root/<class>/`` (sorted); raises UserError for missing or empty folders."""
    root = Path(root)
    layout = f"Expected {root}/<class>/<image>.png (or .jpg, ...): one subfolder of images per class."
    if not root.is_dir():
        raise UserError(f"--images '{root}' is not a directory. {layout}")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise UserError(f"--images '{root}' has no class subfolders. {layout}")
    sources = []
    for folder in classes:
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)[:limit]
        if not files:
            raise UserError(f"class folder '{folder}' holds no images ({', '.join(IMAGE_EXTENSIONS)}). {layout}")
        stems: set[str] = set()
        for f in files:
            stem = f.stem if f.stem not in stems else f"{f.stem}_{f.suffix.lstrip('.')}"
            stems.add(stem)
            sources.append(_Source(folder.name, f"{folder.name}/{stem}.aedat", str(f), -1))
    return sources


def _load_image(source: _Source) -> np.ndarray:
    """Grayscale intensities in [0, 1], shape (h, w)."""
    if source.image_path is None:
        from sklearn.datasets import load_digits

        return load_digits().images[source.digit_index] / 16.0
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source.image_path) as img:
            return np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    except (OSError, UnidentifiedImageError) as err:
        raise UserError(f"{source.image_path}: cannot read the image ({err}). Remove or replace it.") from None


_WORKER: dict = {}


def _init_worker(out: str, config: SimulatorConfig) -> None:
    _WORKER.update(out=Path(out), config=config)


def _simulate_one(task: tuple[int, _Source]) -> int:
    index, source = task
    config: SimulatorConfig = _WORKER["config"]
    image = fit_image(_load_image(source), config.image_px)
    events = simulate_recording(image, config, index)
    write_aedat2(_WORKER["out"] / source.out_name, events, comment=f"simulated from {source.image_path or 'digits'}")
    return len(events)


def run_simulate(job: SimulateJob, config: SimulatorConfig, progress: bool = True) -> dict:
    """Write one ``.aedat`` recording per image; returns a summary dict."""
    try:
        config.validate()
    except ValueError as err:
        raise UserError(f"simulator option {err}.") from None
    if job.limit is not None and job.limit < 1:
        raise UserError(f"--limit must be at least 1, got {job.limit}.")
    if job.workers < 0:
        raise UserError(f"--workers must be >= 0, got {job.workers}.")
    sources = image_folder_sources(job.images, job.limit) if job.images else digits_sources(job.limit)
    out = ensure_writable_dir(job.out, "--out directory")
    manifest = {
        "source": str(Path(job.images).resolve()) if job.images else "sklearn-digits",
        "limit": job.limit,
        "simulator": asdict(config),
        "classes": sorted({s.class_name for s in sources}),
    }
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError):
            old = None
        if old != manifest:
            if not job.overwrite:
                raise UserError(
                    f"'{out}' already holds recordings simulated with other settings ({manifest_path}). "
                    "Choose another --out, or pass --overwrite to replace them."
                )
            for name in (old or {}).get("classes", []):
                for stale in (out / name).glob("*.aedat"):
                    stale.unlink()
    for name in manifest["classes"]:
        (out / name).mkdir(exist_ok=True)
    with atomic_path(manifest_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))

    tasks = [(i, s) for i, s in enumerate(sources) if not (out / s.out_name).exists()]
    bar = tqdm(total=len(sources), initial=len(sources) - len(tasks), unit="rec", desc="simulate",
               disable=not progress, dynamic_ncols=True)
    n_events = []
    try:
        with worker_results(_simulate_one, tasks, job.workers, _init_worker, (str(out), config)) as results:
            for n in results:
                n_events.append(n)
                bar.update(1)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted with {bar.n} of {len(sources)} recordings written to '{out}'. "
            "Run the same command again to finish."
        ) from None
    finally:
        bar.close()
    return {
        "out": str(out),
        "recordings": len(sources),
        "written": len(tasks),
        "classes": manifest["classes"],
        "mean_events": float(np.mean(n_events)) if n_events else None,
    }
