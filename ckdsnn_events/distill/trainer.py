"""The training loop: an ANN teacher with CE, or a spiking student with CE + SAMD + NLD.

One function, :func:`fit`, reads top to bottom: set up, then per epoch seed, train, evaluate,
log, checkpoint. Every source of randomness (sampler order, augmentation, DataLoader worker seeds,
NLD noise) is a function of (seed, epoch, rank), and checkpoints are written at epoch ends, so an
interrupted run resumed with ``resume=True`` ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import csv
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ckdsnn_events import distributed
from ckdsnn_events.atomic import atomic_path
from ckdsnn_events.checkpoints import load_checkpoint, load_model_state, recover_run_dir, save_checkpoint
from ckdsnn_events.config import to_dict
from ckdsnn_events.data.loaders import DatasetInfo, build_loaders
from ckdsnn_events.distill.config import OptimConfig, RunConfig
from ckdsnn_events.distill.losses import DistillationLoss
from ckdsnn_events.errors import UserError
from ckdsnn_events.models import LIF, LIFParameters, build_student, build_teacher, reuse_freed_memory

METRIC_COLUMNS = (
    "epoch", "lr", "seconds", "train_loss", "train_ce", "train_samd", "train_nld", "train_kd",
    "train_feature_kd", "train_acc", "val_acc", "val_loss", "test_acc", "test_loss", "firing_rate",
)


def pick_device(name: str) -> torch.device:
    """``"auto"``: CUDA when available (the local rank's GPU under torchrun), else CPU."""
    import os

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device '{name}' is not a torch device; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device '{name}' asked for, but CUDA is not available here; use --device cpu.")
    return device


def autocast(device: torch.device, precision: str):
    """bf16 autocast where asked for (``auto``: on CUDA devices that support bf16)."""
    use = precision == "bf16" or (
        precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    return torch.autocast(device.type, dtype=torch.bfloat16) if use else contextlib.nullcontext()


def learning_rate(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up to ``base_lr``, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * progress))


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % (2**63)


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


def make_model(kind: str, config: RunConfig, info: DatasetInfo) -> nn.Module:
    """The teacher or student the config names, for the dataset ``info`` describes."""
    m = config.model
    if kind == "teacher":
        return build_teacher(m.teacher, num_classes=info.num_classes, in_channels=info.in_channels, width=m.teacher_width)
    neuron = LIFParameters(decay=m.decay, v_th=m.threshold, reset=m.reset, surrogate_width=m.surrogate_width)
    return build_student(m.student, num_classes=info.num_classes, in_channels=info.in_channels,
                         width=m.student_width, neuron=neuron)


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, kind: str, precision: str = "auto") -> dict:
    """Accuracy, mean CE loss and (students) firing rate over a loader; summed over all ranks."""
    if loader is None:
        return {"acc": float("nan"), "loss": float("nan"), "firing_rate": float("nan"), "n": 0}
    model.eval()
    meter = FiringRate(model) if kind == "student" else None
    totals = torch.zeros(3, dtype=torch.float64)  # correct, loss sum, samples
    for batch in loader:
        batch = batch.to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(batch.teacher_inputs if kind == "teacher" else batch.inputs)
        logits = logits.float()
        totals += torch.tensor([(logits.argmax(1) == batch.labels).sum().item(),
                                F.cross_entropy(logits, batch.labels, reduction="sum").item(), len(batch.labels)],
                               dtype=torch.float64)
    rate = float("nan")
    if meter is not None:
        spikes = distributed.all_reduce_sum(torch.tensor([meter.spikes, meter.count], dtype=torch.float64))
        rate = float(spikes[0] / spikes[1]) if spikes[1] else float("nan")
        meter.close()
    distributed.all_reduce_sum(totals)
    n = max(1.0, float(totals[2]))
    return {"acc": float(totals[0]) / n, "loss": float(totals[1]) / n, "firing_rate": rate, "n": int(totals[2])}


