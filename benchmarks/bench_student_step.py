"""What spiking costs in training: a student step against the same network as an ANN.

Three figures, default setting the CIFAR10-DVS protocol (ResNet-20, T=10, batch 32, 2 x 48 x 48
event-count frames, SGD with momentum):

1. **Student step / T x ANN step** (target <= 1.25 on CPU), once per neuron backend
   (``model.neuron_backend``, :mod:`ckdsnn_events.models.backends`): ``fused`` (our kernel,
   :mod:`ckdsnn_events.models.neurons`: all T steps in one autograd node, numba on CPU) and
   ``norse`` (Norse's ``lif_box_feed_forward_step`` called once per time step,
   :mod:`ckdsnn_events.models.norse_neurons`), the same weights, plus their ratio norse/fused.
   Student step: forward over (T, B, C, H, W), CE loss, backward, SGD step. ANN step: the same
   architecture and widths with ReLU (the teacher class), one step on the T*B frames as a
   (T*B, C, H, W) batch: the same convolution and BN work as the student, so the ratio is what
   the LIF neurons, the time handling and the classifier's time mean cost on top. (T ANN steps
   on B frames each would take longer than one on T*B frames; the ratio against the T*B batch is
   the stricter one.) The target applies to the default backend, ``fused``.
2. **Distillation step / CE-only student step** (target <= 1.15, fused backend): teacher
   forward under no_grad (eval mode, input: the frames summed over T), student forward with spikes, CE + SAMD + NLD
   (``DistillationLoss(beta=1, gamma=1)``), backward, SGD step; against the student step of 1.
3. **Peak memory** of one student training step with each backend (and of the ANN step of 1,
   for scale): peak resident set size (``VmHWM`` of /proc/self/status) after one training step minus the resident
   size (``VmRSS``) before them, in a fresh process per model, once the model, optimiser and input
   exist.
   Everything a step allocates counts: activations kept for backward, gradients, momentum
   buffers, allocator slack.

The four steps of 1 and 2 are timed in alternation (ANN, fused, norse, distillation, ANN, ...) in one
process, and each ratio is the median over repeats of the per-repeat ratio, so machine-speed
drift cancels. ``reuse_freed_memory()`` is called first, as the trainer does on CPU;
``--no-allocator-fix`` leaves glibc's defaults, to see what it buys.

    python benchmarks/bench_student_step.py                       # ~2 min on 2 CPU cores
    python benchmarks/bench_student_step.py --no-allocator-fix --skip-memory
    python benchmarks/bench_student_step.py --arch resnet19 --width 32 --batch 8 --timesteps 4 --size 32
    python benchmarks/bench_student_step.py --arch spikformer-4-384 --ann resnet19 --teacher resnet19 \
        -T 1 -B 8 --size 32 --channels 3 --classes 100 --skip-memory
"""

from __future__ import annotations

import argparse
import warnings
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_seconds, median_ratio  # noqa: E402

from ckdsnn_events.distill.losses import DistillationLoss  # noqa: E402
from ckdsnn_events.errors import UserError  # noqa: E402
from ckdsnn_events.models import (  # noqa: E402
    STUDENTS,
    TEACHERS,
    build_student,
    build_teacher,
    reuse_freed_memory,
    use_neuron_backend,
)

