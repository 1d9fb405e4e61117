"""The cohort's resolved view of the clinical concept data (one recipe, fixes applied).

The clinical facts themselves live in ``adrl/mimic/facts`` (loaded by ``adrl.mimic.concepts``); this module
holds no ITEMID, unit, range or factor. :func:`adrl.cohort.mimic_adapter.build_spec` resolves those files for one
set of cohort params (it imports this module; this module imports nothing of the cohort room); tests build a
:class:`CohortSpec` directly from hand-made frames.

Frames (all lower-case columns):

- ``obs_items``: table, itemid, concept, kind ("num" | "text"), factor (multiply VALUENUM), convert
  ("" | "temp_f" | "temp_c" | "fio2" | "spo2"), sign (+1/-1; urine only). Rows are already filtered to the
  recipe. Text concepts (``kind == "text"``) carry their value mapping in ``text_values``.
- ``concept_info``: concept (index), lo, hi, hold_h, agg ("mean" | "last" | "sum").
- ``text_values``: concept, value (lower-cased VALUE string), code (float). Rows not matched are counted.
- ``fluid_items``: table, itemid, tonicity, unit_rule ("ml" | "meq_as_ml" | "any").
- ``vaso_items``: table, itemid, drug; ``vaso_factors``: drug -> NE-eq factor (per µg/kg/min, or per U/min).
- ``abx_gsn``: set of six-character GSN strings; ``abx_routes_bad``: set of upper-cased non-systemic routes.
- ``culture_items``: table ("chartevents" | "procedureevents_mv"), itemid.
- ``fio2_table``: device_class, flow_max, fio2, strict (bool: flow < max instead of <=), ordered by flow.
- ``preadm_items``: table, itemid, kind ("input" | "output") (export only).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

# Concept names the cohort code refers to (names, not clinical facts).
SUPPORT = ("Ht", "Direct_bili", "RASS", "O2_flow", "O2_device", "GCS", "Height", "Weight_kg",
           "urine", "vent", "extubation", "specimen")
GCS_PARTS = ("GCS_eye", "GCS_verbal", "GCS_motor")


@dataclass(frozen=True)
class CohortSpec:
    obs_items: pd.DataFrame
    concept_info: pd.DataFrame
    text_values: pd.DataFrame
    fluid_items: pd.DataFrame
    vaso_items: pd.DataFrame
    vaso_factors: dict
    abx_gsn: frozenset
    abx_routes_bad: frozenset
    culture_items: pd.DataFrame
    fio2_table: pd.DataFrame
    preadm_items: pd.DataFrame
    gcs_normal: dict                 # GCS_eye/GCS_verbal/GCS_motor -> normal value
    rass_to_gcs: dict                # RASS value (int, >= 0 collapsed to 0) -> GCS
    gcs_part_window_h: float         # a missing GCS component may come from this many hours before
    vent_hold_h: float               # mechanical-ventilation flag hold
    default_weight_kg: float         # weight when unknown (and always, in faithful vaso_weight)
    vaso_hourly_threshold: float     # vasopressin rate above this is read as per hour
    mv_weight_is_weight: bool        # INPUTEVENTS_MV.PATIENTWEIGHT feeds Weight_kg (corrected)
    facts: dict                      # named numbers: hb_ht_a, hb_ht_b (Hb = (Ht - a) / b), bili_a, bili_b
                                     # (total = (direct + a) / b), readmission_days, age_over (years),
                                     # age_over_value, lab_pad_h, vaso_withdrawal_dose, d90_days, icu48_h

    def hold_s(self, concept: str) -> float:
        return float(self.concept_info.loc[concept, "hold_h"]) * 3600.0

