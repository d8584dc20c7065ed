"""Energy per operation: the 45 nm presets and the energy of a count of operations.

An SNN's synaptic operation (SOP) is one *accumulate* (a spike adds a weight to a membrane); an
ANN's (and a real-valued SNN layer's) operation is one *multiply-accumulate* (MAC). The energy of
a network is

    E = E_AC * SOPs + E_MAC * MACs                                   (pJ)

The presets take E_AC = energy of one add and E_MAC = energy of one multiply plus one add, at
45 nm / 0.9 V, from the table in M. Horowitz, "Computing's energy problem (and what we can do
about it)", ISSCC 2014, pp. 10-14, doi:10.1109/ISSCC.2014.6757323:

    ==========  =========  ============  =====================
    preset      add (pJ)   mult (pJ)     E_AC / E_MAC (pJ)
    ==========  =========  ============  =====================
    45nm-fp32   0.9        3.7           0.9 / 4.6  (default)
    45nm-fp16   0.4        1.1           0.4 / 1.5
    45nm-int32  0.1        3.1           0.1 / 3.2
    45nm-int8   0.03       0.2           0.03 / 0.23
    ==========  =========  ============  =====================

The paper itself was not at hand; the numbers were checked against two independent
reproductions of its table (Stillwater's universal-numbers 45 nm energy model, and Table 3 of a
Frontiers article citing Horowitz for int32 add 0.1 / mult 3.1 and fp32 add 0.9 / mult 3.7).
0.9 / 4.6 is the pair most SNN energy estimates use. Note that
"45nm-int8" charges an 8-bit add per accumulate; accumulators are often wider in practice (the
int32 add costs 0.1 pJ), so pass custom values where that matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ckdsnn_events.errors import UserError

DEFAULT_PRESET = "45nm-fp32"


@dataclass(frozen=True)
class EnergyCosts:
    """Energy of one accumulate (``e_ac_pj``) and one multiply-accumulate (``e_mac_pj``), in pJ.

    ``name`` is the preset name, or ``"custom"`` for user-given values.
    """

    e_ac_pj: float
    e_mac_pj: float
    name: str = "custom"

    def __post_init__(self) -> None:
        for option, value in (("e_ac_pj", self.e_ac_pj), ("e_mac_pj", self.e_mac_pj)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"energy option {option} must be a number of picojoules, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise UserError(
                    f"energy option {option} must be a finite number >= 0 (picojoules), got {value}; "
                    f"the {DEFAULT_PRESET} preset uses e_ac_pj=0.9, e_mac_pj=4.6"
                )

    def energy_pj(self, sops: float, macs: float) -> float:
        """``e_ac_pj * sops + e_mac_pj * macs``."""
        return self.e_ac_pj * sops + self.e_mac_pj * macs


PRESETS: dict[str, EnergyCosts] = {
    "45nm-fp32": EnergyCosts(0.9, 4.6, "45nm-fp32"),
    "45nm-fp16": EnergyCosts(0.4, 1.5, "45nm-fp16"),
    "45nm-int32": EnergyCosts(0.1, 3.2, "45nm-int32"),
    "45nm-int8": EnergyCosts(0.03, 0.23, "45nm-int8"),
}


def energy_costs(
    preset: str | EnergyCosts | None = DEFAULT_PRESET,
    *,
    e_ac_pj: float | None = None,
    e_mac_pj: float | None = None,
) -> EnergyCosts:
    """Resolve a preset name, an :class:`EnergyCosts`, or custom values into :class:`EnergyCosts`.

    Args:
        preset: one of :data:`PRESETS`, an :class:`EnergyCosts` (returned as is), or ``None`` /
            ``"custom"`` for custom values.
        e_ac_pj, e_mac_pj: custom energies (pJ). Either one given overrides the preset's value and
            makes the result ``"custom"``; ``preset="custom"`` needs both.

    Raises:
        UserError: unknown preset (the message lists the valid ones), missing or negative values.
    """
    if preset is None:
        preset = "custom"
    if isinstance(preset, EnergyCosts):
        base = preset
    elif preset == "custom":
        if e_ac_pj is None or e_mac_pj is None:
            raise UserError(
                "energy preset 'custom' needs both e_ac_pj and e_mac_pj (picojoules), "
                f"or pick a preset: {', '.join(PRESETS)}"
            )
        return EnergyCosts(e_ac_pj, e_mac_pj, "custom")
    elif isinstance(preset, str) and preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise UserError(
            f"unknown energy preset {preset!r}; valid presets: {', '.join(PRESETS)} "
            "(or 'custom' with e_ac_pj and e_mac_pj)"
        )
    if e_ac_pj is None and e_mac_pj is None:
        return base
    return EnergyCosts(
        base.e_ac_pj if e_ac_pj is None else e_ac_pj,
        base.e_mac_pj if e_mac_pj is None else e_mac_pj,
        "custom",
    )


def energy_pj(sops: float, macs: float, costs: str | EnergyCosts = DEFAULT_PRESET) -> float:
    """Energy in pJ of ``sops`` accumulates and ``macs`` multiply-accumulates.

    >>> round(energy_pj(1000, 10), 6)   # 0.9 * 1000 + 4.6 * 10
    946.0
    """
    if sops < 0 or macs < 0:
        raise UserError(f"operation counts must be >= 0, got sops={sops}, macs={macs}")
    return energy_costs(costs).energy_pj(sops, macs)
