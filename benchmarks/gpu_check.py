"""One GPU check: the CUDA tests and the GPU training figures of the paper's settings, as one table.

Rows (run by ``benchmarks/gpu_check.sh``; budget: 8 minutes on one GPU):

1. ``pytest -m cuda``: the tests that need a CUDA device (skipped everywhere else).
2. For ResNet-19 on CIFAR (3 x 32 x 32, direct encoding, T = 1 and 4) and the CIFAR10-DVS ResNet-20
   (2 x 48 x 48 event frames, T = 10): the student training step (forward, CE, backward, SGD) with
   the LIF on the Triton kernel, the torch loop and Norse, in ``32`` and ``bf16-mixed``; each as a
   ratio to the ANN step (the same network with ReLU, the teacher class) on the T*B frames as one
   batch, timed in alternation with it; the peak GPU memory of the step; bf16 rows once more with
   channels_last weights (Triton). Target: student <= 1.3x the ANN step at T = 4.
3. The loader's samples/s (``build_loaders``, fake CIFAR-10 in torchvision's layout, the training
   augmentation, T = 4 direct encoding) against the samples/s of the GPU step it feeds.
4. The LIF alone, Triton vs torch loop at T = 10 (``bench_lif.py``; target >= 3x).
5. A 2-process DDP student step over nccl, when two GPUs are present.

Without a CUDA device it prints "no CUDA device" and exits with status 1: a check that measured
nothing must not read as a pass. ``--dry-run`` runs every row on the CPU at toy sizes (Triton
through its interpreter, DDP over gloo) to check the script itself; its numbers mean nothing.

Not run on a GPU yet.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

STEP_TARGET = 1.3  # student step / ANN step on T*B frames at T = 4
SETTINGS = {  # name: (arch, channels, size, T, batch)
    "resnet19 CIFAR T=1": ("resnet19", 3, 32, 1, 64),
    "resnet19 CIFAR T=4": ("resnet19", 3, 32, 4, 64),
    "resnet20 DVS T=10": ("resnet20", 2, 48, 10, 32),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per row (median)")
    parser.add_argument("--skip-tests", action="store_true", help="leave out pytest -m cuda")
    parser.add_argument("--dry-run", action="store_true", help="CPU, toy sizes: checks the script, measures nothing")
    parser.add_argument("--ddp-child", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- LIF backends: swapped into a built student, module by module ---------------------------------


def _norse_forward(self, x):
    """Norse's boxed LIF stepped over T with the mapping of models/neurons.py (tested there)."""
    import torch
    from norse.torch.functional.lif_box import LIFBoxFeedForwardState, LIFBoxParameters, lif_box_feed_forward_step
    from norse.torch.functional.reset import reset_subtract, reset_value

    p, dt = self.params, 1e-3
    w, leak = p.surrogate_width, 1 - p.decay
    norse_p = LIFBoxParameters(tau_mem_inv=torch.as_tensor(leak / dt), v_leak=torch.as_tensor(0.0),
                               v_th=torch.as_tensor(p.v_th / w), v_reset=torch.as_tensor(p.v_reset / w),
                               method="triangle", alpha=1.0,
                               reset_method=reset_value if p.reset == "hard" else reset_subtract)
    state = LIFBoxFeedForwardState(v=torch.zeros_like(x[0], dtype=torch.float32))
    spikes = []
    for t in range(x.shape[0]):
        z, state = lif_box_feed_forward_step(x[t].float() / (leak * w), state, norse_p, dt=dt)
        spikes.append(z.to(x.dtype))
    return torch.stack(spikes)


def _triton_forward(self, x):
    from ckdsnn_events.models.triton_lif import lif_sequence_triton

    return lif_sequence_triton(x, self.params)[0]


def _torch_forward(self, x):
    from ckdsnn_events.models import lif_sequence

    return lif_sequence(x, self.params)[0]  # on CUDA: the loop of torch operations


BACKENDS = {"triton": _triton_forward, "torch": _torch_forward, "norse": _norse_forward}


def set_backend(model, backend: str):
    from ckdsnn_events.models import LIF

    for module in model.modules():
        if isinstance(module, LIF):
            module.forward = types.MethodType(BACKENDS[backend], module)
    return model


# --- timing ----------------------------------------------------------------------------------------


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_fn(model, inputs, labels, device, precision):
    import torch
    import torch.nn.functional as F

    from ckdsnn_events.distill.precision import autocast

    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            logits = model(inputs)
        F.cross_entropy(logits.float(), labels).backward()
        optimizer.step()
        _sync(device)
    return step


def timed(fns: dict, repeats: int, device) -> dict:
    """Per-repeat seconds of each function, alternating; peak GPU bytes of each (CUDA)."""
    import torch

    times, peaks = {k: [] for k in fns}, {}
    for name, fn in fns.items():  # warm-up (Triton compiles, cuDNN picks algorithms), then the peak
        fn()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            fn()
            peaks[name] = torch.cuda.max_memory_allocated(device) - base
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {"times": times, "peaks": peaks}


