"""Write files so that nothing half-written ever stands under a final name."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ckdsnn_events.errors import UserError


def ensure_writable_dir(path: str | os.PathLike, what: str = "output directory") -> Path:
    """Create ``path`` (and parents) and check that we can write there.

    Raises:
        UserError: naming the directory when it cannot be created or written.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as err:
        raise UserError(
            f"cannot write to {what} '{path}': {err.strerror or err}. "
            "Choose a directory you can write to."
        ) from None
    return path


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only on success.

    The temporary file lives in the same directory, so the rename is atomic on POSIX. On any
    exception (Ctrl-C included) the temporary file is removed and ``final`` is untouched.
    """
    final = Path(final)
    fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def remove_stale_temps(directory: str | os.PathLike, names: list[str]) -> list[Path]:
    """Remove the temporary files :func:`atomic_path` left beside ``directory/<name>`` when a
    process was killed (kill -9 skips its clean-up). Call it where one process owns the
    directory, before writing there. Returns the files removed."""
    removed = []
    for name in names:
        for tmp in Path(directory).glob(f".{glob.escape(name)}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed

