"""Shared pieces of the distillation losses: argument checks, dtype promotion, the batch-mean KL.

Bad hyper-parameters are user mistakes (they come from recipes and the CLI), so the checks raise
:class:`~ckdsnn_events.errors.UserError`; bad tensor shapes are programming errors (ValueError).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from ckdsnn_events.errors import UserError

VARIANTS = ("paper", "reference")


def check_temperature(name: str, value: float) -> None:
    """A temperature must be a finite number > 0."""
    if not is_real(value) or not value > 0:
        raise UserError(f"{name} must be a positive number (got {value!r}); CKDSNN uses 2.0.")


def check_weight(name: str, value: float) -> None:
    """A loss weight must be a finite number >= 0 (0 turns its term off)."""
    if not is_real(value) or not value >= 0:
        raise UserError(
            f"{name} must be a non-negative number (got {value!r}); use 0 to turn the term off."
        )


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise UserError(
            f"unknown {name} {value!r}; choose one of: {', '.join(repr(c) for c in choices)}."
        )


def is_real(value) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def promote(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32 (softmax and KL lose too much in half precision)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def kl_from_log_probs(log_p_teacher: torch.Tensor, log_p_student: torch.Tensor) -> torch.Tensor:
    """``sum_rows KL(p_t || p_s) / n_rows`` from (N, D) log-probabilities."""
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)


def check_logits(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    """Both logits must be (B, K) of the same shape."""
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            "student and teacher logits must both be (B, K), got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )


def require(*named: tuple[str, Optional[torch.Tensor]], term: str) -> None:
    """Every named input of an enabled term must be given."""
    missing = [name for name, value in named if value is None]
    if missing:
        raise ValueError(f"{term} is enabled but {', '.join(missing)} was not given")
