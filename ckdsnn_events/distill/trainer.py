"""The training loop: an ANN teacher with CE, or a spiking student with CE + SAMD + NLD.

:func:`fit` is set-up, then one loop over epochs: seed, :func:`train_epoch`, :func:`evaluate`,
log, checkpoint. What differs between teacher and student is what one step minimises, and that
lives in one place: :class:`TeacherObjective` (CE) and :class:`DistillationObjective` (the
student's losses against the frozen teacher). Every source of randomness (sampler order,
augmentation, DataLoader worker seeds, NLD noise) is a function of (seed, epoch, rank), and
checkpoints are written at epoch ends, so an interrupted run resumed with ``resume=True`` ends with
the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ckdsnn_events import distributed
from ckdsnn_events.checkpoints import load_checkpoint, load_model_state, recover_run_dir, save_checkpoint
from ckdsnn_events.data.batch import Batch
from ckdsnn_events.data.loaders import build_loaders
from ckdsnn_events.distill.config import OptimConfig, RunConfig
from ckdsnn_events.distill.bn_stats import recompute_batchnorm_statistics
from ckdsnn_events.distill.curves import draw_curves
from ckdsnn_events.distill.losses import DistillationLoss
from ckdsnn_events.distill.precision import autocast, to_training_layout
from ckdsnn_events.distill.metrics import FiringRate, append_metrics, metrics_row, read_row, truncate_metrics
from ckdsnn_events.distill.runs import check_run_dir_free, checkpoint_header, make_model, prepare_device
from ckdsnn_events.errors import UserError
from ckdsnn_events.models.arch import check_same_options, recorded_options


def learning_rate(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up to ``base_lr``, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * progress))


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % (2**63)


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


class TeacherObjective:
    """The ANN teacher's step: CE on the teacher view of the batch (B, C, H, W)."""

    kind = "teacher"
    loss_module: nn.Module | None = None

    def __call__(self, model: nn.Module, batch: Batch, generator: torch.Generator):
        """``(logits (B, classes), loss, {term: detached value})``."""
        logits = model(batch.teacher_inputs)
        loss = F.cross_entropy(logits.float(), batch.labels)
        return logits, loss, {"ce": loss.detach(), "total": loss.detach()}


class DistillationObjective:
    """The student's step: its logits and last-stage spikes on (T, B, C, H, W) inputs, scored by
    ``loss_module`` (CE + SAMD + NLD, ...) against the frozen teacher's logits and features."""

    kind = "student"

    def __init__(self, teacher: nn.Module, loss_module: DistillationLoss):
        self.teacher = teacher
        self.loss_module = loss_module

    def __call__(self, model: nn.Module, batch: Batch, generator: torch.Generator):
        with torch.no_grad():
            teacher_logits, teacher_features = self.teacher(batch.teacher_inputs, return_features=True)
        logits, spikes = model(batch.inputs, return_spikes=True)
        loss, terms = self.loss_module(logits, batch.labels, teacher_logits=teacher_logits.float(),
                                       student_spikes=spikes,
                                       teacher_features=next(reversed(teacher_features.values())).float(),
                                       teacher_classifier_weight=self.teacher.fc.weight, generator=generator)
        return logits, loss, terms


def make_objective(kind: str, config: RunConfig, model: nn.Module, teacher: nn.Module | None,
                   device: torch.device) -> TeacherObjective | DistillationObjective:
    """The objective of ``kind``; a student's teacher is moved to ``device`` and frozen."""
    if kind == "teacher":
        return TeacherObjective()
    if teacher is None:
        raise ValueError("a student needs a teacher")
    # frozen weights; BN on running statistics ("eval") or, as the released code, batch ones ("train")
    teacher = teacher.to(device).train(config.loss.teacher_mode == "train").requires_grad_(False)
    loss = DistillationLoss(**config.loss.loss_kwargs(), student_channels=model.fc.in_features,
                            teacher_channels=teacher.fc.in_features).to(device)
    return DistillationObjective(teacher, loss)


