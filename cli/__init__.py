"""The ``ckd-events`` command line (installed as ``ckdsnn_events.cli``)."""
