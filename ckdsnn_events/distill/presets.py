"""Two named sets of settings, one switch each: the paper's formulas, or what the released code computes.

``--preset NAME`` (or ``preset = "NAME"`` at the top of a recipe) applies one of these on top of
the recipe and under the command line: recipe < preset < CLI options < ``--set``. Each entry is
one option of its own, documented where it is defined (:mod:`ckdsnn_events.models.arch` for the
model, :mod:`ckdsnn_events.distill.losses` for the loss forms, ``LossConfig`` for the teacher's
mode), so any single difference can be switched back with ``--set``.

``reference``: the training step of the released CKDSNN code (github.com/SinoLeu/CKDSNN,
``plt_train_kd_ckd_snn.py``, ``LitModel.training_step``, with ``snn_models/resnet_models.py``
and ``ann_models/resnet.py``):

- student: ``nn.ReLU`` ending the last block (``is_last=True``; SAMD reads its output), the fc2
  -> fc1 projector head after the mean over T, AvgPool -> 1x1 conv -> BN shortcuts; teacher: the
  same shortcut (``ann_models/resnet.py``'s ``PreActBasicBlock``);
- the teacher in train mode (BN on batch statistics: Lightning trains the whole ``LitModel``,
  teacher included, and nothing calls ``teacher.eval()``);
- SAMD: ``getForwardCAM`` / ``compute_cam`` (classic CAM of the teacher's *predicted* class) /
  ``compute_kl_divergence`` (``samd_variant = "reference"``, ``samd_target_class = "predicted"``);
- NLD: ``soft_loss_smooth`` (``nld_variant = "reference"``), its config's ``noise_weight: 0.9``
  being the clean term's weight, i.e. ours 0.1;
- both at temperature 2, weights 1 (``loss = CE + l3 + noise_loss``), no other term;
- TET's ``LIFSpike`` neuron: decay 0.5, threshold 1, hard reset, triangle surrogate of width 1.

``paper``: the formulas of the paper (``samd_variant = nld_variant = "paper"``, Grad-CAM of the
label), a LIF last block, one linear classifier, each architecture's own shortcut, a frozen
teacher in eval mode; the same neuron and weights.
"""

from __future__ import annotations

import copy

from ckdsnn_events.errors import UserError

__all__ = ["PRESETS", "apply_preset"]

_NEURON = {"decay": 0.5, "threshold": 1.0, "reset": "hard", "surrogate_width": 1.0}
_WEIGHTS = {"beta": 1.0, "gamma": 1.0, "alpha_kd": 0.0, "alpha_feat": 0.0, "samd_temperature": 2.0,
            "nld_temperature": 2.0, "noise_weight": 0.1}

PRESETS: dict[str, dict[str, dict]] = {
    "reference": {
        "model": {**_NEURON, "last_block": "relu", "head": "projector", "downsample": "avgpool"},
        "loss": {**_WEIGHTS, "samd_variant": "reference", "nld_variant": "reference",
                 "samd_target_class": "predicted", "teacher_mode": "train"},
    },
    "paper": {
        "model": {**_NEURON, "last_block": "lif", "head": "linear", "downsample": None},
        "loss": {**_WEIGHTS, "samd_variant": "paper", "nld_variant": "paper", "samd_target_class": "label",
                 "teacher_mode": "eval"},
    },
}


def apply_preset(data: dict, name: str) -> dict:
    """A copy of the nested config ``data`` with preset ``name``'s settings written over it.

    Raises:
        UserError: ``name`` is not a preset (the message lists them).
    """
    if name not in PRESETS:
        raise UserError(f"preset {name!r} is not a valid choice; choose one of: {', '.join(PRESETS)}.")
    data = copy.deepcopy(data)
    for section, values in PRESETS[name].items():
        node = data.setdefault(section, {})
        for key, value in values.items():
            if value is None:
                node.pop(key, None)  # TOML has no null: an absent key is the default (None)
            else:
                node[key] = value
    data["preset"] = name
    return data
