"""End-to-end stages composed from the library: simulate, preprocess, train, distill, evaluate, report.

Installed as ``ckdsnn_events.pipelines``.
"""
