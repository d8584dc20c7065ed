"""SpikingJelly's converted form: ``events_np/<class>/*.npz`` with arrays ``t, x, y, p``.

SpikingJelly writes these from the original ``.aedat`` files with
``x = 127 - y_field, y = 127 - x_field, p = 1 - polarity_bit``, which is exactly the mapping of
:mod:`ckdsnn_events.events.aedat2`; so the mapping to the project's convention is the identity and
an ``.npz`` file reads back as the same events as the ``.aedat`` it came from.

The archive is read member by member with :mod:`zipfile` and the ``.npy`` headers are parsed
before any data is: a header's shape is checked against the bytes the member really holds (a
damaged header can claim terabytes), and only 1-D numeric arrays are accepted. Float arrays
(some converters write them) must hold whole, finite numbers; every value must fit the field's
dtype (t < 2**64 us, x and y < 65536), so nothing is wrapped or truncated on the way in.
"""

from __future__ import annotations

import lzma
import math
import os
import struct
import zipfile
import zlib

import numpy as np
from numpy.lib import format as npy_format

from ckdsnn_events.atomic import atomic_path
from ckdsnn_events.errors import UserError
from ckdsnn_events.events.types import EVENT_DTYPE, check_events, make_events
from ckdsnn_events.limits import check_fits

FIELDS = ("t", "x", "y", "p")
# the largest value each field may hold (the EVENT_DTYPE field's range)
_LIMITS = {"t": 2**64 - 1, "x": 2**16 - 1, "y": 2**16 - 1, "p": 2**64 - 1}  # p: 0/1, checked after
# what a damaged archive or member can raise while it is parsed or inflated
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, lzma.LZMAError,
                NotImplementedError, RuntimeError, struct.error, SyntaxError, KeyError)


def read_npz(
    path: str | os.PathLike, sensor_size: tuple[int, int, int] | None = None, check: bool = True
) -> np.ndarray:
    """Read a SpikingJelly ``.npz`` recording into ``EVENT_DTYPE`` events of shape (N,).

    Raises:
        UserError: unreadable or non-zip files (a plain ``.npy`` included), missing arrays,
        headers that do not match their data, non-numeric or multi-dimensional arrays, arrays of
        different lengths, negative, fractional, non-finite or too large values, polarities other
        than 0/1, no events, coordinates outside ``sensor_size``, decreasing timestamps.
    """
    source = str(path)
    arrays = _read_arrays(path, source)
    lengths = {k: v.shape[0] for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise UserError(f"{source}: arrays t, x, y, p differ in length ({lengths}); the file is corrupt.")
    values = {k: _checked_values(arrays[k], k, source) for k in FIELDS}
    if values["p"].size and not np.isin(values["p"], (0, 1)).all():
        raise UserError(f"{source}: polarity 'p' holds values other than 0 and 1; the file is corrupt.")
    events = make_events(values["t"], values["x"], values["y"], values["p"])
    if check:
        check_events(events, sensor_size, source)
    return events


def _read_arrays(path: str | os.PathLike, source: str) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as err:
        raise UserError(f"{source}: cannot read the .npz file ({err.strerror or err}).") from None
    if head == b"\x93NUMPY":
        raise UserError(
            f"{source}: a single .npy array saved under a .npz name; a SpikingJelly events_np file is "
            "a zip archive of the arrays t, x, y, p (numpy.savez). Re-create it."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = {n[: -len(".npy")]: n for n in archive.namelist() if n.endswith(".npy")}
            missing = [k for k in FIELDS if k not in members]
            if missing:
                raise UserError(
                    f"{source}: missing array(s) {', '.join(missing)}; a SpikingJelly events_np "
                    f"file holds t, x, y, p (found: {', '.join(sorted(members)) or 'nothing'})."
                )
            return {k: _read_member(archive, members[k], k, source) for k in FIELDS}
    except UserError:
        raise
    except _READ_ERRORS as err:
        message = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{source}: cannot read the .npz file ({message}); it is truncated or corrupt. "
            "Re-create it, or pass --skip-bad to leave it out."
        ) from None


def _read_member(archive: zipfile.ZipFile, name: str, field: str, source: str) -> np.ndarray:
    """One ``.npy`` member: header checked against the member's size before the data is read."""
    info = archive.getinfo(name)
    with archive.open(info) as member:
        version = npy_format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(member)
        else:
            raise UserError(f"{source}: array '{field}' uses .npy format {version}, which is not supported.")
        if dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "biuf":
            raise UserError(
                f"{source}: array '{field}' has dtype {dtype}; t, x, y and p must be integers, booleans "
                "or whole floats. The file is corrupt or not an events_np recording."
            )
        if len(shape) != 1:
            raise UserError(f"{source}: array '{field}' has shape {shape}; t, x, y and p are 1-D.")
        nbytes = math.prod(shape) * dtype.itemsize
        declared = info.file_size - member.tell()
        if nbytes != declared:
            raise UserError(
                f"{source}: the header of array '{field}' claims shape {shape} ({nbytes} bytes) but the "
                f"archive holds {declared} bytes for it; the file is corrupt."
            )
        check_fits(nbytes, f"{source}: array '{field}'", "The file is corrupt or too large to read here.")
        data = member.read(nbytes)
        if len(data) != nbytes:
            raise UserError(f"{source}: array '{field}' is truncated; the file is corrupt.")
        member.read()  # reach the member's end, where zipfile checks its CRC
    return np.frombuffer(data, dtype=dtype)


def _checked_values(values: np.ndarray, field: str, source: str) -> np.ndarray:
    """``values`` as integers that fit ``field``'s EVENT_DTYPE type exactly; UserError otherwise."""
    if values.size == 0:
        return values.astype(EVENT_DTYPE[field])
    if values.dtype.kind == "f":
        if not np.isfinite(values).all():
            raise UserError(f"{source}: '{field}' holds NaN or infinite values; the file is corrupt.")
        if (values != np.floor(values)).any():
            raise UserError(f"{source}: '{field}' holds fractional values; event coordinates and times are "
                            "whole numbers. The file is corrupt.")
    low, high = values.min(), values.max()
    if low < 0:
        raise UserError(f"{source}: negative values in '{field}'; the file is corrupt.")
    # float(2**64 - 1) rounds to 2**64, so floats are compared with <, integers with <=
    too_large = float(high) >= float(_LIMITS[field]) + 1 if values.dtype.kind == "f" else int(high) > _LIMITS[field]
    if too_large:
        raise UserError(f"{source}: '{field}' reaches {high}, more than the {_LIMITS[field]} it can hold; the "
                        "file is corrupt.")
    return values.astype(EVENT_DTYPE[field]) if field != "p" else values  # p: checked to be 0/1 next


def write_npz(path: str | os.PathLike, events: np.ndarray) -> None:
    """Write events as a SpikingJelly-style ``.npz`` (int64 t/x/y/p arrays), atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: events[k].astype(np.int64) for k in FIELDS})
