"""Export of trained students: NIR graphs (:mod:`.nir_graph`), the neuron mapping (:mod:`.neuron_map`)
and a reference NIR interpreter for the round-trip check (:mod:`.nir_run`)."""

from ckdsnn_events.export.neuron_map import DEFAULT_DT
from ckdsnn_events.export.nir_graph import student_to_nir
from ckdsnn_events.export.nir_run import compare_with_model, run_nir

__all__ = ["DEFAULT_DT", "student_to_nir", "run_nir", "compare_with_model"]
