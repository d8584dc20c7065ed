"""Training curves of run directories, drawn from their ``metrics.csv``.

:func:`draw_curves` writes ``curves.png`` into one run directory (the trainer calls it after every
epoch, so the picture is never more than an epoch old): loss terms, train / validation / test
accuracy, firing rate and learning rate per epoch. :func:`overlay_curves` puts several runs in
one figure (``ckd-events plot RUN_DIR [RUN_DIR ...]``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ckdsnn_events.atomic import atomic_path
from ckdsnn_events.errors import UserError

__all__ = ["read_metrics", "draw_curves", "overlay_curves"]

LOSS_COLUMNS = ("train_loss", "train_ce", "train_samd", "train_nld", "train_kd", "train_feature_kd",
                "val_loss", "test_loss")
ACCURACY_COLUMNS = ("train_acc", "val_acc", "test_acc")


def read_metrics(run_dir: str | Path) -> dict[str, list[float]]:
    """``run_dir/metrics.csv`` as column -> values (floats; empty cells are NaN), epochs ascending.

    Raises:
        UserError: the run directory holds no readable metrics.csv.
    """
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise UserError(f"'{run_dir}' holds no metrics.csv; give the directory of a training run "
                        "(train-teacher, distill or an ablation run).")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        columns: dict[str, list[float]] = {}
        for row in sorted(rows, key=lambda r: int(r["epoch"])):
            for key, value in row.items():
                columns.setdefault(key, []).append(float(value) if value not in ("", None) else math.nan)
    except (KeyError, ValueError, TypeError, csv.Error) as err:
        raise UserError(f"'{path}' is not a metrics file written by ckd-events ({err}); "
                        "give the directory of a training run.") from None
    return columns


def _has_values(values: list[float]) -> bool:
    return any(not math.isnan(v) for v in values)


def _figure(rows: int, cols: int, size: tuple[float, float]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    for ax in axes.ravel():
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    return plt, fig, axes.ravel()


def _save(plt, fig, out: Path) -> None:
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def draw_curves(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw ``run_dir/metrics.csv`` into ``out`` (default ``run_dir/curves.png``), atomically.

    Panels: loss per term (train terms unweighted, as logged; validation / test CE; log scale),
    accuracy (train, validation, test), firing rate of the student's LIF layers on the test
    split (students only), learning rate at the end of each epoch.

    Returns:
        The path of the PNG.
    """
    metrics = read_metrics(run_dir)
    out = Path(out) if out is not None else Path(run_dir) / "curves.png"
    epochs = metrics.get("epoch", [])
    plt, fig, (loss, acc, rate, lr) = _figure(2, 2, (10, 7))
    for name in LOSS_COLUMNS:
        values = metrics.get(name, [])
        if _has_values(values):
            loss.plot(epochs, values, marker=".", label=name.replace("train_", "train ").replace("_", " "))
    loss.set_yscale("log")
    loss.set_title("loss per term")
    for name in ACCURACY_COLUMNS:
        values = metrics.get(name, [])
        if _has_values(values):
            acc.plot(epochs, [100 * v for v in values], marker=".", label=name.split("_")[0])
    acc.set_title("accuracy (%)")
    if _has_values(metrics.get("firing_rate", [])):
        rate.plot(epochs, metrics["firing_rate"], marker=".", color="tab:purple")
    else:
        rate.text(0.5, 0.5, "no spikes (ANN run)", ha="center", va="center", transform=rate.transAxes)
    rate.set_title("firing rate (test split)")
    lr.plot(epochs, metrics.get("lr", []), marker=".", color="tab:gray")
    lr.set_title("learning rate (end of epoch)")
    for ax in (loss, acc, rate, lr):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in (loss, acc):
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle(str(run_dir), fontsize=9)
    _save(plt, fig, out)
    return out


def overlay_curves(run_dirs: list[str | Path], out: str | Path) -> Path:
    """Overlay several runs: validation and test accuracy, training loss and firing rate per epoch.

    Each run is one colour, labelled by its directory name.

    Raises:
        UserError: no run directory given, or one without metrics.csv.
    """
    if not run_dirs:
        raise UserError("give at least one RUN_DIR to plot.")
    runs = [(Path(d), read_metrics(d)) for d in run_dirs]
    out = Path(out)
    panels = (("val_acc", "validation accuracy (%)", 100), ("test_acc", "test accuracy (%)", 100),
              ("train_loss", "training loss (total)", 1), ("firing_rate", "firing rate (test split)", 1))
    plt, fig, axes = _figure(2, 2, (11, 7))
    for ax, (column, title, factor) in zip(axes, panels):
        for run_dir, metrics in runs:
            values = metrics.get(column, [])
            if _has_values(values):
                ax.plot(metrics["epoch"], [factor * v for v in values], marker=".", label=run_dir.name)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if column == "train_loss" and ax.lines:
            ax.set_yscale("log")
    if axes[0].lines:
        axes[0].legend(fontsize=7)
    _save(plt, fig, out)
    return out
