"""AEDAT 4.0 (``.aedat4``, iniVation DV): the form tonic's ``CIFAR10DVS`` downloads.

Decoding is tonic's own reader (:func:`tonic.io.read_aedat4`, built on the ``aedat`` package),
run in a forked child because the Rust decoder can abort the process on a damaged file
(:mod:`ckdsnn_events.events.isolated`); this module only adds clear errors and validation. It reads the first event stream of the file
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
import struct

import numpy as np

from ckdsnn_events.errors import UserError
from ckdsnn_events.events.isolated import IsolatedWorker
from ckdsnn_events.events.types import EVENT_DTYPE, check_events

MAGIC = b"#!AER-DAT4.0"
_SIZE = struct.Struct("<II")  # width, height of the event stream


def aedat4_sensor_size(path: str | os.PathLike) -> tuple[int, int, int]:
    """``(width, height, 2)`` of the first event stream, from the file's header."""
    _check_magic(path)
    source = str(path)
    head = _DECODER.call("H" + source, lambda how: _crashed(source, how))
    width, height = _SIZE.unpack_from(head)
    return width, height, 2


def _decode(source: str, events: bool) -> bytes:
    """The stream's ``(width, height)`` packed as two uint32, then (``events``) the raw events.

    Runs in the helper process of :class:`IsolatedWorker`: the decoder may abort the process.
    """
    import aedat
    from tonic.io import read_aedat4 as tonic_read_aedat4

    try:
        streams = aedat.Decoder(source).id_to_stream()
    except BaseException as err:  # noqa: B036 - see _decoder_failure
        raise _decoder_failure(err, f"{source}: cannot decode the AEDAT 4.0 header") from None
    event_streams = sorted(k for k, v in streams.items() if v.get("type") == "events")
    if not event_streams:
        raise UserError(f"{source}: the file has no event stream (only {sorted(streams.values(), key=str)}).")
    stream = streams[event_streams[0]]
    width, height = stream.get("width"), stream.get("height")
    if not isinstance(width, int) or not isinstance(height, int) or not (0 < width <= 65536 and 0 < height <= 65536):
        raise UserError(f"{source}: the event stream declares a {width}x{height} sensor; the header is corrupt.")
    head = _SIZE.pack(width, height)
    if not events:
        return head
    try:
        raw = tonic_read_aedat4(source)
    except BaseException as err:  # noqa: B036 - see _decoder_failure
        raise _decoder_failure(err, f"{source}: cannot decode the AEDAT 4.0 data") from None
    if not isinstance(raw, np.ndarray) or raw.dtype.itemsize != EVENT_DTYPE.itemsize or raw.ndim != 1:
        raise UserError(f"{source}: the decoder returned no event array; the file is corrupt.")
    return head + np.ascontiguousarray(raw).tobytes()


def _crashed(source: str, how: str) -> UserError:
    return UserError(
        f"{source}: the AEDAT 4.0 decoder crashed on this file ({how}); the file is corrupt. "
        "Re-download or re-extract it, or pass --skip-bad to leave it out."
    )


def _decoder_failure(err: BaseException, what: str) -> UserError:
    """The UserError for an exception out of the decoder; Ctrl-C and exits are re-raised.

    The ``aedat`` decoder is Rust: on a damaged file it raises RuntimeError, tonic a bare
    Exception, and a panic inside the decoder arrives as ``pyo3_runtime.PanicException``, which
    derives from BaseException (not Exception), so ``except Exception`` would let it through.
    """
    if isinstance(err, (KeyboardInterrupt, SystemExit, GeneratorExit)):
        raise err
    message = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
    return UserError(
        f"{what} ({message}); the file is truncated or corrupt. Re-download or re-extract it, "
        "or pass --skip-bad to leave it out."
    )


# requests are "H<path>" (header only) or "E<path>" (header and events)
_DECODER = IsolatedWorker(lambda request: _decode(request[1:], events=request[0] == "E"))


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
    source = str(path)
    _check_magic(path)
    data = _DECODER.call("E" + source, lambda how: _crashed(source, how))
    if sensor_size is None:
        sensor_size = (*_SIZE.unpack_from(data), 2)
    events = np.frombuffer(data, dtype=EVENT_DTYPE, offset=_SIZE.size).copy()
    if check:
        check_events(events, sensor_size, source)
    return events
