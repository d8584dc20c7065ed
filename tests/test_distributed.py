"""Batch norm over all ranks: equal to plain BatchNorm2d on the global batch, in 1 and 2 processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch
from torch import nn

from ckdsnn_events.distributed import GlobalBatchNorm2d, convert_batchnorm


def test_single_process_equals_batchnorm():
    torch.manual_seed(0)
    ref = nn.BatchNorm2d(3)
    ours = GlobalBatchNorm2d(3)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-1, 1)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(6, 3, 5, 4, dtype=torch.float64)
    ref.double(), ours.double()
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    ya, yb = ref(xa), ours(xb)
    torch.testing.assert_close(ya, yb)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(ref.weight.grad, ours.weight.grad)
    torch.testing.assert_close(ref.bias.grad, ours.bias.grad)
    torch.testing.assert_close(ref.running_mean, ours.running_mean)
    torch.testing.assert_close(ref.running_var, ours.running_var)
    ref.eval(), ours.eval()
    torch.testing.assert_close(ref(x), ours(x))


def test_convert_keeps_state():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))
    model[1].running_mean.fill_(0.5)
    converted = convert_batchnorm(model, torch.device("cpu"))
    assert isinstance(converted[1], GlobalBatchNorm2d) and isinstance(converted[2][0], GlobalBatchNorm2d)
    assert converted[1].running_mean[0] == 0.5


_TWO_RANKS = textwrap.dedent(
    """
    import torch, torch.distributed as dist
    from torch import nn
    from ckdsnn_events.distributed import GlobalBatchNorm2d, setup
    info = setup(torch.device("cpu"))
    torch.manual_seed(0)
    full = torch.randn(8, 3, 4, 4, dtype=torch.float64)
    g = torch.randn(8, 3, 4, 4, dtype=torch.float64)
    ref = nn.BatchNorm2d(3).double()
    ours = GlobalBatchNorm2d(3).double()
    xr = full.clone().requires_grad_(True)
    yr = ref(xr); yr.backward(g)
    part = slice(4 * info.rank, 4 * info.rank + 4)
    x = full[part].clone().requires_grad_(True)
    y = ours(x); y.backward(g[part])
    ok = torch.allclose(y, yr[part]) and torch.allclose(x.grad, xr.grad[part])
    wg = ours.weight.grad.clone(); dist.all_reduce(wg)
    ok = ok and torch.allclose(wg, ref.weight.grad) and torch.allclose(ours.running_var, ref.running_var)
    print(f"rank{info.rank} {'OK' if ok else 'MISMATCH'}")
    dist.destroy_process_group()
    """
)


def test_two_processes_equal_one_global_batch(tmp_path):
    script = tmp_path / "two_ranks.py"
    script.write_text(_TWO_RANKS)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True, text=True, timeout=120,
    )
    assert "rank0 OK" in result.stdout and "rank1 OK" in result.stdout, result.stdout + result.stderr
