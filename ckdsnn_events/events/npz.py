"""SpikingJelly's converted form: ``events_np/<class>/*.npz`` with arrays ``t, x, y, p``.

SpikingJelly writes these from the original ``.aedat`` files with
``x = 127 - y_field, y = 127 - x_field, p = 1 - polarity_bit``, which is exactly the mapping of
:mod:`ckdsnn_events.events.aedat2`; so the mapping to the project's convention is the identity and
an ``.npz`` file reads back as the same events as the ``.aedat`` it came from.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from ckdsnn_events.atomic import atomic_path
from ckdsnn_events.errors import UserError
from ckdsnn_events.events.types import check_events, make_events

FIELDS = ("t", "x", "y", "p")


def read_npz(
    path: str | os.PathLike, sensor_size: tuple[int, int, int] | None = None, check: bool = True
) -> np.ndarray:
    """Read a SpikingJelly ``.npz`` recording into ``EVENT_DTYPE`` events of shape (N,).

    Raises:
        UserError: unreadable or non-zip files, missing arrays, arrays of different lengths,
        negative coordinates, polarities other than 0/1, no events, coordinates outside
        ``sensor_size``, decreasing timestamps.
    """
    source = str(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in FIELDS if k not in archive.files]
            if missing:
                raise UserError(
                    f"{source}: missing array(s) {', '.join(missing)}; a SpikingJelly events_np "
                    f"file holds t, x, y, p (found: {', '.join(archive.files) or 'nothing'})."
                )
            arrays = {k: np.asarray(archive[k]).reshape(-1) for k in FIELDS}
    except UserError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(
            f"{source}: cannot read the .npz file ({err}); it is truncated or corrupt. "
            "Re-create it, or pass --skip-bad to leave it out."
        ) from None
    lengths = {k: v.shape[0] for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise UserError(f"{source}: arrays t, x, y, p differ in length ({lengths}); the file is corrupt.")
    for k in ("t", "x", "y"):
        if arrays[k].size and arrays[k].min() < 0:
            raise UserError(f"{source}: negative values in '{k}'; the file is corrupt.")
    if arrays["p"].size and not np.isin(arrays["p"], (0, 1)).all():
        raise UserError(f"{source}: polarity 'p' holds values other than 0 and 1; the file is corrupt.")
    events = make_events(arrays["t"], arrays["x"], arrays["y"], arrays["p"])
    if check:
        check_events(events, sensor_size, source)
    return events


def write_npz(path: str | os.PathLike, events: np.ndarray) -> None:
    """Write events as a SpikingJelly-style ``.npz`` (int64 t/x/y/p arrays), atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: events[k].astype(np.int64) for k in FIELDS})
