"""Keep freed tensor memory in the process on glibc, so CPU training steps stop page-faulting.

Why: glibc's ``malloc`` serves every request above ``M_MMAP_THRESHOLD`` (128 KiB, rising
dynamically up to 32 MiB) with a fresh ``mmap`` and returns it to the kernel with ``munmap`` on
``free``; it also trims the top of the heap above ``M_TRIM_THRESHOLD``. A spiking student's
training step allocates and frees many large tensors (T x the activations of an ANN: membranes,
spikes, their gradients), so every step maps new pages and takes a page fault for each 4 KiB of
them on first touch; the kernel zero-fills each page. An earlier version of this project measured
a student step at 1.87x the time of T ANN steps because of it, and 1.04-1.07x once the memory
stayed in the heap. Raising both thresholds to 1 GiB makes ``free`` keep the memory on glibc's
free lists, and the next step reuses it without system calls or faults.

The cost: the process keeps its peak heap size (it does not shrink after a large step). That is
what a training loop wants; PyTorch's CUDA caching allocator does the same for GPU memory. The
same effect without code: ``MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824``
in the environment before Python starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys

__all__ = ["reuse_freed_memory", "M_TRIM_THRESHOLD", "M_MMAP_THRESHOLD", "DEFAULT_THRESHOLD"]

# <malloc.h> parameter numbers for mallopt().
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

DEFAULT_THRESHOLD = 1 << 30  # 1 GiB: larger than any single tensor of a CPU training step here


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc on Linux (musl, macOS, Windows: None)."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") else None


def reuse_freed_memory(threshold_bytes: int = DEFAULT_THRESHOLD) -> bool:
    """Ask glibc to keep freed memory up to ``threshold_bytes`` per block in the heap.

    Sets ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` with ``mallopt``. Idempotent: calling it
    again sets the same values. Affects allocations made after the call, so call it once at
    start-up, before training (the trainer does on CPU).

    Args:
        threshold_bytes: allocations below this size come from the heap and stay there when
            freed (default 1 GiB).

    Returns:
        True when glibc accepted both settings; False on other platforms or C libraries (a
        no-op there) or when glibc refused a value.
    """
    if isinstance(threshold_bytes, bool) or not isinstance(threshold_bytes, int) or threshold_bytes < 1:
        raise ValueError(f"threshold_bytes must be a positive integer, got {threshold_bytes!r}")
    libc = _glibc()
    if libc is None:
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    value = min(threshold_bytes, 2**31 - 1)  # mallopt takes a C int
    # mallopt returns 1 on success, 0 when it rejects a value (some glibc releases capped the
    # mmap threshold at half their maximum heap size, 32 MiB on 64-bit; 2.36 accepts 1 GiB).
    mmap_ok = libc.mallopt(M_MMAP_THRESHOLD, value) == 1
    trim_ok = libc.mallopt(M_TRIM_THRESHOLD, value) == 1
    return mmap_ok and trim_ok
