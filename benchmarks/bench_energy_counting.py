"""Cost of exact SOP counting: evaluation with counting vs plain evaluation, on the real student.

Target (issue 5): evaluation with exact counting (``energy.report.measure_student``, what
``ckd-events energy`` runs) costs at most 1.3x plain evaluation (``distill.trainer.evaluate``, what
``ckd-events evaluate`` and every epoch's validation run) on the same data.

Model: the spiking ResNet-20 student (``build_student("resnet20-cifar16", in_channels=2)``, LIF neurons),
eval mode; inputs: CIFAR10-DVS-shaped event-count frames, T=10, 2 x 48 x 48, Poisson counts; BN
affine set so that the untrained neurons fire like a trained student (~10-20 % of steps). The two
evaluations alternate over the same in-memory batches (``common.interleaved_seconds``), the ratio
is the median of per-repeat ratios, all in one process.

    python benchmarks/bench_energy_counting.py             # batch 32, 4 batches, 5 repeats (~3 min, 2 cores)
    python benchmarks/bench_energy_counting.py --quick     # batch 8, 2 batches, 3 repeats
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn

from common import interleaved_seconds, median_ratio

from ckdsnn_events.data.batch import Batch
from ckdsnn_events.distill.trainer import evaluate
from ckdsnn_events.energy.presets import energy_costs
from ckdsnn_events.energy.report import measure_student
from ckdsnn_events.models import LIF, build_student, reuse_freed_memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 8, 2 batches, 3 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--width", type=int, default=None, help="student width (default: ResNet-20's own)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        reuse_freed_memory()
    steps, batch, n_batches = (10, 8, 2) if args.quick else (10, 32, 4)
    repeats = args.repeats or (3 if args.quick else 5)

    torch.manual_seed(0)
    model = build_student("resnet20-cifar16", num_classes=10, in_channels=2, width=args.width).to(device).eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.fill_(1.0)
            module.bias.data.fill_(0.4)
    batches = [Batch(f, f.sum(0), torch.randint(0, 10, (batch,)))
               for f in (torch.poisson(torch.full((steps, batch, 2, 48, 48), 0.3)) for _ in range(n_batches))]
    costs = energy_costs()
    results = {}

    def plain() -> None:
        results["plain"] = evaluate(model, batches, device, "student", precision="fp32")

    def counted() -> None:
        results["counted"] = measure_student(model, batches, device, steps, costs, neurons=LIF, progress=False)

    times = interleaved_seconds({"plain": plain, "counted": counted}, repeats=repeats, warmup=1)
    report, scored = results["counted"]
    assert abs(scored["acc"] - results["plain"]["acc"]) < 1e-9, "counting changed the predictions"
    print(f"device={device} threads={torch.get_num_threads()} T={steps} batch={batch} batches={n_batches} "
          f"repeats={repeats} student=resnet20-cifar16 width={args.width or 'default'}")
    totals = report.totals()
    print(f"per sample: {report.sops:.4g} SOPs, {report.macs:.4g} MACs, approx {report.approx_sops:.4g} SOPs, "
          f"firing rate {totals['neuron_firing_rate']:.3f}, {report.energy_pj / 1e6:.4g} uJ")
    for name in ("plain", "counted"):
        runs = ", ".join(f"{t * 1e3:.0f}" for t in times[name])
        print(f"{name:8s} eval median {statistics.median(times[name]) * 1e3:8.1f} ms  (runs: {runs})")
    ratio = median_ratio(times["counted"], times["plain"])
    print(f"ratio counted/plain: {ratio:.3f}  (target <= 1.3)  {'PASS' if ratio <= 1.3 else 'FAIL'}")


if __name__ == "__main__":
    main()
