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
    content_sha256  hash of all of the above (:func:`content_hash`), checked on load

``torch.load`` does not check the zip's CRCs, so a damaged file can load with other weights; and
fields edited inside a valid file reach code that trusts them. So :func:`load_checkpoint` checks
the content hash, then the type and range of every field (:func:`check_fields`), and refuses
non-finite weights, before anything uses the payload.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ckdsnn_events.atomic import atomic_path, remove_stale_temps
from ckdsnn_events.errors import UserError

FORMAT = "ckdsnn-events/1"


HASH_KEY = "content_sha256"


def content_hash(value: Any) -> str:
    """SHA-256 of a payload's content: keys, plain values, tensors' dtype, shape and bytes."""
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.hexdigest()


def _feed(digest, value: Any) -> None:
    if isinstance(value, dict):
        digest.update(b"{%d" % len(value))
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(b"[%d" % len(value))
        for item in value:
            _feed(digest, item)
    elif isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{tensor.dtype}{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    else:
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: never a torn checkpoint."""
    content = {"format": FORMAT, **{k: v for k, v in payload.items() if k != HASH_KEY}}
    with atomic_path(path) as tmp:
        torch.save({**content, HASH_KEY: content_hash(content)}, tmp)


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
    stored = payload.pop(HASH_KEY, None)
    if stored is None or stored != content_hash(payload):
        why = "carries no content hash (written by an older version)" if stored is None else "fails its content hash"
        raise UserError(f"{option} '{path}' {why}: it is damaged or was edited. Use an intact best.pt/last.pt, "
                        "or train again.")
    check_fields(payload, path, option)
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


def _is_int(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _tensors(value, name: str) -> str:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()):
        return f"'{name}' is not a state_dict (names -> tensors)"
    return ""


# field -> (required, check returning '' or what is wrong); bounds are far above any real model
_FIELDS = {
    "kind": (True, lambda v: "" if v in ("teacher", "student") else f"kind {v!r}"),
    "arch": (True, lambda v: "" if isinstance(v, str) and 0 < len(v) <= 100 else f"arch {v!r}"),
    "width": (True, lambda v: "" if v is None or _is_int(v, 1, 4096) else f"width {v!r}"),  # None: the arch's own
    "num_classes": (True, lambda v: "" if _is_int(v, 1, 100_000) else f"num_classes {v!r}"),
    "in_channels": (True, lambda v: "" if _is_int(v, 1, 1024) else f"in_channels {v!r}"),
    "neuron": (False, lambda v: "" if v is None or isinstance(v, dict) else "neuron is not a table"),
    "dataset": (True, lambda v: _check_dataset(v)),
    "epoch": (True, lambda v: "" if _is_int(v, 0, 10**7) else f"epoch {v!r}"),
    "best_epoch": (False, lambda v: "" if _is_int(v, 0, 10**7) else f"best_epoch {v!r}"),
    "best_val": (True, lambda v: "" if _is_real(v) else f"best_val {v!r}"),
    "metrics": (False, lambda v: "" if isinstance(v, dict) else "metrics is not a table"),
    "model": (True, lambda v: _tensors(v, "model") or ("" if v else "'model' holds no weights")),
    "optimizer": (False, lambda v: "" if isinstance(v, dict) else "optimizer is not a state_dict"),
    "loss_module": (False, lambda v: _tensors(v, "loss_module")),
    "config": (True, lambda v: "" if isinstance(v, dict) and all(isinstance(x, dict) for x in
                                 (v.get("data"), v.get("model"), v.get("optim"))) else "config lacks its tables"),
}


def _check_dataset(value) -> str:
    if not isinstance(value, dict):
        return "dataset is not a table"
    classes, size, steps = value.get("classes"), value.get("input_size"), value.get("timesteps")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        return "dataset.classes is not a list of names"
    if not isinstance(size, list) or len(size) != 2 or not all(_is_int(n, 1, 65536) for n in size):
        return f"dataset.input_size {size!r}"
    if steps is not None and not _is_int(steps, 1, 100_000):
        return f"dataset.timesteps {steps!r}"
    return ""


def check_fields(payload: dict, path, option: str) -> None:
    """Type and range of every field a checkpoint must hold, and finite weights; UserError naming the file."""
    problems = []
    for name, (required, check) in _FIELDS.items():
        if name not in payload:
            if required:
                problems.append(f"no '{name}'")
            continue
        problem = check(payload[name])
        if problem:
            problems.append(problem)
    if problems:
        raise UserError(f"{option} '{path}' is not a valid checkpoint: {'; '.join(problems)[:300]}.")
    bad = [k for k, v in payload["model"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise UserError(f"{option} '{path}' holds NaN or infinite weights ({', '.join(bad[:3])}"
                        f"{' ...' if len(bad) > 3 else ''}); the training diverged or the file is damaged.")


def build_for_state(factory: Callable[[], nn.Module], state: dict, path, option: str) -> nn.Module:
    """``factory()`` with ``state`` loaded, after checking on the meta device (no memory) that the
    model's parameter names and shapes are those of ``state``: a checkpoint whose fields describe
    a far larger model than its weights is refused before that model is allocated."""
    with torch.device("meta"):
        skeleton = factory()
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        missing = sorted(set(expected) - set(got))[:2]
        other = [k for k in expected if k in got and expected[k] != got[k]][:2]
        detail = "; ".join([f"missing {', '.join(missing)}"] * bool(missing) +
                           [f"{k}: {got[k]} in the file, {expected[k]} in the model" for k in other]) or "extra weights"
        raise UserError(f"{option} '{path}' does not fit the model it should hold ({detail}). It was made for "
                        "another architecture or width.")
    model = factory()
    load_model_state(model, state, path, option)
    return model


RUN_FILES = ["last.pt", "best.pt", "config.toml", "metrics.csv", "curves.png"]


def recover_run_dir(run_dir: str | os.PathLike, last_state: dict) -> None:
    """Make ``best.pt`` agree with the resumed ``last.pt`` after a kill; remove stale temp files.

    ``last.pt`` is written before ``best.pt`` at the end of an epoch and records ``best_epoch``,
    the epoch ``best.pt`` must hold. A kill between the two writes leaves the previous best: then
    ``last.pt`` itself is the best epoch's state, and ``best.pt`` is rewritten from it (the same
    content an uninterrupted run writes). Any other disagreement cannot be repaired.

    Raises:
        UserError: ``best.pt`` holds another epoch than ``last.pt`` says, and ``last.pt`` is not it.
    """
    run_dir = Path(run_dir)
    remove_stale_temps(run_dir, RUN_FILES)
    best_path, want = run_dir / "best.pt", last_state.get("best_epoch")
    held = None
    if best_path.exists():
        try:
            held = load_checkpoint(best_path, option="best.pt").get("epoch")
        except UserError:
            held = None  # damaged: rewritten below if last.pt is the best epoch
    if held == want:
        return
    if want == last_state.get("epoch"):
        save_checkpoint(best_path, {k: v for k, v in last_state.items() if k != "optimizer"})
        return
    raise UserError(
        f"'{best_path}' holds epoch {held}, but last.pt records epoch {want} as the best, and last.pt is epoch "
        f"{last_state.get('epoch')}: the run directory was changed by hand. Restore best.pt, or start the run "
        "again in a new --run-dir."
    )

