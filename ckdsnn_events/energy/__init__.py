"""Energy: exact synaptic-operation counting from fired spikes, and the energy report."""
