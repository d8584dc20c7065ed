"""ckdsnn-events: event-camera data to spike-ready tensors, CKDSNN distillation, energy reports."""

__version__ = "0.1.0"
