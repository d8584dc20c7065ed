"""Sizes checked against the memory of this machine before anything is allocated.

A size that comes from a user (``-T``, ``--size``, a noise rate) or from a file header (an
``.npz`` array's shape) can ask for terabytes; numpy would then fail with a MemoryError deep in
a stack, or the kernel would kill the process. These checks turn that into a UserError first.
"""

from __future__ import annotations

import os

from ckdsnn_events.errors import UserError


def available_memory() -> int:
    """Bytes of memory this process could still get: MemAvailable, else total physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**40  # unknown platform: only absurd sizes are refused


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"  # pragma: no cover - the loop returns


def check_fits(nbytes: float, what: str, fix: str, share: float = 0.5) -> None:
    """Raise a UserError when ``nbytes`` exceeds ``share`` of the available memory.

    Args:
        nbytes: the size about to be allocated (may be a float: products of user sizes overflow ints
            in numpy, never in Python, but a float keeps the message short).
        what: names the option or file, e.g. "-T 1000000 with --size 48".
        fix: what the user can do.
    """
    limit = share * available_memory()
    if nbytes > limit:
        raise UserError(
            f"{what} needs {format_bytes(nbytes)} of memory, more than the {format_bytes(limit)} this "
            f"machine can spare. {fix}"
        )
