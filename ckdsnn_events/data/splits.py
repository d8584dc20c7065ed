"""Train/test split protocols: a split is a pure function of the file list and the protocol.

Protocols (``--split-protocol``), written as text and recorded in every store and run config:

- ``ratio:F``: per class, the first ``floor(n_c * F)`` files of the listing train, the rest test.
  This is SpikingJelly's ``split_to_train_test_set(F, dataset, C, random_split=False)`` on the
  same listing, except that SpikingJelly rounds up (``ceil``); both agree whenever ``n_c * F`` is
  an integer (CIFAR10-DVS: 1000 per class, F = 0.9 -> 900 / 100).
- ``random:F:SEED``: per class, the listing shuffled with ``numpy.random.RandomState(SEED)``
  (classes in label order, one generator for all), then as ``ratio:F``. This draws the same
  permutations as SpikingJelly's ``split_to_train_test_set(..., random_split=True)`` after
  ``numpy.random.seed(SEED)``, the form SEW-ResNet's scripts use.
- ``tebn``: CIFAR10-DVS only. Per class, the files numbered 0-99 *in their file name*
  (``cifar10_<class>_<i>.<ext>``, i = the trailing number of the name) test and 100-999 train,
  exactly the files SpikingJelly's ``CIFAR10DVSTEBNSplit`` links (its ``_move_data`` builds the
  names from i; the listing position plays no part). Other numbers are in neither split.
- ``official``: the dataset's own train/test files (DVS-Gesture, N-MNIST, POKER-DVS).

File order. A listing is sorted by label, then by relative path in **lexicographic** order
(Python's ``sorted`` on ``str``): ``cifar10_airplane_10`` comes before ``cifar10_airplane_2``.
That is the order of SpikingJelly's (torchvision ``DatasetFolder``) listing, so ``ratio`` and
``random`` pick the same files as SpikingJelly on the same folder; :func:`natural_key` gives the
other order (numbers by value) for comparison only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from ckdsnn_events.errors import UserError

PROTOCOL_KINDS = ("ratio", "random", "tebn", "official")
TEBN_TEST = range(0, 100)
TEBN_TRAIN = range(100, 1000)
_TRAILING_NUMBER = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class SplitProtocol:
    """A parsed ``--split-protocol``: ``kind`` plus the training ``fraction`` and ``seed`` where used."""

    kind: str
    fraction: float | None = None
    seed: int | None = None

    def __str__(self) -> str:
        if self.kind == "ratio":
            return f"ratio:{self.fraction:g}"
        if self.kind == "random":
            return f"random:{self.fraction:g}:{self.seed}"
        return self.kind


def parse_protocol(text: str) -> SplitProtocol:
    """``"ratio:0.9"`` / ``"random:0.9:0"`` / ``"tebn"`` / ``"official"`` -> :class:`SplitProtocol`.

    Raises:
        UserError: an unknown protocol, a malformed one, or a fraction outside (0, 1).
    """
    usage = "use ratio:F, random:F:SEED (F in (0, 1), SEED an integer), tebn or official"
    parts = str(text).strip().split(":")
    kind = parts[0]
    if kind not in PROTOCOL_KINDS:
        raise UserError(f"--split-protocol '{text}' is unknown; {usage}.")
    expected = {"ratio": 2, "random": 3, "tebn": 1, "official": 1}[kind]
    if len(parts) != expected:
        raise UserError(f"--split-protocol '{text}' is malformed; {usage}.")
    if kind in ("tebn", "official"):
        return SplitProtocol(kind)
    try:
        fraction = float(parts[1])
    except ValueError:
        raise UserError(f"--split-protocol '{text}': the training fraction '{parts[1]}' is not a number; {usage}.") from None
    if not 0 < fraction < 1 or not math.isfinite(fraction):
        raise UserError(f"--split-protocol '{text}': the training fraction must be in (0, 1), got {parts[1]}.")
    seed = None
    if kind == "random":
        try:
            seed = int(parts[2])
        except ValueError:
            raise UserError(f"--split-protocol '{text}': the seed '{parts[2]}' is not an integer; {usage}.") from None
        if not 0 <= seed < 2**32:
            raise UserError(f"--split-protocol '{text}': the seed must be in [0, 2**32), got {seed}.")
    return SplitProtocol(kind, fraction, seed)


def natural_key(name: str) -> list:
    """Sort key that orders the numbers inside ``name`` by value (``_2`` before ``_10``)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def file_number(relpath: str) -> int | None:
    """The trailing number of a file's stem (``airplane/cifar10_airplane_17.aedat4`` -> 17), or None."""
    match = _TRAILING_NUMBER.search(PurePosixPath(relpath).stem)
    return int(match.group(1)) if match else None


def _per_class(labels: np.ndarray, fraction: float, rng: np.random.RandomState | None):
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if rng is not None:
            idx = idx.tolist()
            rng.shuffle(idx)  # shuffles a list in place exactly as np.random.shuffle does
            idx = np.asarray(idx, dtype=np.int64)
        n_train = int(len(idx) * fraction + 1e-9)
        train.append(idx[:n_train])
        test.append(idx[n_train:])
    return train, test


def split_by_protocol(
    protocol: SplitProtocol,
    labels: np.ndarray,
    relpaths: Sequence[str],
    official: Sequence[str] | None = None,
    dataset: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` of a listing, each an ascending int64 array.

    Args:
        protocol: the parsed protocol.
        labels: int array (N,), the listing already in its documented order.
        relpaths: (N,) relative paths, used by ``tebn``.
        official: (N,) ``"train"`` / ``"test"`` per file for datasets with an official split, else None.
        dataset: the dataset name, for messages and the ``tebn`` check.

    Raises:
        UserError: a protocol that does not exist for this dataset.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if protocol.kind == "official":
        if official is None:
            raise UserError(f"--split-protocol official: {dataset} has no official train/test split; "
                            "use ratio:F or random:F:SEED.")
        official = np.asarray(official)
        return np.flatnonzero(official == "train").astype(np.int64), np.flatnonzero(official == "test").astype(np.int64)
    if protocol.kind == "tebn":
        if dataset != "cifar10dvs":
            raise UserError(f"--split-protocol tebn is CIFAR10-DVS's split (SpikingJelly's CIFAR10DVSTEBNSplit); "
                            f"it does not exist for {dataset}. Use ratio:F, random:F:SEED"
                            + (" or official." if official is not None else "."))
        numbers = [file_number(p) for p in relpaths]
        bad = [p for p, n in zip(relpaths, numbers) if n is None]
        if bad:
            raise UserError(f"--split-protocol tebn picks files by the number in their name "
                            f"(cifar10_<class>_<i>); '{bad[0]}' has none. Use ratio:F instead.")
        test = np.asarray([i for i, n in enumerate(numbers) if n in TEBN_TEST], dtype=np.int64)
        train = np.asarray([i for i, n in enumerate(numbers) if n in TEBN_TRAIN], dtype=np.int64)
        return train, test
    rng = np.random.RandomState(protocol.seed) if protocol.kind == "random" else None
    train, test = _per_class(labels, protocol.fraction, rng)
    cat = lambda parts: np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.empty(0, np.int64)
    return cat(train), cat(test)