def step_rows(args, device, sizes, rows: list) -> None:
    """Rows of section 2, appended to ``rows`` as they are measured: one per setting, precision and backend."""
    import torch

    from ckdsnn_events.distill.precision import cpu_supports_bf16
    from ckdsnn_events.models import build_student, build_teacher

    precisions = ["32"]
    if (device.type == "cuda" and torch.cuda.is_bf16_supported()) or (device.type == "cpu" and cpu_supports_bf16()):
        precisions.append("bf16-mixed")
    for name, (arch, channels, size, steps, batch) in SETTINGS.items():
        size, batch, width = sizes(size, batch)
        torch.manual_seed(0)
        if channels == 3:  # direct encoding: one image repeated over T (stride 0), as the loader gives it
            image = torch.randn(batch, channels, size, size, device=device)
            frames = image.expand(steps, *image.shape)
        else:
            frames = torch.poisson(torch.full((steps, batch, channels, size, size), 0.5)).to(device)
        labels = torch.randint(0, 10, (batch,), device=device)
        ann = build_teacher(arch, 10, channels, width).to(device).train()
        for precision in precisions:
            fns = {"ann": step_fn(ann, frames.flatten(0, 1).contiguous(), labels.repeat(steps), device, precision)}
            variants = [(b, False) for b in BACKENDS] + ([("triton", True)] if precision != "32" else [])
            for backend, channels_last in variants:
                student = set_backend(build_student(arch, 10, channels, width), backend).to(device).train()
                if channels_last:
                    student.to(memory_format=torch.channels_last)
                key = backend + (" channels_last" if channels_last else "")
                fns[key] = step_fn(student, frames, labels, device, precision)
            print(f"  timing {name} {precision}: {', '.join(fns)}", file=sys.stderr, flush=True)
            result = timed(fns, args.repeats, device)
            ann_s = statistics.median(result["times"]["ann"])
            for key in fns:
                if key == "ann":
                    continue
                ratio = statistics.median(a / b for a, b in zip(result["times"][key], result["times"]["ann"]))
                peak = result["peaks"].get(key)
                rows.append((name, precision, key, statistics.median(result["times"][key]) * 1e3, ann_s * 1e3,
                             ratio, None if peak is None else peak / 2**20, batch / statistics.median(result["times"][key])))


def loader_row(args, batch: int, workers: int, images: int) -> float:
    """Samples/s of the CIFAR-10 training loader (T = 4, direct) over fake images."""
    import torchvision
    from bench_loaders import write_fake_cifar10

    from ckdsnn_events.data.loaders import DataConfig, build_loaders

    # the fake files cannot match torchvision's md5 sums: accept them (only the checksum is bypassed)
    torchvision.datasets.cifar.check_integrity = lambda *a, **k: True
    with tempfile.TemporaryDirectory() as tmp:
        write_fake_cifar10(Path(tmp), images, 10)
        train, *_ = build_loaders(DataConfig(dataset="cifar10", root=tmp, batch_size=batch, workers=workers,
                                             timesteps=4, val_fraction=0.0))
        for _ in train:  # one epoch to start workers and warm caches
            pass
        start, seen = time.perf_counter(), 0
        for b in train:
            seen += len(b.labels)
        return seen / (time.perf_counter() - start)


def cuda_tests() -> str:
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                          str(HERE.parent / "tests")], capture_output=True, text=True, cwd=HERE.parent)
    lines = [ln for ln in out.stdout.strip().splitlines() if re.search(r"\d+ (passed|failed|skipped|deselected)", ln)]
    summary = lines[-1].strip("= ") if lines else (out.stdout + out.stderr).strip().splitlines()[-1:]
    return f"{summary} (exit {out.returncode})"


# --- DDP ----------------------------------------------------------------------------------------------


def ddp_child(rank: int, dry_run: bool, repeats: int) -> None:
    """One of two processes: DDP student steps (ResNet-20 DVS setting, Triton LIF); rank 0 prints the median."""
    import torch
    import torch.distributed as dist

    from ckdsnn_events.models import build_student

    backend = "gloo" if dry_run else "nccl"
    device = torch.device("cpu") if dry_run else torch.device("cuda", rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=rank, world_size=2)
    size, batch, width = (8, 2, 4) if dry_run else (48, 32, None)
    torch.manual_seed(0)
    model = set_backend(build_student("resnet20", 10, 2, width), "triton").to(device)
    model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank] if device.type == "cuda" else None)
    frames = torch.poisson(torch.full((10, batch, 2, size, size), 0.5)).to(device)
    labels = torch.randint(0, 10, (batch,), device=device)
    step = step_fn(model, frames, labels, device, "32")
    step()
    times = []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    if rank == 0:
        print(f"DDP_MEDIAN_MS {statistics.median(times) * 1e3:.3f}")
    dist.destroy_process_group()


