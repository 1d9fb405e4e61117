"""Reference policies for ground-truth roll-outs (:func:`adrl.synth.rollout.rollout`).

They act on ``world.observed()``: the same bedside information the simulated clinician uses (last
charted MAP, SpO2 and lactate, urine of the last 4 h, fluid given so far, the running vasopressor dose),
so they need no charted events (``rollout(..., events=False)``). They calibrate the world: no treatment
and maximal treatment must be clearly worse than the clinician, and the simple rule clearly better
(benchmarks/results/synth.md has the measured values).
"""
from __future__ import annotations

import numpy as np

MAX_FLUID_ML, MAX_VASO = 3000.0, 1.0  # inside the top bins (> 2000 mL, > 0.45 ug/kg/min)


def no_treatment(history, world):
    """Neither fluids nor vasopressors."""
    return np.zeros(world.n), np.zeros(world.n)


def max_treatment(history, world):
    """Top fluid bin and top vasopressor bin in every bin."""
    return np.full(world.n, MAX_FLUID_ML), np.full(world.n, MAX_VASO)


def rule_policy(fluid: bool = True, vaso: bool = True, map_target: float = 65.0, bolus_ml: float = 1000.0,
                fluid_cap_ml: float = 4000.0, fluid_first_ml: float = 1000.0, max_dose: float = 0.4):
    """A simple resuscitation rule from charted values.

    Fluids: ``bolus_ml`` per bin while MAP < ``map_target`` or lactate > 2.5 mmol/L, unless ``fluid_cap_ml``
    has already been given. Vasopressor: when MAP stays below target after ``fluid_first_ml`` of fluid (at
    once when ``fluid`` is off), start at 0.1 or raise the dose by half, up to ``max_dose``; wean by 40 %
    when MAP > 78 and stop below 0.03. ``fluid=False`` / ``vaso=False`` give the single-drug variants."""

    def policy(history, world):
        o = world.observed()
        m, lac, cum, cur = o["map"], o["lactate"], o["cum_fluid_ml"], o["vaso"]
        need = (m < map_target) | (lac > 2.5)
        f = np.where(need & (cum < fluid_cap_ml), bolus_ml, 0.0) if fluid else np.zeros(world.n)
        ready = (cum >= fluid_first_ml) if fluid else np.ones(world.n, bool)
        up = (m < map_target) & ready
        v = np.where(up, np.clip(np.maximum(cur * 1.5, 0.1), 0.0, max_dose), np.where(m > 78, cur * 0.6, cur))
        v = np.where(v < 0.03, 0.0, v)
        return f, (v if vaso else np.zeros(world.n))

    return policy


def concurrent_policy(history, world):
    """Fluid 1000 mL and vasopressor 0.25 together whenever MAP < 65 (fluid also for lactate > 2.5): the policy
    that the ``interaction`` knob punishes (fluids under vasoconstriction injure the lungs)."""
    o = world.observed()
    need = (o["map"] < 65) | (o["lactate"] > 2.5)
    return np.where(need, 1000.0, 0.0), np.where(o["map"] < 65, 0.25, 0.0)


REFERENCE = {"clinician": "clinician", "no_treatment": no_treatment, "max_treatment": max_treatment,
             "rule": rule_policy(), "rule_fluid_only": rule_policy(vaso=False),
             "rule_vaso_only": rule_policy(fluid=False), "concurrent": concurrent_policy}
