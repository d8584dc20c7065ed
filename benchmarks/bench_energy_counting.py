"""Cost of exact SOP counting: evaluation with SynapticOpCounter vs plain evaluation.

Target (from the issue): counted evaluation costs at most 1.3x plain evaluation on the same data.

The model is a spiking ResNet-20-like network defined here (the real student plugs in later):
stem conv + 3 stages of basic blocks at 16/32/64 channels, BN, a threshold-and-reset neuron
stepping through T on (T, B, ...) views, convs on the flattened (T*B, ...) batch, and the
AdaptiveAvgPool -> Flatten -> Linear classifier. Inputs: T=10, batch 32, 2 x 48 x 48 event-count
frames. Eval mode, no_grad; plain and counted runs alternate, and each time is the median of the
repeats, all in one process.

    python benchmarks/bench_energy_counting.py            # full size, ~3 min on 2 CPU cores
    python benchmarks/bench_energy_counting.py --quick    # batch 8, one block per stage
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from ckdsnn_events.energy.counting import SynapticOpCounter


class ThresholdNeuron(nn.Module):
    """Integrate-and-fire with decay 0.5, threshold 1 and hard reset, over (T, B, ...) inputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = torch.zeros_like(x[0])
        spikes = torch.empty_like(x)
        for t in range(x.shape[0]):
            v = v * 0.5 + x[t]
            fired = v > 1.0
            spikes[t] = fired
            v = v.masked_fill(fired, 0.0)
        return spikes


def _conv_bn(c_in: int, c_out: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out)
    )


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.branch1 = _conv_bn(c_in, c_out, stride)
        self.lif1 = ThresholdNeuron()
        self.branch2 = _conv_bn(c_out, c_out)
        self.shortcut = _conv_bn(c_in, c_out, stride, kernel=1) if stride != 1 or c_in != c_out else None
        self.lif2 = ThresholdNeuron()

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        steps, batch = spikes.shape[:2]
        flat = spikes.flatten(0, 1)
        out = self.lif1(self.branch1(flat).unflatten(0, (steps, batch)))
        out = self.branch2(out.flatten(0, 1))
        out = out + (flat if self.shortcut is None else self.shortcut(flat))
        return self.lif2(out.unflatten(0, (steps, batch)))


class SpikingResNet(nn.Module):
    def __init__(self, blocks_per_stage: int = 3, widths=(16, 32, 64), in_channels: int = 2, classes: int = 10):
        super().__init__()
        self.stem = _conv_bn(in_channels, widths[0])
        self.lif = ThresholdNeuron()
        layers, c_in = [], widths[0]
        for stage, width in enumerate(widths):
            for index in range(blocks_per_stage):
                layers.append(Block(c_in, width, 2 if stage > 0 and index == 0 else 1))
                c_in = width
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(c_in, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, batch = x.shape[:2]
        spikes = self.lif(self.stem(x.flatten(0, 1)).unflatten(0, (steps, batch)))
        spikes = self.layers(spikes)
        return self.fc(self.flatten(self.pool(spikes.flatten(0, 1)))).unflatten(0, (steps, batch)).mean(0)


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``fn()``; CPU time is steadier on a shared machine."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 8, one block per stage, 3 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is steadiest on a busy machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    steps, batch, blocks = (10, 8, 1) if args.quick else (10, 32, 3)
    repeats = args.repeats or (3 if args.quick else 5)

    torch.manual_seed(0)
    model = SpikingResNet(blocks).to(device).eval()
    for module in model.modules():  # untrained BN affine set so that neurons fire 10-45% of steps
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.fill_(1.0)
            module.bias.data.fill_(0.4)
    frames = torch.poisson(torch.full((steps, batch, 2, 48, 48), 0.3)).to(device)  # event counts
    counter = SynapticOpCounter(model, timesteps=steps, neurons=ThresholdNeuron)

    def plain() -> None:
        model(frames)

    def counted() -> None:
        with counter:
            model(frames)

    with torch.no_grad():
        plain(), counted()  # warm-up (allocator, coverage caches)
        counter.reset()
        plain_times, counted_times = [], []
        for _ in range(repeats):
            plain_times.append(_timed(plain))
            counted_times.append(_timed(counted))
    report = counter.report()
    threads = torch.get_num_threads()
    print(f"device={device} threads={threads} T={steps} batch={batch} blocks/stage={blocks} repeats={repeats}")
    print(f"counted {len(report.layers)} conv/linear layers, {len(report.neurons)} neuron layers; per sample: "
          f"{report.sops:.4g} SOPs, {report.macs:.4g} MACs, approx {report.approx_sops:.4g} SOPs, "
          f"firing rate {report.totals()['neuron_firing_rate']:.3f}, {report.energy_pj / 1e6:.4g} uJ")
    for clock, index in (("wall", 0), ("cpu", 1)):
        t_plain = statistics.median(t[index] for t in plain_times)
        t_counted = statistics.median(t[index] for t in counted_times)
        runs = lambda times: ", ".join(f"{t[index] * 1e3:.0f}" for t in times)  # noqa: E731
        print(f"[{clock}] plain eval    median {t_plain * 1e3:9.1f} ms  (runs: {runs(plain_times)})")
        print(f"[{clock}] counted eval  median {t_counted * 1e3:9.1f} ms  (runs: {runs(counted_times)})")
        best = min(t[index] for t in counted_times) / min(t[index] for t in plain_times)
        print(f"[{clock}] ratio counted/plain: median {t_counted / t_plain:.3f}, best-of {best:.3f}  (target <= 1.3)")

if __name__ == "__main__":
    main()