def _truncate_metrics(path: Path, keep_epochs: int) -> None:
    if not path.exists():
        return
    with open(path, newline="") as f:  # a row torn by a kill has no whole epoch number: dropped
        rows = [r for r in csv.DictReader(f) if (r.get("epoch") or "").isdigit() and int(r["epoch"]) <= keep_epochs]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _append_metrics(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, METRIC_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def fit(
    config: RunConfig,
    kind: str,
    run_dir: str | Path,
    optim: OptimConfig | None = None,
    teacher: nn.Module | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Train a ``kind`` ("teacher" or "student") model; write checkpoints and metrics to ``run_dir``.

    Args:
        config: the run's resolved configuration (written to ``run_dir/config.toml`` by the caller).
        optim: optimiser settings (default ``config.optim``).
        teacher: the frozen ANN teacher (students only).
        resume: continue from ``run_dir/last.pt``.

    Returns:
        summary dict: best validation accuracy and its epoch, its test accuracy, paths.
    """
    optim = optim or config.optim
    run_dir = Path(run_dir)
    device = pick_device(config.device)
    if device.type == "cpu":
        reuse_freed_memory()  # keep freed activations in the heap: ~1.8x faster CPU student steps
    dist = distributed.setup(device)
    data_config = replace(config.data, distributed=dist.enabled, world_size=dist.world_size, rank=dist.rank,
                          seed=config.seed)
    train_loader, val_loader, test_loader, info = build_loaders(data_config)

    if len(train_loader) == 0:
        raise UserError(f"the training split of '{config.data.root}' is empty ({info.n_train} samples); use more "
                        "recordings per class or a smaller data.val_fraction.")
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model = make_model(kind, config, info).to(device)
    if kind == "student" and teacher is not None and config.model.init_from_teacher and not resume:
        model.load_state_dict(teacher.state_dict())  # same names and shapes: the student mirrors the teacher
    if dist.enabled:  # before the optimizer is made: the conversion creates new BN parameters
        model = distributed.convert_batchnorm(model, device)
    loss_fn = None
    if kind == "student":
        if teacher is None:
            raise ValueError("a student needs a teacher")
        teacher = teacher.to(device).eval().requires_grad_(False)  # frozen: BN statistics never move
        loss_fn = DistillationLoss(**asdict(config.loss), student_channels=model.fc.in_features,
                                   teacher_channels=teacher.fc.in_features).to(device)
    params = list(model.parameters()) + (list(loss_fn.parameters()) if loss_fn is not None else [])
    optimizer = torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)

    start_epoch, best_val, best_epoch = 0, -1.0, 0
    last_path, best_path, metrics_path = run_dir / "last.pt", run_dir / "best.pt", run_dir / "metrics.csv"
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    if resume and last_path.exists():
        state = load_checkpoint(last_path, kind, option="--resume")
        load_model_state(model, state["model"], last_path, "--resume")
        optimizer.load_state_dict(state["optimizer"])
        if loss_fn is not None and state.get("loss_module"):
            loss_fn.load_state_dict(state["loss_module"])
        start_epoch, best_val, best_epoch = state["epoch"], state["best_val"], state.get("best_epoch", 0)
        if dist.is_main:
            recover_run_dir(run_dir, state)  # a kill between last.pt and best.pt, temp files
            _truncate_metrics(metrics_path, start_epoch)
    elif last_path.exists():
        raise UserError(f"'{run_dir}' already holds a run (last.pt). Pass --resume to continue it, "
                        "or choose another --run-dir.")
    if dist.enabled:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    bare = model.module if dist.enabled else model

    steps_per_epoch = len(train_loader)
    total_steps, warmup_steps = optim.epochs * steps_per_epoch, optim.warmup_epochs * steps_per_epoch
    payload = {"kind": kind, "arch": config.model.teacher if kind == "teacher" else config.model.student,
               "width": config.model.teacher_width if kind == "teacher" else config.model.student_width,
               "num_classes": info.num_classes, "in_channels": info.in_channels,
               "neuron": asdict(LIFParameters(config.model.decay, config.model.threshold, reset=config.model.reset,
                                              surrogate_width=config.model.surrogate_width)) if kind == "student" else None,
               "dataset": {"name": info.name, "kind": info.kind, "classes": list(info.classes),
                           "input_size": list(info.input_size), "timesteps": info.timesteps,
                           "encoder": info.encoder},
               "config": to_dict(config)}
    row = {}
    for epoch in range(start_epoch, optim.epochs):
        torch.manual_seed(epoch_seed(config.seed, epoch, dist.rank))  # sampler, augmentation, workers
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        noise = torch.Generator(device=device).manual_seed(epoch_seed(config.seed + 1, epoch, dist.rank))
        model.train()
        sums: dict[str, float] = {}
        correct = seen = 0
        started = time.perf_counter()
        bar = tqdm(train_loader, desc=f"{kind} epoch {epoch + 1}/{optim.epochs}", leave=False,
                   disable=not (progress and dist.is_main), dynamic_ncols=True)
        for i, batch in enumerate(bar):
            lr = learning_rate(epoch * steps_per_epoch + i, total_steps, warmup_steps, optim.lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = batch.to(device, non_blocking=True)
            with autocast(device, optim.precision):
                if kind == "teacher":
                    logits = model(batch.teacher_inputs)
                    loss = F.cross_entropy(logits.float(), batch.labels)
                    terms = {"ce": loss.detach(), "total": loss.detach()}
                else:
                    with torch.no_grad():
                        teacher_logits, teacher_features = teacher(batch.teacher_inputs, return_features=True)
                    logits, spikes = model(batch.inputs, return_spikes=True)
                    loss, terms = loss_fn(logits, batch.labels, teacher_logits=teacher_logits.float(),
                                          student_spikes=next(reversed(spikes.values())),
                                          teacher_features=next(reversed(teacher_features.values())).float(),
                                          teacher_classifier_weight=teacher.fc.weight, generator=noise)
            if not torch.isfinite(loss.detach()):
                good = f"'{last_path}' (after epoch {start_epoch if epoch == start_epoch else epoch})" \
                    if last_path.exists() else "none yet"
                raise UserError(f"the loss became {loss.item()} at epoch {epoch + 1}, step {i + 1}; no weights "
                                f"were saved from this epoch. Last good checkpoint: {good}. Lower the "
                                "learning rate (--lr) or the loss weights, then --resume.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if optim.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, optim.grad_clip)
            optimizer.step()
            n = len(batch.labels)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value) * n
            correct += int((logits.detach().argmax(1) == batch.labels).sum())
            seen += n
            bar.set_postfix(loss=f"{sums['total'] / seen:.3f}", acc=f"{correct / seen:.3f}", refresh=False)
        bar.close()
        names = sorted(sums)
        reduced = distributed.all_reduce_sum(torch.tensor([sums[k] for k in names] + [correct, seen], dtype=torch.float64))
        train = {k: float(reduced[j] / reduced[-1]) for j, k in enumerate(names)}
        val = evaluate(model, val_loader, device, kind, optim.precision)
        test = evaluate(model, test_loader, device, kind, optim.precision)
        row = {"epoch": epoch + 1, "lr": lr, "seconds": time.perf_counter() - started,
               "train_loss": train.get("total"), "train_ce": train.get("ce"), "train_samd": train.get("samd"),
               "train_nld": train.get("nld"), "train_kd": train.get("kd"), "train_feature_kd": train.get("feature_kd"),
               "train_acc": float(reduced[-2] / reduced[-1]), "val_acc": val["acc"], "val_loss": val["loss"],
               "test_acc": test["acc"], "test_loss": test["loss"], "firing_rate": test["firing_rate"]}
        # model selection on validation accuracy; without a validation split, the last epoch wins
        score = val["acc"] if val["n"] else float(epoch)
        improved = score > best_val
        if improved:
            best_val, best_epoch = score, epoch + 1
        if dist.is_main:
            _append_metrics(metrics_path, row)
            state = {**payload, "epoch": epoch + 1, "best_val": best_val, "best_epoch": best_epoch,
                     "metrics": row, "model": bare.state_dict(), "optimizer": optimizer.state_dict(),
                     "loss_module": loss_fn.state_dict() if loss_fn is not None else {}}
            save_checkpoint(last_path, state)
            if improved:
                save_checkpoint(best_path, {k: v for k, v in state.items() if k not in ("optimizer",)})
            if progress:
                tqdm.write(f"{kind} epoch {epoch + 1}/{optim.epochs}: loss {row['train_loss']:.4f} "
                           f"train {row['train_acc']:.3f} val {val['acc']:.3f} test {test['acc']:.3f}"
                           + (f" rate {test['firing_rate']:.3f}" if kind == "student" else "")
                           + f" ({row['seconds']:.0f} s)")
        if dist.enabled:
            torch.distributed.barrier()
    best_row = _best_row(metrics_path, best_epoch) if dist.is_main else row
    return {"run_dir": str(run_dir), "kind": kind, "best_epoch": best_epoch, "best_val_acc": best_row.get("val_acc"),
            "test_acc_at_best": best_row.get("test_acc"), "firing_rate_at_best": best_row.get("firing_rate"),
            "best_checkpoint": str(best_path), "last_checkpoint": str(last_path), "info": info}


def _best_row(path: Path, epoch: int) -> dict:
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if int(r["epoch"]) == epoch:
                return {k: (float(v) if v not in ("", None) and k != "epoch" else v) for k, v in r.items()}
    return {}
