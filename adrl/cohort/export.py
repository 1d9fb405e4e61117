"""The mimic_sepsis flat CSV export (cohort.md 8.4) and splits.csv.

Written from the raw trajectory rows: sepsis_final_data_RAW_withTimes.csv (physical units) and
sepsis_final_data_withTimes.csv (normalised with training-split statistics).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

EXPORT_O = ("gender", "mechvent", "max_dose_vaso", "re_admission", "age", "Weight_kg", "GCS", "HR", "SysBP",
            "MeanBP", "DiaBP", "RR", "Temp_C", "FiO2_1", "Potassium", "Sodium", "Chloride", "Glucose", "Magnesium",
            "Calcium", "Hb", "WBC_count", "Platelets_count", "PTT", "PT", "Arterial_pH", "paO2", "paCO2",
            "Arterial_BE", "HCO3", "Arterial_lactate", "SOFA", "SIRS", "Shock_Index", "PaO2_FiO2",
            "cumulated_balance", "SpO2", "BUN", "Creatinine", "SGOT", "SGPT", "Total_bili", "INR", "input_total",
            "input_4hourly", "output_total", "output_4hourly")
BINARY = ("gender", "mechvent", "re_admission")
LOG_Z = ("SpO2", "BUN", "Creatinine", "SGOT", "SGPT", "Total_bili", "INR", "input_total", "input_4hourly",
         "output_total", "output_4hourly")


def export_frames(raw: pd.DataFrame, extra: pd.DataFrame, stays: pd.DataFrame, exclude_current: bool,
                  reward_kind: str, reward_params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """raw: trajectories_raw rows; extra: per row urine_ml plus per-stay preadm_in / preadm_out (same order)."""
    r = raw
    onset = r["icustay_id"].map(stays.set_index("icustay_id")["onset"])
    epoch = lambda x: pd.to_datetime(x).astype("datetime64[s]").astype(np.int64)  # noqa: E731
    out = pd.DataFrame({"traj": r["traj"].to_numpy(), "step": r["step"].to_numpy(),
                        "m:presumed_onset": epoch(onset).to_numpy(), "m:charttime": epoch(r["bin_start"]).to_numpy(),
                        "m:icustayid": r["icustay_id"].to_numpy()})
    o = {}
    for c in EXPORT_O:
        if f"o:{c}" in r:
            o[c] = r[f"o:{c}"].to_numpy(np.float64)
        elif f"m:{c}" in r:
            o[c] = r[f"m:{c}"].to_numpy(np.float64)
    o["age"] = o["age"] * 365.25
    o["max_dose_vaso"] = r["vaso_dose"].to_numpy(np.float64)
    fin = r["fluid_ml"].to_numpy(np.float64)
    uo = np.nan_to_num(extra["urine_ml"].to_numpy(np.float64), nan=0.0)
    g = r["traj"].to_numpy()
    cin = pd.Series(fin).groupby(g).cumsum().to_numpy() + extra["preadm_in"].to_numpy(np.float64)
    cout = pd.Series(uo).groupby(g).cumsum().to_numpy() + extra["preadm_out"].to_numpy(np.float64)
    if exclude_current:  # totals up to the start of the bin
        cin, cout = cin - fin, cout - uo
    o["input_4hourly"], o["output_4hourly"], o["input_total"], o["output_total"] = fin, uo, cin, cout
    o["cumulated_balance"] = cin - cout
    o["SOFA"] = r["sofa"].to_numpy(np.float64)
    t, hr, rr, pc, wbc = (o[k] for k in ("Temp_C", "HR", "RR", "paCO2", "WBC_count"))
    o["SIRS"] = (((t >= 38) | (t <= 36)).astype(int) + (hr > 90) + ((rr >= 20) | (pc <= 32))
                 + ((wbc >= 12) | (wbc < 4))).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        si = hr / o["SysBP"]
    o["Shock_Index"] = np.where(np.isfinite(si), si, np.nan)
    rawx = out.copy()
    for c in EXPORT_O:
        rawx[f"o:{c}"] = o[c]
    rp = reward_params
    done = r["done"].to_numpy()
    died = (r["reward"].to_numpy() == rp.die) & done
    if reward_kind == "pm1":
        rew = np.where(done, np.where(died, -1.0, 1.0), 0.0)
    else:
        rew = r["reward"].to_numpy(np.float64)
    # normalised: training-split statistics
    train = (r["split"] == "train").to_numpy()
    norm = out.copy()
    for c in EXPORT_O:
        x = o[c].copy()
        if c in BINARY:
            norm[f"o:{c}"] = x - 0.5
            continue
        if c == "max_dose_vaso":
            norm[f"o:{c}"] = np.log(np.maximum(x, 0) + 0.1)
            continue
        if c in LOG_Z:
            x = np.log(np.maximum(x, 0) + 0.1)
        xt = x[train & np.isfinite(x)]
        mu = float(xt.mean()) if len(xt) else 0.0
        sd = float(xt.std()) if len(xt) else 1.0
        norm[f"o:{c}"] = (x - mu) / (sd if sd > 0 else 1.0)
    for df in (rawx, norm):
        df["a:action"] = r["action"].to_numpy()
        df["r:reward"] = rew
    return rawx, norm
