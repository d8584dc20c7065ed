"""Training precision: ``32`` (float32 everywhere) or ``bf16-mixed`` (bf16 autocast), as Lightning names them.

What runs in which dtype under ``bf16-mixed``:

- convolutions and linear layers: bfloat16 (``torch.autocast``), their weights stay float32
  (autocast casts a bf16 copy per call; the optimizer updates the float32 master weights);
- batch norm: bf16 activations in and out, but its affine parameters and running statistics are
  float32 buffers of the model, which autocast never converts (``batch_norm`` is not on autocast's
  lists; CPU and CUDA kernels accept bf16 input with float32 parameters);
- LIF membranes: float32 (``models/neurons.py`` and ``models/triton_lif.py`` integrate half
  inputs in float32 and return spikes, exact 0/1, in bf16);
- losses: float32 (``distill/losses.py`` promotes half inputs; the trainer passes ``logits.float()``).

The released CKDSNN code trains CIFAR-10 in bf16 and CIFAR-100 in 16-mixed (Lightning); float16
needs a loss scaler and is not offered. ``auto`` is ``bf16-mixed`` on a CUDA device that supports
bf16 and ``32`` elsewhere. On CPU, ``bf16-mixed`` is refused unless the processor computes bf16
natively (AVX512-BF16 or AMX): without it oneDNN emulates bf16 and a step is several times slower
than in float32.

channels_last: on CUDA under ``bf16-mixed`` the model's 4-D weights are put in channels_last
(NHWC), the layout cuDNN's bf16 tensor-core convolutions use natively; activations follow the
weights' layout. This has not been measured on a GPU yet (``benchmarks/gpu_check.sh`` times both
layouts); on CPU it is not applied.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch
from torch import nn

from ckdsnn_events.errors import UserError

__all__ = ["PRECISIONS", "normalize_precision", "resolve_precision", "check_precision", "autocast",
           "cpu_supports_bf16", "use_channels_last", "to_training_layout"]

PRECISIONS = ("auto", "32", "bf16-mixed")
_ALIASES = {"32": "32", "fp32": "32", "32-true": "32", "bf16-mixed": "bf16-mixed", "bf16": "bf16-mixed",
            "auto": "auto"}  # fp32 / bf16: the names this option had before


def normalize_precision(precision: str | int) -> str:
    """``"auto"``, ``"32"`` or ``"bf16-mixed"`` for any accepted spelling (``32``, ``"fp32"``, ``"bf16"``)."""
    name = _ALIASES.get(str(precision).strip().lower())
    if name is None:
        raise UserError(f"precision {precision!r} is not known; use --precision {' | '.join(PRECISIONS)} "
                        "(optim.precision).")
    return name


@functools.lru_cache(maxsize=4)
def cpu_supports_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 natively: an ``avx512_bf16`` or ``amx_bf16`` flag in
    ``cpuinfo`` (default: Linux's /proc/cpuinfo). Where that file is absent (macOS, Windows), oneDNN's
    own check, which also accepts CPUs that emulate bf16 with AVX-512."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            try:
                return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
            except (AttributeError, RuntimeError):
                return False
    flags = set(cpuinfo.split())
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _device_type(device: torch.device | str) -> str:
    if isinstance(device, torch.device):
        return device.type
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if str(device).startswith("cuda") else "cpu"


def resolve_precision(device: torch.device | str, precision: str | int) -> str:
    """``"32"`` or ``"bf16-mixed"`` for ``device`` (a torch.device or a config name such as "auto").

    Raises:
        UserError: bf16-mixed asked for on a device that cannot run it well.
    """
    name, kind = normalize_precision(precision), _device_type(device)
    if name == "auto":
        return "bf16-mixed" if kind == "cuda" and torch.cuda.is_bf16_supported() else "32"
    if name == "bf16-mixed":
        if kind == "cpu" and not cpu_supports_bf16():
            raise UserError("--precision bf16-mixed needs a CPU with native bf16 (AVX512-BF16 or AMX; this one "
                            "has neither) or a CUDA GPU; use --precision 32 (optim.precision).")
        if kind == "cuda" and not torch.cuda.is_bf16_supported():
            raise UserError("--precision bf16-mixed needs a GPU with bf16 (compute capability 8.0+); this one "
                            "has none; use --precision 32 (optim.precision).")
        if kind not in ("cpu", "cuda"):
            raise UserError(f"--precision bf16-mixed is supported on cpu and cuda, not {kind}; use --precision 32.")
    return name


def check_precision(device: str, *precisions: str | int) -> None:
    """Fail early (before any run directory is written) on a precision the configured device cannot run."""
    for precision in precisions:
        resolve_precision(device, precision)


def autocast(device: torch.device, precision: str | int):
    """The context a training or evaluation step runs in: bf16 autocast for bf16-mixed, else nothing."""
    if resolve_precision(device, precision) == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def use_channels_last(device: torch.device, precision: str | int) -> bool:
    """channels_last for CUDA bf16 training (see the module docstring; not measured on a GPU yet)."""
    return device.type == "cuda" and resolve_precision(device, precision) == "bf16-mixed"


def to_training_layout(model: nn.Module, device: torch.device, precision: str | int) -> nn.Module:
    """``model`` with channels_last weights where :func:`use_channels_last` says so (in place)."""
    if use_channels_last(device, precision):
        model.to(memory_format=torch.channels_last)
    return model
