"""Checkpoints: saved atomically, state_dicts and plain data only, loaded with weights_only=True.

A checkpoint is a dict::

    format      "ckdsnn-events/1"
    kind        "teacher" or "student"
    arch        model name (resnet18/19/20), width, num_classes, in_channels, neuron (students)
    dataset     name, classes, input_size, timesteps
    epoch       epochs completed
    model       the model's state_dict; optimizer / loss_module state_dicts for resuming
    best_val    best validation accuracy so far; metrics: the epoch's metrics row
    config      the run's full resolved config as nested plain dicts
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ckdsnn_events.atomic import atomic_path
from ckdsnn_events.errors import UserError

FORMAT = "ckdsnn-events/1"


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: never a torn checkpoint."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def load_checkpoint(path: str | os.PathLike, kind: str | None = None, option: str = "--checkpoint") -> dict:
    """Load a checkpoint with ``torch.load(weights_only=True)``, on the CPU.

    Raises:
        UserError: missing, unreadable or foreign files, or the wrong ``kind``; the message names
        ``option`` and the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{option} '{path}' does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt file can make the unpickler raise almost anything (IndexError, KeyError, ...)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{option} '{path}' is not a readable checkpoint ({first[:200]}). It is truncated, "
            "corrupt, or not a ckdsnn-events checkpoint."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(
            f"{option} '{path}' is not a ckdsnn-events checkpoint (no '{FORMAT}' format tag). "
            "Use a best.pt/last.pt written by ckd-events train-teacher or distill."
        )
    if kind is not None and payload.get("kind") != kind:
        raise UserError(
            f"{option} '{path}' holds a {payload.get('kind')} model, but a {kind} is needed here."
        )
    return payload


def load_model_state(model: nn.Module, state: dict, path: str | os.PathLike, option: str) -> None:
    """``model.load_state_dict(state)`` with a UserError instead of a traceback on a mismatch."""
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()][:3]
        raise UserError(
            f"{option} '{path}' does not fit the model it should hold ({' '.join(lines)[:300]}). "
            "It was made for another architecture or width."
        ) from None