def train_epoch(model: nn.Module, objective, optimizer: torch.optim.Optimizer, loader, device: torch.device,
                optim: OptimConfig, epoch: int, lr_at: Callable[[int], float], generator: torch.Generator,
                last_good: str, show: bool) -> tuple[dict, float]:
    """One pass over ``loader`` with the learning rate ``lr_at(step)`` set before every step.

    Returns:
        ``(train, lr)``: the mean of every loss term and ``acc`` over the epoch's samples of all
        ranks, and the last learning rate. A non-finite loss stops with a UserError naming
        ``last_good``, the checkpoint to resume from.
    """
    model.train()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    sums: dict[str, float] = {}
    correct = seen = 0
    bar = tqdm(loader, desc=f"{objective.kind} epoch {epoch + 1}/{optim.epochs}", leave=False, disable=not show,
               dynamic_ncols=True)
    for i, batch in enumerate(bar):
        lr = lr_at(epoch * len(loader) + i)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = batch.to(device, non_blocking=True)
        with autocast(device, optim.precision):
            logits, loss, terms = objective(model, batch, generator)
        if not torch.isfinite(loss.detach()):
            raise UserError(f"the loss became {loss.item()} at epoch {epoch + 1}, step {i + 1}; no weights "
                            f"were saved from this epoch. Last good checkpoint: {last_good}. Lower the "
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
    return {**train, "acc": float(reduced[-2] / reduced[-1])}, lr


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
    last_path, best_path, metrics_path = run_dir / "last.pt", run_dir / "best.pt", run_dir / "metrics.csv"
    device = prepare_device(config.device)
    dist = distributed.setup(device)
    data_config = replace(config.data, distributed=dist.enabled, world_size=dist.world_size, rank=dist.rank,
                          seed=config.seed)
    train_loader, val_loader, test_loader, info = build_loaders(data_config)
    if len(train_loader) == 0:
        raise UserError(f"the training split of '{config.data.root}' is empty ({info.n_train} samples); use more "
                        "recordings per class or a smaller data.val_fraction.")

    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model = make_model(kind, config, info).to(device)
    to_training_layout(model, device, optim.precision)  # channels_last for CUDA bf16-mixed
    resuming = resume and last_path.exists()  # --resume without a last.pt is a fresh start
    if kind == "student" and teacher is not None and config.model.init_from_teacher and not resuming:
        model.load_state_dict(teacher.state_dict())  # same names and shapes: the student mirrors the teacher
    if dist.enabled:  # before the optimizer is made: the conversion creates new BN parameters
        model = distributed.convert_batchnorm(model, device)
    objective = make_objective(kind, config, model, teacher, device)
    loss_module = objective.loss_module
    params = list(model.parameters()) + (list(loss_module.parameters()) if loss_module is not None else [])
    optimizer = torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)

    start_epoch, best_val, best_epoch = 0, -1.0, 0
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    check_run_dir_free(run_dir, resume)
    if resuming:
        state = load_checkpoint(last_path, kind, option="--resume")
        check_same_options(state.get("options"), recorded_options(model), f"--resume '{last_path}'")
        load_model_state(model, state["model"], last_path, "--resume")
        optimizer.load_state_dict(state["optimizer"])
        if loss_module is not None and state.get("loss_module"):
            loss_module.load_state_dict(state["loss_module"])
        start_epoch, best_val, best_epoch = state["epoch"], state["best_val"], state.get("best_epoch", 0)
        if dist.is_main:
            recover_run_dir(run_dir, state)  # a kill between last.pt and best.pt, temp files
            truncate_metrics(metrics_path, start_epoch)
    elif dist.is_main:  # no last.pt: a fresh start; rows a killed earlier start appended are stale
        truncate_metrics(metrics_path, 0)
    if dist.enabled:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    bare = model.module if dist.enabled else model
    header = {**checkpoint_header(kind, config, info), "options": recorded_options(bare)}
    steps_per_epoch = len(train_loader)
    total_steps, warmup_steps = optim.epochs * steps_per_epoch, optim.warmup_epochs * steps_per_epoch

    def lr_at(step: int) -> float:
        return learning_rate(step, total_steps, warmup_steps, optim.lr)

    row = {}
    for epoch in range(start_epoch, optim.epochs):
        torch.manual_seed(epoch_seed(config.seed, epoch, dist.rank))  # sampler, augmentation, workers
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        noise = torch.Generator(device=device).manual_seed(epoch_seed(config.seed + 1, epoch, dist.rank))
        started = time.perf_counter()
        last_good = f"'{last_path}' (after epoch {epoch})" if last_path.exists() else "none yet"
        train, lr = train_epoch(model, objective, optimizer, train_loader, device, optim, epoch, lr_at, noise,
                                last_good, show=progress and dist.is_main)
        recompute_batchnorm_statistics(model, train_loader, device, kind, optim.bn_stats_samples)  # 0: off
        val = evaluate(model, val_loader, device, kind, optim.precision)
        test = evaluate(model, test_loader, device, kind, optim.precision)
        row = metrics_row(epoch + 1, lr, time.perf_counter() - started, train, val, test)
        # model selection on validation accuracy; without a validation split, the last epoch wins
        score = val["acc"] if val["n"] else float(epoch)
        improved = score > best_val
        if improved:
            best_val, best_epoch = score, epoch + 1
        if dist.is_main:
            append_metrics(metrics_path, row)
            draw_curves(run_dir)  # curves.png, redrawn from metrics.csv every epoch
            state = {**header, "epoch": epoch + 1, "best_val": best_val, "best_epoch": best_epoch,
                     "metrics": row, "model": bare.state_dict(), "optimizer": optimizer.state_dict(),
                     "loss_module": loss_module.state_dict() if loss_module is not None else {}}
            save_checkpoint(last_path, state)
            if improved:
                save_checkpoint(best_path, {k: v for k, v in state.items() if k != "optimizer"})
            if progress:
                tqdm.write(epoch_summary(kind, row, optim.epochs))
        if dist.enabled:
            torch.distributed.barrier()

    best_row = read_row(metrics_path, best_epoch) if dist.is_main else row
    return {"run_dir": str(run_dir), "kind": kind, "best_epoch": best_epoch, "best_val_acc": best_row.get("val_acc"),
            "test_acc_at_best": best_row.get("test_acc"), "firing_rate_at_best": best_row.get("firing_rate"),
            "best_checkpoint": str(best_path), "last_checkpoint": str(last_path), "info": info}


def epoch_summary(kind: str, row: dict, epochs: int) -> str:
    """The line printed after each epoch."""
    return (f"{kind} epoch {row['epoch']}/{epochs}: loss {row['train_loss']:.4f} "
            f"train {row['train_acc']:.3f} val {row['val_acc']:.3f} test {row['test_acc']:.3f}"
            + (f" rate {row['firing_rate']:.3f}" if kind == "student" else "")
            + f" ({row['seconds']:.0f} s)")