def ddp_row(args) -> str:
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(29500 + os.getpid() % 1000)}
    if args.dry_run:
        env["TRITON_INTERPRET"] = "1"
    cmd = [sys.executable, __file__, "--repeats", str(args.repeats)] + (["--dry-run"] if args.dry_run else [])
    procs = [subprocess.Popen(cmd + ["--ddp-child", str(r)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    if any(p.returncode for p in procs):
        return "FAILED: " + " | ".join(err.strip().splitlines()[-1] if err.strip() else "?" for _, err in outs)
    match = re.search(r"DDP_MEDIAN_MS ([\d.]+)", outs[0][0])
    return f"{match.group(1)} ms per step (resnet20 DVS, batch per GPU as above, 2 ranks)" if match else "no output"


# --- the table -----------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # before the Triton kernels are first jitted
    if args.ddp_child is not None:
        ddp_child(args.ddp_child, args.dry_run, args.repeats)
        return 0
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: gpu_check measures GPU training steps and needs one; nothing was measured. "
              "(benchmarks/gpu_check.sh --dry-run checks the script itself on the CPU.)")
        return 1
    started = time.perf_counter()
    device = torch.device("cpu") if args.dry_run else torch.device("cuda", 0)
    if args.dry_run:
        args.repeats = 1
        sizes = lambda size, batch: (8, 2, 4)  # noqa: E731 - toy shapes: width 4, batch 2, 8x8
    else:
        sizes = lambda size, batch: (size, batch, None)  # noqa: E731
    where = "DRY RUN on CPU: toy sizes, Triton interpreted; NOT a measurement" if args.dry_run else \
        f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    print(f"gpu_check: {where}")

    signal.signal(signal.SIGTERM, _stop)  # gpu_check.sh's 8-minute timeout: print what is measured
    head, rows, tail, status = [], [], [], 0  # tests + LIF, step rows, loader + DDP
    try:
        if not args.skip_tests and not args.dry_run:
            head.append(("tests", "pytest -m cuda", cuda_tests()))
        from bench_lif import measure

        shape = [3, 2, 4, 5, 5] if args.dry_run else [10, 32, 64, 48, 48]
        lif = measure(shape, "float32", args.repeats, args.dry_run)
        head.append(("LIF alone", f"T={shape[0]} {tuple(shape)} fwd+bwd",
                      f"triton {lif['seconds']['triton'] * 1e3:.2f} ms, torch loop "
                      f"{lif['seconds']['torch loop'] * 1e3:.2f} ms: {lif['ratio']:.2f}x (target >= 3)"))
        step_rows(args, device, sizes, rows)
        cifar4 = [r for r in rows if r[0] == "resnet19 CIFAR T=4" and r[2] == "triton"]
        workers = 2 if args.dry_run else min(8, os.cpu_count() or 1)
        loader = loader_row(args, sizes(32, 64)[1], workers, 20 if args.dry_run else 10000)
        for _, precision, _, _, _, _, _, gpu_rate in cifar4:
            tail.append(("loader", f"CIFAR-10 T=4 loader, {workers} workers vs step ({precision})",
                          f"{loader:.0f} samples/s vs GPU step {gpu_rate:.0f} samples/s ({loader / gpu_rate:.2f}x)"))
        gpus = torch.cuda.device_count() if not args.dry_run else 2
        tail.append(("DDP", "2-process student step", ddp_row(args) if gpus >= 2 else f"skipped: {gpus} GPU"))
    except _Stopped:
        status = 1
    finally:
        if _stopped:  # also when the signal surfaced wrapped in another exception (e.g. inside backward)
            tail.append(("STOPPED", "time limit", "killed by the timeout: the rows printed are all that was measured"))
        table = head + _step_table(rows) + tail or [("", "", "nothing measured")]
        width = [max(len(r[i]) for r in table) for i in range(2)]
        print(f"{'section':<{width[0]}}  {'what':<{width[1]}}  result")
        for section, what, result in table:
            print(f"{section:<{width[0]}}  {what:<{width[1]}}  {result}")
        print(f"gpu_check: {time.perf_counter() - started:.0f} s", flush=True)
    return status


class _Stopped(Exception):
    pass


_stopped: list[int] = []


def _stop(signum, frame):
    _stopped.append(signum)
    raise _Stopped()


def _step_table(rows: list[tuple]) -> list[tuple[str, str, str]]:
    out = []
    for name, precision, backend, ms, ann_ms, ratio, peak, _ in rows:
        target = f" (target <= {STEP_TARGET})" if name.endswith("T=4") else ""
        memory = f", peak {peak:.0f} MiB" if peak is not None else ""
        out.append((f"{name} {precision}", f"student step, {backend}",
                    f"{ms:.1f} ms = {ratio:.2f}x ANN step on T*B frames ({ann_ms:.1f} ms){target}{memory}"))
    return out


if __name__ == "__main__":
    sys.exit(main())
