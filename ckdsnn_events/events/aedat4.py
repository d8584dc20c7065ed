"""AEDAT 4.0 (``.aedat4``, iniVation DV): the form tonic's ``CIFAR10DVS`` downloads.

Decoding is tonic's own reader (:func:`tonic.io.read_aedat4`, built on the ``aedat`` package);
this module only adds clear errors and validation. It reads the first event stream of the file
and skips the others (frames, IMU, triggers).

Mapping to the project's convention (see :mod:`ckdsnn_events.events.types`): the identity. DV
stores ``x`` rightwards and ``y`` downwards from the top-left pixel and ``on = True`` for ON
events, which is our convention, so ``x, y, p = x, y, on``: events read here equal tonic's
``CIFAR10DVS`` samples. Caveat: tonic's CIFAR10-DVS ``.aedat4`` files were converted from the
original ``.aedat`` release with iniVation's DV; no public pair of the same CIFAR10-DVS recording
in both forms was available to check that DV's conversion keeps the orientation of our ``.aedat``
mapping (:mod:`ckdsnn_events.events.aedat2`).
"""

from __future__ import annotations

import os

import numpy as np

from ckdsnn_events.errors import UserError
from ckdsnn_events.events.types import EVENT_DTYPE, check_events

MAGIC = b"#!AER-DAT4.0"


def aedat4_sensor_size(path: str | os.PathLike) -> tuple[int, int, int]:
    """``(width, height, 2)`` of the first event stream, from the file's header."""
    import aedat

    source = str(path)
    _check_magic(path)
    try:
        streams = aedat.Decoder(source).id_to_stream()
    except Exception as err:  # the decoder raises RuntimeError with a plain message
        raise UserError(f"{source}: cannot decode the AEDAT 4.0 header ({err}).") from None
    event_streams = sorted(k for k, v in streams.items() if v["type"] == "events")
    if not event_streams:
        raise UserError(f"{source}: the file has no event stream (only {sorted(streams.values(), key=str)}).")
    stream = streams[event_streams[0]]
    return int(stream["width"]), int(stream["height"]), 2


def _check_magic(path: str | os.PathLike) -> None:
    source = str(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
    except OSError as err:
        raise UserError(f"{source}: cannot read the file ({err.strerror or err}).") from None
    if not head:
        raise UserError(f"{source}: the file is empty. Re-download or re-extract the dataset.")
    if head != MAGIC:
        raise UserError(
            f"{source}: not an AEDAT 4.0 file (it does not start with '#!AER-DAT4.0'). "
            "The file is corrupt or of another format (.aedat files are AER-DAT 2.0)."
        )


def read_aedat4(
    path: str | os.PathLike, sensor_size: tuple[int, int, int] | None = None, check: bool = True
) -> np.ndarray:
    """Read the first event stream of an AEDAT 4.0 file into ``EVENT_DTYPE`` events (N,).

    Args:
        sensor_size: ``(W, H, P)`` the coordinates must fit; default: the stream's own size.

    Raises:
        UserError: empty, foreign, truncated or corrupt files; no events; coordinates outside
        the sensor; decreasing timestamps.
    """
    from tonic.io import read_aedat4 as tonic_read_aedat4

    source = str(path)
    if sensor_size is None:
        sensor_size = aedat4_sensor_size(path)
    else:
        _check_magic(path)
    try:
        raw = tonic_read_aedat4(source)
    except Exception as err:  # aedat raises RuntimeError, tonic a bare Exception
        raise UserError(
            f"{source}: cannot decode the AEDAT 4.0 data ({err}); the file is truncated or "
            "corrupt. Re-download or re-extract it, or pass --skip-bad to leave it out."
        ) from None
    events = np.ascontiguousarray(raw).view(EVENT_DTYPE)
    if check:
        check_events(events, sensor_size, source)
    return events
