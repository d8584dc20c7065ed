"""The one in-memory event representation used everywhere.

Events are numpy structured arrays with the fields tonic's ``CIFAR10DVS`` yields:
``t`` (uint64, microseconds), ``x`` (uint16), ``y`` (uint16), ``p`` (bool). The sensor size is
``(width, height, polarities)``, as in tonic.

Orientation and polarity convention (all readers map their raw form to this):

- ``x`` grows to the right and ``y`` grows downwards, ``(0, 0)`` is the top-left pixel of the
  upright image (the image as it was shown to the sensor);
- ``p = 1`` (True) is an ON event (brightness increased), ``p = 0`` an OFF event.

How each on-disk form maps to it is documented in the reader of that form
(:mod:`ckdsnn_events.events.aedat2`, :mod:`ckdsnn_events.events.aedat4`,
:mod:`ckdsnn_events.events.npz`).
"""

from __future__ import annotations

import numba
import numpy as np

from ckdsnn_events.errors import UserError

EVENT_DTYPE = np.dtype([("t", np.uint64), ("x", np.uint16), ("y", np.uint16), ("p", bool)])
DVS128_SENSOR_SIZE = (128, 128, 2)


def make_events(t, x, y, p) -> np.ndarray:
    """Pack equal-length arrays into an ``EVENT_DTYPE`` structured array of shape (N,)."""
    t = np.asarray(t)
    events = np.empty(t.shape[0], dtype=EVENT_DTYPE)
    events["t"] = t
    events["x"] = x
    events["y"] = y
    events["p"] = p
    return events


def check_events(
    events: np.ndarray, sensor_size: tuple[int, int, int] | None, source: str
) -> np.ndarray:
    """Validate a recording; return it unchanged.

    Checks: at least one event, coordinates inside ``sensor_size`` (when given), timestamps that
    never decrease.

    Raises:
        UserError: naming ``source`` (the file) and what is wrong with it.
    """
    if events.shape[0] == 0:
        raise UserError(f"{source}: the recording holds no events. Remove the file or re-export it.")
    x_max, y_max, first_decrease = _scan(events["t"], events["x"], events["y"])
    if sensor_size is not None:
        width, height = sensor_size[0], sensor_size[1]
        if x_max >= width or y_max >= height:
            raise UserError(
                f"{source}: event coordinates reach x={x_max}, y={y_max}, outside the "
                f"{width}x{height} sensor. The file is not a recording of this dataset's sensor "
                "(or it is corrupt); check --dataset / --sensor-size."
            )
    if first_decrease >= 0:
        t, first = events["t"], first_decrease
        raise UserError(
            f"{source}: timestamps decrease at event {first} "
            f"({int(t[first - 1])} us -> {int(t[first])} us). The recording is corrupt or "
            "was written out of order; re-export it, or pass --skip-bad to leave it out."
        )
    return events


@numba.njit(cache=True, nogil=True)
def _scan(t, x, y):  # pragma: no cover - compiled
    """``(max x, max y, index of the first timestamp below the one before it, or -1)`` in one
    pass over a non-empty recording (numpy needs four, plus an int64 copy of t)."""
    x_max, y_max = x[0], y[0]
    for i in range(1, t.shape[0]):
        if t[i] < t[i - 1]:
            return max(int(x_max), int(x[i:].max())), max(int(y_max), int(y[i:].max())), i
        x_max = max(x_max, x[i])
        y_max = max(y_max, y[i])
    return int(x_max), int(y_max), -1
