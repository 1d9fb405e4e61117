"""The factored action space: one mapping serves heads, masks, kNN labels and reports.

Flat index a = 5 * fluid_bin + vaso_bin (Tang et al., AI Clinician); no-op = (0, 0) = 0.
"""
from __future__ import annotations

N_FLUID = 5
N_VASO = 5
N_ACTIONS = N_FLUID * N_VASO
NOOP = 0
SUB_ACTIONS = ("fluid", "vaso")  # k = 0 -> F, k = 1 -> V


def to_flat(fluid_bin, vaso_bin):
    """(fluid_bin, vaso_bin) -> flat action index; works on ints and numpy/torch arrays."""
    return fluid_bin * N_VASO + vaso_bin


def from_flat(action):
    """flat action index -> (fluid_bin, vaso_bin); works on ints and numpy/torch arrays."""
    return action // N_VASO, action % N_VASO
