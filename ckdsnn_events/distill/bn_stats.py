"""BatchNorm running statistics recomputed for the current weights before an evaluation.

In training mode a BatchNorm layer normalises by the batch's own statistics and keeps an
exponential moving average of them (momentum 0.1: about the last 10 batches) for evaluation. When
the weights move faster than that average follows (a high learning rate, and on a small dataset
an epoch of a few dozen steps) the averages describe weights of several steps ago, and the
evaluated network is not the trained one: on digits-dvs the teacher's validation accuracy after
its second epoch was 41 % with the running averages and 61 % with statistics recomputed for the
same weights. Recomputing them ("precise BN", as in pycls and fvcore) uses
:func:`torch.optim.swa_utils.update_bn`: a forward pass in training mode without gradients over
some training batches, averaging their statistics with equal weights (momentum ``None``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

__all__ = ["recompute_batchnorm_statistics"]


def recompute_batchnorm_statistics(model: nn.Module, loader, device: torch.device, kind: str,
                                   samples: int) -> int:
    """Replace every BatchNorm's running mean and variance by their average over training batches.

    Args:
        model: the teacher or student (DDP-wrapped or not); its mode is restored afterwards.
        loader: the training loader (yields :class:`~ckdsnn_events.data.batch.Batch`); its
            batches are drawn from the current epoch's order and augmentation.
        device: where the model runs.
        kind: "teacher" (reads ``batch.teacher_inputs``) or "student" (``batch.inputs``).
        samples: how many training samples (all processes together) to average over; 0 does nothing.

    Returns:
        The number of batches used (0 when ``samples`` is 0 or the model has no BatchNorm).
    """
    if samples <= 0 or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return 0
    used = []
    # under torchrun every rank's batch is a shard of one global batch (SyncBatchNorm pools their
    # statistics), so count global samples: N ranks use the batches one process would
    ranks = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1

    def inputs():
        seen = 0
        for batch in loader:
            batch = batch.to(device, non_blocking=True)  # keeps constant-in-time inputs stride 0
            used.append(len(batch.labels))
            yield batch.teacher_inputs if kind == "teacher" else batch.inputs
            seen += len(batch.labels) * ranks
            if seen >= samples:
                return

    update_bn(inputs(), model)
    return len(used)
