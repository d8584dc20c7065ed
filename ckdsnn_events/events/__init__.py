"""Events: readers and writers for the on-disk forms, numba framing, and the DVS simulator."""

from ckdsnn_events.events.types import EVENT_DTYPE, DVS128_SENSOR_SIZE, check_events, make_events

__all__ = ["EVENT_DTYPE", "DVS128_SENSOR_SIZE", "check_events", "make_events"]
