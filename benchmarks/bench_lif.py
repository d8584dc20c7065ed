"""The LIF alone: the fused Triton kernel against the torch loop, forward + backward, at T = 10.

Workload: a (T, B, C, H, W) = (10, 32, 64, 48, 48) float32 current (the first stage of the
CIFAR10-DVS ResNet-20 at batch 32), the default neuron (decay 0.5, threshold 1, hard reset,
triangle surrogate); one timed call is the forward over all T steps plus the backward from a
random upstream gradient on the spikes. The torch loop is :func:`ckdsnn_events.models.lif_sequence`
on CUDA (its per-step torch operations, what runs on CUDA without the kernel, and the way Norse
and snnTorch step neurons). Median over repeats, the two alternating; target: Triton >= 3x.

    python benchmarks/bench_lif.py                 # on a CUDA GPU
    python benchmarks/bench_lif.py --dry-run       # CPU, tiny, Triton through its interpreter: checks the script only

Not run on a GPU yet: no figure of it is claimed anywhere.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

TARGET = 3.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[10, 32, 64, 48, 48], help="T B C H W")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU, tiny shape, Triton interpreted: exercises the code, measures nothing")
    return parser.parse_args(argv)


def measure(shape: list[int], dtype_name: str, repeats: int, dry_run: bool) -> dict:
    """Median seconds per forward + backward of each backend, and the ratio torch / Triton."""
    if dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # read when triton_lif jits its kernels (on first use)
    import torch

    from ckdsnn_events.models import LIFParameters, lif_sequence
    from ckdsnn_events.models.triton_lif import lif_sequence_triton, triton_available

    device = torch.device("cpu" if dry_run else "cuda")
    dtype = getattr(torch, dtype_name)
    g = torch.Generator(device=device).manual_seed(0)
    x = (torch.randn(shape, generator=g, device=device) + 0.5).to(dtype).requires_grad_()
    grad = torch.randn(shape, generator=g, device=device).to(dtype)
    if not triton_available(x):
        raise SystemExit("Triton is not available for this tensor (CUDA + triton needed)")
    params = LIFParameters()

    def step(fn):
        def run():
            spikes, _ = fn(x, params)
            (g_x,) = torch.autograd.grad(spikes, x, grad)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return g_x
        return run

    runs = {"triton": step(lif_sequence_triton), "torch loop": step(lif_sequence)}
    for run in runs.values():  # warm-up: compilation, allocator
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    ratio = statistics.median(a / b for a, b in zip(times["torch loop"], times["triton"]))
    return {"seconds": med, "ratio": ratio, "device": str(device), "elements_per_step": x[0].numel()}


def main(argv=None) -> int:
    args = parse_args(argv)
    shape = [3, 2, 4, 5, 5] if args.dry_run else args.shape
    repeats = 1 if args.dry_run else args.repeats
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device: bench_lif.py measures the GPU kernel (use --dry-run to check the script on CPU)")
            return 1
    result = measure(shape, args.dtype, repeats, args.dry_run)
    label = "DRY RUN on CPU (interpreter), not a measurement" if args.dry_run else result["device"]
    print(f"LIF forward + backward, shape {tuple(shape)} {args.dtype}, {repeats} repeats, {label}")
    for name, seconds in result["seconds"].items():
        print(f"  {name:<12}{seconds * 1e3:10.3f} ms")
    verdict = "" if args.dry_run else (" PASS" if result["ratio"] >= TARGET else " FAIL")
    print(f"  torch loop / triton = {result['ratio']:.2f}x (target >= {TARGET}){verdict}")
    return 0 if args.dry_run or result["ratio"] >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
