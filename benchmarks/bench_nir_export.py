"""Time of the NIR export of the CIFAR ResNet-19 student, and its round-trip check.

Model: ``build_student("resnet19", num_classes=10, in_channels=3)`` (width 128, 12.6 M
parameters), LIF neurons (decay 0.5), 3 x 32 x 32 input, T = 4 (the CIFAR setting of CKDSNN);
BN statistics randomised so that folding does real work. Timed, median over repeats:

* export: ``student_to_nir`` (shape pass, BN folding, node building) + ``nir.write`` to a file;
* for scale, ``torch.save`` of the same model's state_dict (what saving the weights alone costs;
  no other tool exports this model to NIR: nirtorch's tracer does not know our LIF module);
* the round-trip check ``ckd-events export`` runs after writing: ``nir.read`` + our model and the
  reference interpreter on 2 random samples, with the fraction of differing spikes.

    python benchmarks/bench_nir_export.py            # 5 repeats
    python benchmarks/bench_nir_export.py --quick    # 2 repeats
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nir
import torch
from torch import nn

from common import median_seconds

from ckdsnn_events.export import compare_with_model, student_to_nir
from ckdsnn_events.models import build_student


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    torch.manual_seed(0)
    model = build_student("resnet19", num_classes=10, in_channels=3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.uniform_(0.0, 0.3)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        path, weights = Path(tmp) / "resnet19.nir", Path(tmp) / "resnet19.pt"
        export = median_seconds(lambda: nir.write(path, student_to_nir(model, (3, 32, 32))), repeats)
        save = median_seconds(lambda: torch.save(model.state_dict(), weights), repeats)
        start = time.perf_counter()
        x = torch.rand(4, 2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        check = compare_with_model(model, nir.read(path), x, 1e-3)
        check_s = time.perf_counter() - start
        size = path.stat().st_size
    print(f"resnet19 student, {params / 1e6:.1f} M parameters, 3x32x32, T=4, {torch.get_num_threads()} threads")
    print(f"export (build + nir.write): {export:.2f} s median of {repeats}  ({size / 2**20:.1f} MiB file)")
    print(f"torch.save of the state_dict: {save:.2f} s  -> export / save = {export / save:.1f}x")
    print(f"round-trip check on 2 samples: {check_s:.2f} s; {check['differing']} of {check['spikes']} spikes differ "
          f"(fraction {check['fraction']:.2e}), max |logit diff| {check['max_logit_diff']:.2e}")


if __name__ == "__main__":
    main()
