"""A teacher from given weights instead of training one: ``distill --teacher-weights FILE|imagenet``.

The weights (a torchvision ``state_dict`` in a file, or torchvision's ImageNet-1K weights, which
need the network the first time) are loaded into the config's teacher and written as an ordinary
teacher checkpoint, ``<runs_root>/<dataset>/teacher-<arch>-weights-<digest>/best.pt``, that
``distill``, ``evaluate`` and ``energy`` then use like a trained one. The digest covers the source
and, for a file, its size and modification time, so other weights never reuse the conversion.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from ckdsnn_events.checkpoints import load_model_state, save_checkpoint
from ckdsnn_events.config import to_dict
from ckdsnn_events.distill.config import RunConfig
from ckdsnn_events.errors import UserError

__all__ = ["IMAGENET", "teacher_from_weights"]

IMAGENET = "imagenet"
# torchvision's ImageNet-1K weights of the tv-resnet teachers (the first, "V1" ones, 69.8/73.3/76.1 %)
_TORCHVISION_WEIGHTS = {"tv-resnet18": "ResNet18_Weights", "tv-resnet34": "ResNet34_Weights",
                        "tv-resnet50": "ResNet50_Weights"}


def _state_dict(source: str, arch: str) -> dict:
    if source == IMAGENET:
        if arch not in _TORCHVISION_WEIGHTS:
            raise UserError(f"--teacher-weights imagenet needs a torchvision teacher ({', '.join(_TORCHVISION_WEIGHTS)}), "
                            f"but model.teacher is {arch!r}; pass a state-dict file instead.")
        import torchvision

        weights = getattr(torchvision.models, _TORCHVISION_WEIGHTS[arch]).IMAGENET1K_V1
        try:
            return weights.get_state_dict(progress=True)
        except Exception as err:  # no network: URLError, socket errors, HTTP errors
            raise UserError(f"--teacher-weights imagenet: could not fetch torchvision's {arch} weights ({err}). "
                            f"Offline, download {weights.url} elsewhere and pass the file: --teacher-weights FILE.") from None
    path = Path(source)
    if not path.is_file():
        raise UserError(f"--teacher-weights '{path}' does not exist (give a file holding a torchvision state_dict, "
                        f"or 'imagenet').")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"--teacher-weights '{path}' is not a readable torch file ({type(err).__name__}).") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"--teacher-weights '{path}' does not hold a state_dict (a dict of tensors), as "
                        "torch.save(model.state_dict(), FILE) writes.")
    return state


def _digest(source: str) -> str:
    key = source
    if source != IMAGENET:
        stat = os.stat(source)
        key = f"{Path(source).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def teacher_from_weights(config: RunConfig, source: str, info) -> Path:
    """The teacher checkpoint holding ``source``'s weights for ``config``'s teacher (written once).

    Args:
        config: the run's config (``model.teacher`` names the architecture).
        source: a state-dict file or ``"imagenet"``.
        info: the dataset's :class:`~ckdsnn_events.data.loaders.DatasetInfo`.
    """
    from ckdsnn_events.distill.runs import make_model

    arch = config.model.teacher
    if source != IMAGENET and not Path(source).is_file():
        _state_dict(source, arch)  # raises the missing-file error
    out = Path(config.runs_root) / config.data.dataset / f"teacher-{arch}-weights-{_digest(source)}" / "best.pt"
    if out.is_file():
        return out
    teacher = make_model("teacher", config, info)
    load_model_state(teacher, _state_dict(source, arch), source, "--teacher-weights")
    payload = {"kind": "teacher", "arch": arch, "width": config.model.teacher_width, "num_classes": info.num_classes,
               "in_channels": info.in_channels, "neuron": None,
               "dataset": {"name": info.name, "kind": info.kind, "classes": list(info.classes),
                           "input_size": list(info.input_size), "timesteps": info.timesteps, "encoder": info.encoder},
               "config": to_dict(config), "epoch": 0, "best_val": 0.0, "best_epoch": 0, "metrics": {},
               "model": teacher.state_dict(), "teacher_weights": source}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, payload)
    return out
