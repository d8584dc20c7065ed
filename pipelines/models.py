"""Stage behind ``ckd-events models``: every teacher and student, sized for a dataset, before training.

A 300-epoch run is a poor way to find out that the student has 17 M parameters instead of 0.27 M.
This stage builds every architecture of :data:`ckdsnn_events.models.STUDENTS` the way ``distill``
would for ``--dataset`` (its classes and input channels) after the recipe and ``--preset`` (the
block options: last block, head, shortcut), on PyTorch's ``meta`` device (shapes only: no memory,
no initialisation), and counts its parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ckdsnn_events.data.event_folders import CIFAR10DVS_CLASSES, DIGITS_CLASSES
from ckdsnn_events.distill.config import RunConfig
from ckdsnn_events.models import STUDENTS, TEACHERS, ArchOptions, build_student, build_teacher, parameter_count
from ckdsnn_events.models.zoo import ZOO_STUDENTS, ZOO_TEACHERS

__all__ = ["DATASET_SHAPES", "NEURON_NOTES", "ModelRow", "model_table"]

# (classes, input channels) a dataset gives the models: 2 polarity channels for event frames, RGB
# for CIFAR, 1 for the grey digits; imagefolder: ImageNet-1K's 1000 classes (the real count is
# read from the folders at training time)
DATASET_SHAPES: dict[str, tuple[int, int]] = {
    "cifar10dvs": (len(CIFAR10DVS_CLASSES), 2),
    "digits-dvs": (len(DIGITS_CLASSES), 2),
    "cifar10": (10, 3),
    "cifar100": (100, 3),
    "imagefolder": (1000, 3),
    "digits": (len(DIGITS_CLASSES), 1),
    # tonic's datasets: the size of tonic's label space (ASL-DVS: 26 letters, of which J and Z are never
    # recorded; N-Caltech101: its 101 class folders, BACKGROUND_Google included)
    "dvsgesture": (11, 2),
    "nmnist": (10, 2),
    "ncaltech101": (101, 2),
    "asldvs": (26, 2),
    "pokerdvs": (4, 2),
}

# Which code computes the neuron dynamics of the students (teachers are ANNs: ReLU)
NEURON_CODES = {"fused": "fused kernel", "norse": "Norse"}  # by model.neuron_backend
NEURON_NOTES = {
    "fused kernel": "ckdsnn_events.models.neurons.lif_sequence: one autograd Function over T, numba kernels on CPU, "
                    "torch ops on CUDA; tested equal to Norse's neurons (spikes, membranes, gradients)",
    "Norse": "ckdsnn_events.models.norse_neurons: Norse's own lif_box / iaf feed-forward steps, one call per time "
             "step (model.neuron_backend=norse)",
}


@dataclass(frozen=True)
class ModelRow:
    """One line of the table: ``kind`` "teacher"/"student", ``chosen`` when the recipe names it."""

    kind: str
    name: str
    parameters: int
    options: dict
    neurons: str
    chosen: bool


def model_table(config: RunConfig, num_classes: int, in_channels: int) -> list[ModelRow]:
    """Every teacher and student with the config's widths and block options, for K classes, C inputs."""
    m = config.model
    options = ArchOptions(m.last_block, m.head, m.downsample)
    rows = []
    with torch.device("meta"):
        for name in TEACHERS:
            width = m.teacher_width if name == m.teacher else None
            # the ResNets' block options (models.arch) do not apply to the zoo's networks (models.zoo)
            block = {} if name in ZOO_TEACHERS else {"downsample": m.downsample}
            model = build_teacher(name, num_classes, in_channels, width, **block)
            rows.append(ModelRow("teacher", name, parameter_count(model), model.options.recorded("teacher"),
                                 "ReLU (ANN)", name == m.teacher))
        for name in STUDENTS:
            width = m.student_width if name == m.student else None
            block = ({"connect": m.connect} if name in ZOO_STUDENTS else
                     {"last_block": options.last_block, "head": options.head, "downsample": options.downsample})
            model = build_student(name, num_classes, in_channels, width, **block)
            rows.append(ModelRow("student", name, parameter_count(model), model.options.recorded("student"),
                                 f"{m.neuron.upper()}, {NEURON_CODES[m.neuron_backend]}", name == m.student))
    return rows
