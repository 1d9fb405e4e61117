"""Resolve the clinical data files for one set of cohort params into a :class:`CohortSpec`.

Item facts come from ``adrl/mimic/facts`` via :mod:`adrl.mimic.concepts` (the ingest room's files); the
cohort room's own definitions (text-value codes, the FiO2-from-flow table, named constants) come from
``adrl/cohort/facts``. Nothing here is a clinical fact: only selection by recipe / fix.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..mimic import concepts as mc
from .spec import CohortSpec

DATA = Path(__file__).resolve().parent / "facts"
DEVICE_CODES = {"cannula": 1.0, "mask": 2.0, "non_rebreather": 3.0}
# concepts whose value is read from VALUE text (kind text in concepts.csv) and how: "any" = any non-null
# value is evidence unless text_values maps it to 0; "num_text" = text code when mapped, else VALUENUM.
TEXT_KIND = {"mechvent": "any", "GCS_verbal": "num_text"}
BLOOD_GAS = ("Arterial_pH", "paO2", "paCO2", "Arterial_BE")
NOT_OBS = ("culture", "preadm_input", "preadm_urine")


@functools.lru_cache(maxsize=None)
def _csv(name: str) -> pd.DataFrame:
    p = DATA / name
    if not p.exists():
        raise InputError(f"{p}: cohort data file not found")
    df = pd.read_csv(p, keep_default_na=False, na_values={"itemid": [""]})
    if "provenance" in df and (df["provenance"].astype(str).str.strip() == "").any():
        raise InputError(f"{p}: every row needs a provenance note")
    return df


def constants() -> dict:
    df = _csv("constants.csv")
    return dict(zip(df["name"], df["value"].astype(float)))


def build_spec(params) -> CohortSpec:
    fx = lambda k: params.fix(k)  # noqa: E731
    k = constants()
    con = mc.load_concepts()
    con = mc.select_recipe(con, fx("itemids"))
    # urine items are selected by the urine_items fix (227510 faithful-only, 227488 / 226567 corrected-only)
    allc = mc.load_concepts()
    urine = mc.select_recipe(allc[allc["concept"] == "urine"], fx("urine_items"))
    if not fx("urine_items"):
        urine = urine.assign(sign=1)  # faithful: 227489 counted gross, no irrigant subtracted
    con = pd.concat([con[con["concept"] != "urine"], urine], ignore_index=True)
    con = con[~con["concept"].isin(NOT_OBS)]
    conv_factor = {"lb_to_kg": k["lb_to_kg"], "oz_to_kg": k["oz_to_kg"], "in_to_cm": k["in_to_cm"]}
    conv = con["conversion"].fillna("")
    tv0 = _csv("text_values.csv")
    only_listed = set(tv0.loc[(tv0["concept"] == "mechvent") & (tv0["code"] == 1), "itemid"].dropna().astype(int))
    kind = np.where(con["kind"] == "numeric", "num", con["concept"].map(TEXT_KIND).fillna("text"))
    kind = np.where((con["concept"] == "mechvent") & con["itemid"].isin(only_listed), "text", kind)
    obs = pd.DataFrame({
        "table": con["table"], "itemid": con["itemid"].astype(np.int64), "concept": con["concept"],
        "kind": kind,
        "factor": conv.map(conv_factor).fillna(1.0).astype(float),
        "convert": np.where(con["concept"] == "SpO2", "spo2", conv.where(~conv.isin(list(conv_factor)), "")),
        "sign": con["sign"].astype(float),
        "arterial_only": con["concept"].isin(BLOOD_GAS) & (con["table"] == "labevents"),
        "valueuom_ok": con["valueuom_ok"].fillna("").where(con["table"] == "labevents", ""),
    }).reset_index(drop=True)
    # concept_info: range and hold per concept for this recipe
    g = con.groupby("concept")
    lo = g["range_lo"].first()
    lof = g["range_lo_faithful"].first()
    hold = g["hold_h"].first()
    holdf = g["hold_h_faithful"].first()
    if not fx("itemids"):
        lo = lof.where(lof.notna(), lo)
    if not fx("potassium_hold"):
        hold = holdf.where(holdf.notna(), hold)
    info = pd.DataFrame({"lo": lo, "hi": g["range_hi"].first(), "hold_h": hold})
    info["agg"] = "mean"
    # text codes
    tv = _csv("text_values.csv")[["concept", "value", "code"]].copy()
    dev = mc.load_o2_devices()
    cls = dev["class_corrected"] if fx("itemids") else dev["class_faithful"]
    tv = pd.concat([tv, pd.DataFrame({"concept": "O2_device", "value": dev["key"],
                                      "code": cls.map(DEVICE_CODES).fillna(0.0)})], ignore_index=True)
    ft = _csv("fio2_from_flow.csv").copy()
    ft["device_class"] = ft["device_class"].map(DEVICE_CODES)
    ft["flow_max"] = ft["flow_max"].astype(float)
    ft["strict"] = ft["strict"].astype(str).str.lower() == "true"
    # fluids
    fl = mc.load_fluids()
    fl = mc.select_recipe(fl, fx("fluids"))
    ton = fl["tonicity_corrected"] if fx("fluids") else fl["tonicity_faithful"]
    keep = ton.notna()
    fluid_items = pd.DataFrame({"table": fl["table"][keep], "itemid": fl["itemid"][keep].astype(np.int64),
                                "tonicity": ton[keep].astype(float),
                                "unit_rule": np.where(fl["bicarbonate"][keep], "meq_as_ml", "ml")})
    vp = mc.select_recipe(mc.load_vasopressors(), fx("itemids"))
    fcol = "factor_ai_clinician" if params.actions.vaso_factors == "ai_clinician" else "factor_mimic_code"
    vaso_items = pd.DataFrame({"table": vp["table"], "itemid": vp["itemid"].astype(np.int64), "drug": vp["drug"]})
    factors = vp.groupby("drug")[fcol].first().to_dict()
    cult = allc[allc["concept"] == "culture"]
    if fx("culture_sources"):
        cult = mc.select_recipe(cult, True)
    else:
        cult = mc.select_recipe(cult, False)
    pre = allc[allc["concept"].isin(["preadm_input", "preadm_urine"])]
    return CohortSpec(
        obs_items=obs, concept_info=info, text_values=tv, fluid_items=fluid_items.reset_index(drop=True),
        vaso_items=vaso_items, vaso_factors=factors, abx_gsn=mc.antibiotic_gsns(),
        abx_routes_bad=mc.nonsystemic_routes() if fx("abx_routes") else frozenset(),
        culture_items=cult[["table", "itemid"]].reset_index(drop=True), fio2_table=ft,
        preadm_items=pd.DataFrame({"table": pre["table"], "itemid": pre["itemid"],
                                   "kind": np.where(pre["concept"] == "preadm_input", "input", "output")}),
        gcs_normal={"GCS_eye": k["gcs_eye_normal"], "GCS_verbal": k["gcs_verbal_normal"],
                    "GCS_motor": k["gcs_motor_normal"]},
        rass_to_gcs={0: k["rass_ge0_gcs"], -1: k["rass_m1_gcs"], -2: k["rass_m2_gcs"], -3: k["rass_m3_gcs"],
                     -4: k["rass_m4_gcs"], -5: k["rass_m5_gcs"]},
        gcs_part_window_h=k["gcs_part_window_h"], vent_hold_h=k["mechvent_hold_h"],
        default_weight_kg=k["vaso_default_weight_kg"], vaso_hourly_threshold=k["vasopressin_per_hour_above"],
        mv_weight_is_weight=bool(fx("itemids")), facts=k)
