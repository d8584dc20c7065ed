"""A run's ``metrics.csv`` (one row per epoch) and the firing-rate meter that feeds it.

Rows are written by the main process only; a resumed run first drops the rows of epochs after its
checkpoint, so that the file again holds exactly one row per epoch trained.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ckdsnn_events.atomic import atomic_path

from torch import nn

from ckdsnn_events.models import LIF

METRIC_COLUMNS = (
    "epoch", "lr", "seconds", "train_loss", "train_ce", "train_samd", "train_nld", "train_kd",
    "train_feature_kd", "train_acc", "val_acc", "val_loss", "test_acc", "test_loss", "firing_rate",
)


class FiringRate:
    """Mean spike rate of every LIF module's output while active (forward hooks)."""

    def __init__(self, model: nn.Module):
        self.spikes = 0.0
        self.count = 0
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules() if isinstance(m, LIF)]

    def _hook(self, module, inputs, output):
        self.spikes += float(output.detach().float().sum())
        self.count += output.numel()

    @property
    def rate(self) -> float:
        return self.spikes / self.count if self.count else float("nan")

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def metrics_row(epoch: int, lr: float, seconds: float, train: dict, val: dict, test: dict) -> dict:
    """One ``metrics.csv`` row: ``train`` holds the mean loss terms and ``acc``; val/test as from evaluate."""
    return {"epoch": epoch, "lr": lr, "seconds": seconds,
            "train_loss": train.get("total"), "train_ce": train.get("ce"), "train_samd": train.get("samd"),
            "train_nld": train.get("nld"), "train_kd": train.get("kd"), "train_feature_kd": train.get("feature_kd"),
            "train_acc": train["acc"], "val_acc": val["acc"], "val_loss": val["loss"],
            "test_acc": test["acc"], "test_loss": test["loss"], "firing_rate": test["firing_rate"]}


def truncate_metrics(path: Path, keep_epochs: int) -> None:
    """Drop the rows of epochs after ``keep_epochs`` (a resumed run trains them again), and a row
    torn by a kill (no whole epoch number); rewritten atomically."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if (r.get("epoch") or "").isdigit() and int(r["epoch"]) <= keep_epochs]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def append_metrics(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, METRIC_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def read_row(path: Path, epoch: int) -> dict:
    """The row of ``epoch`` with numbers as floats; {} when there is none."""
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if int(r["epoch"]) == epoch:
                return {k: (float(v) if v not in ("", None) and k != "epoch" else v) for k, v in r.items()}
    return {}
