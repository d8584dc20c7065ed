"""Stage: check frame stores sample by sample, and rebuild the damaged ones from their sources.

A store records everything needed to remake it: its framing config, the source folder
(``source_root``) and which split it is, so ``--rebuild`` re-runs ``preprocess`` with exactly
those options (``--root`` when the recordings moved); ``preprocess`` rebuilds a damaged store it
would otherwise call up to date, and leaves an intact one alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from ckdsnn_events.data.store_check import H5_ERRORS, bad_samples, open_store, source_files
from ckdsnn_events.errors import UserError

SHOWN = 10  # bad samples named in a message


@dataclass
class VerifyResult:
    path: str
    samples: int
    bad: list[tuple[int, str]] = field(default_factory=list)  # (index, source recording)
    damage: str = ""  # why the store could not be opened, if it could not
    rebuilt: bool = False


def check_store(path: str | Path) -> VerifyResult:
    """Structure and every checksum of one store; never raises for a damaged store."""
    path = Path(path)
    try:
        n = open_store(path).n
        bad = bad_samples(path)
    except UserError as err:
        return VerifyResult(str(path), 0, damage=str(err))
    return VerifyResult(str(path), n, list(zip(bad, source_files(path, bad))))


def describe(result: VerifyResult) -> str:
    if result.damage:
        return result.damage
    if not result.bad:
        return f"{result.path}: {result.samples} samples, all match their checksums."
    named = ", ".join(f"{i} ({name})" for i, name in result.bad[:SHOWN])
    more = f" and {len(result.bad) - SHOWN} more" if len(result.bad) > SHOWN else ""
    return (f"{result.path}: {len(result.bad)} of {result.samples} samples do not match their checksums: "
            f"{named}{more}.")


def _rebuild_options(path: Path, root: str | None, workers: int, overwrite: bool):
    from ckdsnn_events.pipelines.preprocess import PreprocessConfig

    try:
        with h5py.File(path, "r") as f:
            config = json.loads(f.attrs["config"])
            source_root = str(f.attrs.get("source_root", "")) or None
    except (*H5_ERRORS, json.JSONDecodeError):
        raise UserError(f"{path}: the store is too damaged to say how it was made; run the preprocess "
                        "command that made it again with --overwrite.") from None
    root = root or source_root
    if root is None:
        raise UserError(f"{path}: the store does not record its source folder; pass --root with the recordings.")
    if f"{config.get('split')}.h5" != path.name:
        raise UserError(f"{path}: holds the '{config.get('split')}' split under another name; rebuild it with "
                        "preprocess, whose stores are named train.h5 and test.h5.")
    try:
        return PreprocessConfig(
            dataset=config["dataset"], root=root, out=str(path.parent), format=config["form"],
            timesteps=config["timesteps"], size=(config["size"][1], config["size"][0]), bins=config["bins"],
            window_us=config["window_us"], split_protocol=config["split_protocol"],
            compression=config["compression"], workers=workers, skip_bad=config["skip_bad"], overwrite=overwrite,
        )
    except (KeyError, TypeError, IndexError):
        raise UserError(f"{path}: its config lacks the preprocess options; run the preprocess command that "
                        "made it again with --overwrite.") from None


def run_verify(stores: list[str], rebuild: bool = False, root: str | None = None, workers: int = 1,
               progress: bool = True) -> list[VerifyResult]:
    """Check ``stores``; with ``rebuild`` remake the damaged ones, then check them again."""
    from ckdsnn_events.pipelines.preprocess import run_preprocess

    results = [check_store(path) for path in stores]
    if not rebuild:
        return results
    for i, result in enumerate(results):
        if not (result.bad or result.damage):
            continue
        run_preprocess(_rebuild_options(Path(result.path), root, workers, overwrite=bool(result.damage)), progress)
        results[i] = check_store(result.path)
        results[i].rebuilt = True
    return results
