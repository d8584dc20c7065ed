"""Models: ANN teachers and Norse-checked LIF students, built from names like torchvision constructors.

::

    from ckdsnn_events.models import build_teacher, build_student, LIFParameters
    teacher = build_teacher("resnet20", num_classes=10, in_channels=2)        # (B, C, H, W) -> (B, K)
    student = build_student("resnet20", num_classes=10, in_channels=2,
                            neuron=LIFParameters(decay=0.5, v_th=1.0))        # (T, B, C, H, W) -> (B, K)
    logits, features = teacher(images, return_features=True)   # features["layer3"]: last map
    logits, spikes = student(frames, return_spikes=True)        # spikes[student.spike_keys[-1]]

See :mod:`.registry` for the architectures, :mod:`.neuron_params` for the neuron options,
:mod:`.arch` for the ResNets' block options (``last_block``, ``head``,
``downsample``: ``build_student(..., head="projector")``), :mod:`.backends` for the two neuron backends (:mod:`.neurons` fused, :mod:`.norse_neurons` Norse),
:mod:`.allocator` for why CPU training calls :func:`reuse_freed_memory` first.
"""

from ckdsnn_events.models.allocator import reuse_freed_memory
from ckdsnn_events.models.backends import (
    NEURON_BACKENDS,
    make_neuron,
    neuron_options,
    neuron_parameters,
    use_neuron_backend,
)
from ckdsnn_events.models.neuron_params import NEURONS, RESETS, SURROGATES, NeuronParameters
from ckdsnn_events.models.neurons import LIF, LIFParameters, lif_sequence, lif_sequence_reference
from ckdsnn_events.models.arch import ArchOptions
from ckdsnn_events.models.registry import STUDENTS, TEACHERS, build_student, build_teacher, parameter_count

__all__ = [
    "LIF",
    "LIFParameters",
    "NeuronParameters",
    "NEURONS",
    "RESETS",
    "SURROGATES",
    "NEURON_BACKENDS",
    "make_neuron",
    "neuron_parameters",
    "neuron_options",
    "use_neuron_backend",
    "lif_sequence",
    "lif_sequence_reference",
    "build_teacher",
    "build_student",
    "reuse_freed_memory",
    "parameter_count",
    "ArchOptions",
    "TEACHERS",
    "STUDENTS",
]
