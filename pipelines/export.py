"""Stage: export a trained student checkpoint to a NIR file (``ckd-events export``).

The student is rebuilt from the checkpoint alone (its stored config: architecture, width, neuron
and model options), no dataset needed. After writing, the file is read back with ``nir.read`` and
run by the reference interpreter (:mod:`ckdsnn_events.export.nir_run`) on random inputs next to
our model; the figures go into the result (and the CLI's output). The file appears only complete
(written to a temporary file beside it, then renamed).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from ckdsnn_events.atomic import atomic_path
from ckdsnn_events.checkpoints import load_checkpoint
from ckdsnn_events.config import from_dict
from ckdsnn_events.distill.config import RunConfig
from ckdsnn_events.distill.runs import model_from_checkpoint
from ckdsnn_events.errors import UserError

FORMATS = ("nir",)
# the round-trip check must reproduce the model this closely (see the README's NIR section)
MAX_SPIKE_FRACTION = 1e-4
MAX_LOGIT_DIFF = 1e-4


def load_student(checkpoint: str | os.PathLike, option: str = "--checkpoint"):
    """``(payload, model in eval mode, input shape (C, H, W))`` of a student checkpoint, on the CPU."""
    payload = load_checkpoint(checkpoint, option=option)
    if payload.get("kind") != "student":
        raise UserError(f"{option} '{checkpoint}' holds a {payload.get('kind')} model (an ANN); only spiking "
                        "students export to NIR. Give the best.pt of a `ckd-events distill` run.")
    config = from_dict(RunConfig, payload.get("config") or {})
    info = SimpleNamespace(num_classes=payload["num_classes"], in_channels=payload["in_channels"])
    _, model = model_from_checkpoint(payload, config, info, checkpoint, option)
    size = (payload.get("dataset") or {}).get("input_size")
    if not size:
        raise UserError(f"{option} '{checkpoint}' records no input size; re-save it with this version.")
    return payload, model.eval(), (payload["in_channels"], *size)


def _check_out(out: str | os.PathLike, overwrite: bool) -> Path:
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out '{out}' is a directory; give a file name such as model.nir.")
    if out.exists() and not overwrite:
        raise UserError(f"--out '{out}' already exists; pass --overwrite to replace it.")
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        raise UserError(f"--out '{out}': cannot write into '{out.parent}' (missing or not writable); "
                        "choose a writable folder.")
    return out


def run_export(checkpoint: str | os.PathLike, out: str | os.PathLike, form: str = "nir", dt: float | None = None,
               overwrite: bool = False, verify_samples: int = 1, seed: int = 0, pool: str = "sum") -> dict:
    """Export a student checkpoint; return what was written and the round-trip figures.

    Args:
        checkpoint: a student's best.pt / last.pt.
        out: the NIR file to write.
        form: "nir" (the only format).
        dt: simulation time step in seconds (default :data:`~ckdsnn_events.export.DEFAULT_DT`).
        overwrite: replace an existing ``out``.
        verify_samples: random samples for the round-trip check (0: skip it).
        seed: seed of those samples.
        pool: "sum" (SumPool2d) or "avg" (AvgPool2d, for snnTorch); see :func:`~ckdsnn_events.export.student_to_nir`.

    Returns:
        ``{"path", "nodes", "edges", "dt", "seconds" (build + write), "check": compare_with_model's
        dict or None, "check_seconds"}``.

    Raises:
        UserError: a bad checkpoint or option, a layer NIR cannot express, or a round trip that
        does not reproduce the model (the file is then not left behind).
    """
    import nir

    from ckdsnn_events.export import DEFAULT_DT, compare_with_model, student_to_nir
    from ckdsnn_events.export.neuron_map import check_dt

    from ckdsnn_events.export.nir_graph import POOLS

    if pool not in POOLS:
        raise UserError(f"unknown --pool {pool!r}; choose one of: {', '.join(POOLS)}.")
    if form not in FORMATS:
        raise UserError(f"unknown --format {form!r}; choose one of: {', '.join(FORMATS)}.")
    dt = check_dt(DEFAULT_DT if dt is None else dt)
    out = _check_out(out, overwrite)
    payload, model, input_shape = load_student(checkpoint)
    started = time.perf_counter()
    timesteps = int((payload.get("dataset") or {}).get("timesteps") or 1)
    graph = student_to_nir(model, input_shape, dt, metadata={"timesteps": timesteps, "num_classes": payload["num_classes"]},
                           pool=pool)
    result = {"path": str(out), "nodes": len(graph.nodes), "edges": len(graph.edges), "dt": dt, "check": None}
    with atomic_path(out) as tmp:
        nir.write(tmp, graph)
        result["seconds"] = time.perf_counter() - started
        if verify_samples:
            started = time.perf_counter()
            x = torch.rand(timesteps, verify_samples, *input_shape, generator=torch.Generator().manual_seed(seed)) * 2
            check = compare_with_model(model, nir.read(tmp), x, dt)
            result["check"], result["check_seconds"] = check, time.perf_counter() - started
            if (check["missing"] or check["fraction"] >= MAX_SPIKE_FRACTION
                    or check["max_logit_diff"] > MAX_LOGIT_DIFF):
                raise UserError(
                    f"the NIR graph of '{checkpoint}' does not reproduce the model ({check['differing']} of "
                    f"{check['spikes']} spikes differ, logits by up to {check['max_logit_diff']:.3g}, layers "
                    f"without a node: {check['missing'] or 'none'}); nothing was written. The student has a "
                    "layer the exporter maps wrongly: export a default SpikingResNet student, and report this.")
    return result
