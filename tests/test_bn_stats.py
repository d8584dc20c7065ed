"""BatchNorm statistics recomputed for the current weights (precise BN) before evaluations."""

import torch
from torch import nn

from ckdsnn_events.data.batch import Batch
from ckdsnn_events.distill.bn_stats import recompute_batchnorm_statistics


class _Loader:
    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


def _batches(n: int, b: int = 4):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        frames = torch.rand(3, b, 2, 5, 5, generator=g) * 10
        out.append(Batch(frames, frames.sum(0), torch.zeros(b, dtype=torch.int64)))
    return out


def test_running_statistics_become_the_average_over_the_batches():
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)).eval()
    batches = _batches(5)
    used = recompute_batchnorm_statistics(model, _Loader(batches), torch.device("cpu"), "teacher", samples=12)
    assert used == 3  # 4 samples a batch: 3 batches reach 12 samples
    assert not model.training  # mode restored
    with torch.no_grad():
        outs = [model[0](b.teacher_inputs) for b in batches[:3]]
    mean = torch.stack([o.mean(dim=(0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack([o.transpose(0, 1).flatten(1).var(dim=1, unbiased=True) for o in outs]).mean(0)
    assert torch.allclose(model[1].running_mean, mean, atol=1e-5)
    assert torch.allclose(model[1].running_var, var, rtol=1e-4)
    assert model[1].momentum == 0.1  # restored after the cumulative average


def test_zero_samples_changes_nothing_and_students_read_their_inputs():
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    before = model[1].running_mean.clone()
    assert recompute_batchnorm_statistics(model, _Loader(_batches(2)), torch.device("cpu"), "teacher", 0) == 0
    assert torch.equal(model[1].running_mean, before)
    seen = []

    class Student(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(2)

        def forward(self, x):
            seen.append(x.shape)
            return self.bn(x.flatten(0, 1))

    recompute_batchnorm_statistics(Student(), _Loader(_batches(2)), torch.device("cpu"), "student", 100)
    assert seen == [(3, 4, 2, 5, 5)] * 2  # time-major student inputs, every batch (fewer than 100 samples)
