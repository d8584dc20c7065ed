"""Reports of an ablation study: statistics over seeds, a markdown table, a CSV and a PNG.

Per row: mean, sample standard deviation and the 95 % confidence interval of the mean test
accuracy over its seeds, ``mean +- t_{0.975, n-1} * std / sqrt(n)`` (Student's t, n seeds). Per
row against the study's baseline: the paired differences ``d_s = acc_row(s) - acc_baseline(s)``
over the seeds both have, with their mean and 95 % t-interval (the interval excludes 0 when the
difference is significant at the 5 % level by a paired t-test). One seed gives no interval ("-").
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

from ckdsnn_events.atomic import atomic_path
from ckdsnn_events.config import to_dict

__all__ = ["summarize", "t_interval", "write_reports"]


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, std, half_width)`` of the t confidence interval of the mean (NaN for n < 2)."""
    from scipy.stats import t

    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = statistics.fmean(values)
    if n < 2:
        return mean, math.nan, math.nan
    std = statistics.stdev(values)
    return mean, std, float(t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)


def summarize(rows, baseline: str, results: dict[str, dict[int, dict]]) -> list[dict]:
    """Per row: accuracies by seed (%), their t-interval, paired differences against ``baseline``."""
    base = results[baseline]
    table = []
    for row in rows:
        runs = results[row.name]
        accs = {seed: 100 * r["test_acc"] for seed, r in sorted(runs.items())}
        mean, std, half = t_interval(list(accs.values()))
        paired = [accs[s] - 100 * base[s]["test_acc"] for s in accs if s in base]
        d_mean, d_std, d_half = t_interval(paired) if row.name != baseline else (math.nan,) * 3
        table.append({"row": row.name, "label": row.label, "n": len(accs), "accs": accs, "mean": mean, "std": std,
                      "ci": half, "diff_mean": d_mean, "diff_std": d_std, "diff_ci": d_half, "n_pairs": len(paired)})
    return table


def _fmt(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _markdown(study: str, table: list[dict], baseline_label: str, header: list[str]) -> str:
    lines = header + ["",
                      f"| {study} | n | test accuracy % mean | std | 95 % CI | paired diff. vs {baseline_label} "
                      "(95 % CI) | per seed |", "|---|---|---|---|---|---|---|"]
    for r in table:
        ci = "-" if math.isnan(r["ci"]) else f"[{_fmt(r['mean'] - r['ci'])}, {_fmt(r['mean'] + r['ci'])}]"
        if math.isnan(r["diff_mean"]):
            diff = "baseline" if r["n_pairs"] and r["label"] == baseline_label else "-"
        else:
            interval = "" if math.isnan(r["diff_ci"]) else \
                f" [{_fmt(r['diff_mean'] - r['diff_ci'])}, {_fmt(r['diff_mean'] + r['diff_ci'])}]"
            diff = f"{round(r['diff_mean'], 2) + 0.0:+.2f}{interval}"  # + 0.0: no "-0.00"
        seeds = ", ".join(f"{a:.2f}" for a in r["accs"].values())
        lines.append(f"| {r['label']} | {r['n']} | {_fmt(r['mean'])} | {_fmt(r['std'])} | {ci} | {diff} | {seeds} |")
    return "\n".join(lines) + "\n"


def _plot(table: list[dict], title: str, path: Path, teacher_acc: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(table)), 4.5))
    for i, r in enumerate(table):
        accs = list(r["accs"].values())
        jitter = [i + 0.08 * (j - (len(accs) - 1) / 2) for j in range(len(accs))]
        ax.scatter(jitter, accs, s=18, color="tab:gray", zorder=2, label="one seed" if i == 0 else None)
        if not math.isnan(r["ci"]):
            ax.errorbar([i + 0.3], [r["mean"]], yerr=[[r["ci"]], [r["ci"]]], fmt="o", color="tab:red",
                        capsize=4, zorder=3, label="mean, 95 % CI" if i == 0 else None)
        elif not math.isnan(r["mean"]):
            ax.scatter([i + 0.3], [r["mean"]], color="tab:red", zorder=3)
    if teacher_acc is not None:
        ax.axhline(100 * teacher_acc, color="tab:blue", linestyle="--", linewidth=1,
                   label=f"teacher {100 * teacher_acc:.2f} %")
    ax.set_xticks(range(len(table)))
    ax.set_xticklabels([r["label"] for r in table], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy (%) at the best validation epoch")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_reports(out: Path, study: str, rows, baseline: str, results: dict[str, dict[int, dict]], config,
                  teacher_path: Path, quick: bool, teacher_acc: float | None = None) -> dict:
    """Write ``ablation.md``, ``ablation.csv``, ``ablation.png`` and ``ablation.json`` into ``out``.

    ``teacher_acc``: the teacher's test accuracy (fraction) at the epoch of its checkpoint, when known.
    """
    table = summarize(rows, baseline, results)
    baseline_label = next(r.label for r in rows if r.name == baseline)
    seeds = sorted({s for runs in results.values() for s in runs})
    header = [f"Study `{study}`{' (--quick)' if quick else ''}: {len(seeds)} seeds ({', '.join(map(str, seeds))}), "
              f"{config.optim.epochs} student epochs, teacher `{teacher_path}`; test accuracy at the best "
              "validation epoch."]
    runs = [r for by_seed in results.values() for r in by_seed.values()]
    own = [r for r in runs if not r.get("reused")]
    minutes = sum(r.get("seconds", 0.0) for r in own) / 60
    reused = f", {len(runs) - len(own)} read from another study's identical run" if len(own) < len(runs) else ""
    header.append(f"Training time: {minutes:.1f} min for {len(own)} runs{reused} (the runs' epoch times).")
    if teacher_acc is not None:
        header.append(f"Teacher: {100 * teacher_acc:.2f} % test accuracy at the epoch of its checkpoint.")
    markdown = _markdown(study, table, baseline_label, header)
    paths = {"md": out / "ablation.md", "csv": out / "ablation.csv", "png": out / "ablation.png",
             "json": out / "ablation.json"}
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(markdown)
    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["study", "row", "label", "seed", "test_acc", "val_acc", "best_epoch", "seconds", "run_dir"])
        for row in rows:
            for seed, r in sorted(results[row.name].items()):
                writer.writerow([study, row.name, row.label, seed, f"{100 * r['test_acc']:.4f}",
                                 f"{100 * r['val_acc']:.4f}", r["best_epoch"], f"{r.get('seconds', 0.0):.1f}",
                                 r["run_dir"]])
    _plot(table, header[0].split(";")[0], paths["png"], teacher_acc)
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps({"study": study, "quick": quick, "baseline": baseline, "seeds": seeds,
                                   "teacher": str(teacher_path), "teacher_test_acc": teacher_acc,
                                   "config": to_dict(config), "table": table},
                                  indent=2, default=str))
    return {"out_dir": str(out), "paths": {k: str(v) for k, v in paths.items()}, "table": table,
            "markdown": markdown}
