"""Raw-byte access to ``EVENT_DTYPE`` records from numba kernels.

An ``EVENT_DTYPE`` record is 13 packed bytes (``t`` 0-7, ``x`` 8-9, ``y`` 10-11, ``p`` 12), so
its fields sit at odd strides. Kernels that read or write whole records go through a uint8 view
of the array and these unaligned 8-byte loads and stores: one per record where field access
needs three or four. Bytes 5-12 of a record, read as one little-endian uint64, hold
``t >> 40 | x << 24 | y << 40 | p << 56`` (:func:`pack_xyp`).
"""

from __future__ import annotations

import sys

import numba
import numpy as np
from llvmlite import ir as llvm_ir
from numba import types
from numba.extending import intrinsic

from ckdsnn_events.events.types import EVENT_DTYPE

RECORD_BYTES = EVENT_DTYPE.itemsize
# byte offset of the 8 bytes holding t's top 3 bytes, x, y and p
XYP_OFFSET = EVENT_DTYPE.fields["p"][1] + 1 - 8
# the byte layout above is that of a little-endian host; elsewhere callers use the fields
RAW_ACCESS = sys.byteorder == "little" and EVENT_DTYPE.fields["t"][1] == 0 and XYP_OFFSET == 5


def record_bytes(events: np.ndarray) -> np.ndarray | None:
    """The raw bytes of ``events`` (uint8, no copy) if it is a contiguous 1-D EVENT_DTYPE array
    on a host with the byte layout above, else None."""
    if not RAW_ACCESS or events.dtype != EVENT_DTYPE or events.ndim != 1 or not events.flags.c_contiguous:
        return None
    return events.view(np.uint8)


@intrinsic
def load_u64(typingctx, data, offset):  # pragma: no cover - compiled
    """Unaligned native-endian load of the 8 bytes ``data[offset:offset + 8]`` (uint8 array)."""

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        word_ptr = builder.bitcast(builder.gep(array.data, [args[1]]), llvm_ir.IntType(64).as_pointer())
        return builder.load(word_ptr, align=1)

    return types.uint64(data, offset), codegen


@intrinsic
def store_u64(typingctx, data, offset, value):  # pragma: no cover - compiled
    """Unaligned native-endian store of uint64 ``value`` to ``data[offset:offset + 8]``."""

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        word_ptr = builder.bitcast(builder.gep(array.data, [args[1]]), llvm_ir.IntType(64).as_pointer())
        word = context.cast(builder, args[2], signature.args[2], types.uint64)
        builder.store(word, word_ptr, align=1)
        return context.get_dummy_value()

    return types.void(data, offset, value), codegen


@numba.njit(cache=True, nogil=True, inline="always")
def pack_xyp(t, x, y, p):  # pragma: no cover - compiled
    """Bytes 5-12 of the record ``(t, x, y, p)`` as one uint64 (all arguments uint64)."""
    return (t >> np.uint64(40)) | (x << np.uint64(24)) | (y << np.uint64(40)) | (p << np.uint64(56))


@numba.njit(cache=True, nogil=True, inline="always")
def store_record(data, i, t, x, y, p):  # pragma: no cover - compiled
    """Write record i of the byte view ``data``: two overlapping 8-byte stores (t, then bytes 5-12)."""
    store_u64(data, i * RECORD_BYTES, t)
    store_u64(data, i * RECORD_BYTES + XYP_OFFSET, pack_xyp(t, x, y, p))
