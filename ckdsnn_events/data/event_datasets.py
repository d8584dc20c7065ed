"""The one list of event datasets (names only, no heavy imports: the CLI reads it for its choices).

- ``FOLDER_DATASETS`` are read by :mod:`ckdsnn_events.data.event_folders` (CIFAR10-DVS in its three
  forms, the embedded digits-dvs, any folder of class folders);
- ``TONIC_DATASETS`` are read through ``tonic.datasets.<Class>`` by
  :mod:`ckdsnn_events.data.tonic_datasets`.

Both end in the same HDF5 frame stores and train the same way.
"""

from __future__ import annotations

FOLDER_DATASETS = ("cifar10dvs", "digits-dvs", "event-folder")
TONIC_DATASETS = ("dvsgesture", "nmnist", "ncaltech101", "asldvs", "pokerdvs")
EVENT_DATASETS = FOLDER_DATASETS + TONIC_DATASETS
# datasets whose release fixes the train/test files (tonic's ``train=True/False``)
OFFICIAL_SPLITS = ("dvsgesture", "nmnist", "pokerdvs")
COMPRESSIONS = ("gzip", "lzf", "none")
# chosen from benchmarks/bench_compression.py (README, "Frame store layout"): uncompressed chunks cost
# 0.65x the preprocess CPU and 0.33x the read CPU of gzip; gzip stores are 3.9x smaller
DEFAULT_COMPRESSION = "none"


def default_protocol(dataset: str, train_fraction: float = 0.9) -> str:
    """The split protocol used when none is given: the official split where there is one."""
    return "official" if dataset in OFFICIAL_SPLITS else f"ratio:{train_fraction:g}"