STEP_TARGET = 1.25
DISTILL_TARGET = 1.15


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet20-cifar16", choices=STUDENTS, help="student (and ANN) architecture")
    parser.add_argument("--ann", default=None, choices=TEACHERS,
                        help="the ANN of figure 1 (default: --arch itself; a student without an ANN twin, "
                             "such as spikformer-4-384, is compared with its teacher, e.g. --ann resnet19)")
    parser.add_argument("--teacher", default="resnet20-cifar16", choices=TEACHERS, help="teacher of the distillation step")
    parser.add_argument("--width", type=int, default=None, help="first-stage channels (default: the architecture's)")
    parser.add_argument("--teacher-width", type=int, default=None)
    parser.add_argument("--timesteps", "-T", type=int, default=10)
    parser.add_argument("--batch", "-B", type=int, default=32)
    parser.add_argument("--size", type=int, default=48, help="frame height and width")
    parser.add_argument("--channels", type=int, default=2, help="input channels (2: event polarities)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-allocator-fix", action="store_true", help="keep glibc's malloc thresholds")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the peak-memory measurement")
    parser.add_argument("--memory-child", choices=("student", "student-norse", "ann"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


class Workload:
    """Models, optimisers and one batch of the benchmark setting."""

    def __init__(self, args: argparse.Namespace,
                 need: tuple[str, ...] = ("ann", "student", "student-norse", "teacher")):
        torch.manual_seed(0)
        T, B, C, S = args.timesteps, args.batch, args.channels, args.size
        # event-count-like frames: small non-negative integers
        self.frames = torch.poisson(torch.full((T, B, C, S, S), 0.5))
        self.labels = torch.randint(0, args.classes, (B,))
        self.ann_inputs = self.frames.flatten(0, 1).clone()  # (T*B, C, H, W)
        self.ann_labels = self.labels.repeat(T)
        self.teacher_inputs = self.frames.sum(0)
        if "student" in need or "student-norse" in need:
            self.student = build_student(args.arch, args.classes, C, args.width).train()
            self.student_opt = _sgd(self.student)
        self.norse, self.norse_missing = None, None
        if "student-norse" in need:  # the same weights, Norse running the neurons
            try:
                self.norse = use_neuron_backend(copy.deepcopy(self.student), "norse")
                self.norse_opt = _sgd(self.norse)
            except UserError as err:  # e.g. SEW-ResNet's ATan surrogate: Norse has none
                self.norse_missing = str(err)
        if "ann" in need:
            ann_width = args.width if args.ann in (None, args.arch) else args.teacher_width
            self.ann = build_teacher(args.ann or args.arch, args.classes, C, ann_width).train()
            self.ann_opt = _sgd(self.ann)
        if "teacher" in need:
            self.teacher = build_teacher(args.teacher, args.classes, C, args.teacher_width).eval().requires_grad_(False)
            self.loss = DistillationLoss(beta=1.0, gamma=1.0)
            self.noise = torch.Generator().manual_seed(0)

    def ann_step(self) -> None:
        self.ann_opt.zero_grad(set_to_none=True)
        F.cross_entropy(self.ann(self.ann_inputs), self.ann_labels).backward()
        self.ann_opt.step()

    def student_step(self) -> None:
        self.student_opt.zero_grad(set_to_none=True)
        F.cross_entropy(self.student(self.frames), self.labels).backward()
        self.student_opt.step()

    def norse_step(self) -> None:
        self.norse_opt.zero_grad(set_to_none=True)
        F.cross_entropy(self.norse(self.frames), self.labels).backward()
        self.norse_opt.step()

    def distill_step(self) -> None:
        self.student_opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            teacher_logits, features = self.teacher(self.teacher_inputs, return_features=True)
        logits, spikes = self.student(self.frames, return_spikes=True)
        loss, _ = self.loss(
            logits, self.labels, teacher_logits=teacher_logits,
            student_spikes=next(reversed(spikes.values())),
            teacher_features=next(reversed(features.values())),
            teacher_classifier_weight=self.teacher.fc.weight, generator=self.noise,
        )
        loss.backward()
        self.student_opt.step()


def _sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)


def _status_bytes(field: str) -> int | None:
    """``VmRSS``/``VmHWM`` of this process from /proc/self/status (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return None


def _peak_rss_bytes() -> int:
    """Peak resident set size of this process.

    VmHWM where the kernel has it: it belongs to this process image. ``ru_maxrss`` survives
    ``exec`` on Linux, so in a child started by a large parent it would report the parent's peak.
    """
    hwm = _status_bytes("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_child(args: argparse.Namespace) -> None:
    """In a fresh process: peak RSS growth over one training step of one model; prints JSON."""
    work = Workload(args, need=(args.memory_child,))
    step = {"student": work.student_step, "student-norse": work.norse_step, "ann": work.ann_step}[args.memory_child]
    before = _status_bytes("VmRSS") or _peak_rss_bytes()
    step()  # the first step's peak is the step's peak: momentum buffers (parameter-sized) come after it
    print(json.dumps({"peak_bytes": _peak_rss_bytes() - before}))


def measure_memory(argv: list[str], model: str) -> float:
    """Peak RSS growth (MiB) of a training step of ``model``, measured in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, *argv, "--memory-child", model], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_bytes"] / 2**20


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated")  # Norse's import
    fix = False if args.no_allocator_fix else reuse_freed_memory()
    if args.memory_child:
        memory_child(args)
        return 0

    work = Workload(args)
    width = next(m for m in work.student.modules() if isinstance(m, torch.nn.Conv2d)).out_channels
    ann = "the same network as an ANN" if args.ann in (None, args.arch) else f"the ANN {args.ann}"
    print(f"{args.arch} student (first width {width}) vs {ann}; teacher {args.teacher}; "
          f"T={args.timesteps}, batch {args.batch}, {args.channels}x{args.size}x{args.size}, "
          f"{torch.get_num_threads()} torch threads, allocator fix {'on' if fix else 'off'}, "
          f"{args.repeats} repeats")
    steps = {"ann": work.ann_step, "student": work.student_step, "norse": work.norse_step, "distill": work.distill_step}
    if work.norse is None:
        del steps["norse"]
    times = interleaved_seconds(steps, repeats=args.repeats, warmup=1)
    step_ratio = median_ratio(times["student"], times["ann"])
    distill_ratio = median_ratio(times["distill"], times["student"])
    med = {name: statistics.median(t) for name, t in times.items()}
    if work.norse is None:
        norse_row = ("student step, CE, norse neurons", float("nan"), f"n/a: {work.norse_missing}")
    else:
        norse_row = ("student step, CE, norse neurons", med["norse"],
                     f"{median_ratio(times['norse'], times['ann']):.3f} x ANN; "
                     f"norse / fused = {median_ratio(times['norse'], times['student']):.3f}")
    rows = [
        (f"ANN step on T*B = {args.timesteps * args.batch} frames", med["ann"], "1.00"),
        ("student step, CE, fused neurons", med["student"], f"{step_ratio:.3f} x ANN"),
        norse_row,
        ("student step, CE + SAMD + NLD + teacher fwd", med["distill"], f"{distill_ratio:.3f} x CE step"),
    ]
    print(f"{'step':<46}{'median s':>10}  ratio (median of per-repeat ratios)")
    for name, seconds, ratio in rows:
        print(f"{name:<46}{seconds:>10.3f}  {ratio}")

    memory_ok = True
    if not args.skip_memory:
        child_argv = [a for a in argv if a != "--skip-memory"]
        student_mib = measure_memory(child_argv, "student")
        norse_mib = measure_memory(child_argv, "student-norse") if work.norse is not None else float("nan")
        ann_mib = measure_memory(child_argv, "ann")
        print(f"{'peak memory of a training step (RSS growth)':<46}{'':>10}  "
              f"student {student_mib:.0f} MiB (fused), {norse_mib:.0f} MiB (norse), ANN on T*B frames "
              f"{ann_mib:.0f} MiB ({student_mib / ann_mib:.2f}x, {norse_mib / ann_mib:.2f}x)")
        memory_ok = student_mib > 0

    step_ok = step_ratio <= STEP_TARGET
    distill_ok = distill_ratio <= DISTILL_TARGET
    print(f"{'PASS' if step_ok else 'FAIL'}: student step / T x ANN step = {step_ratio:.3f} (target <= {STEP_TARGET})")
    print(f"{'PASS' if distill_ok else 'FAIL'}: distillation step / CE step = {distill_ratio:.3f} "
          f"(target <= {DISTILL_TARGET})")
    return 0 if step_ok and distill_ok and memory_ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    sys.exit(main())
