"""Actions: IV fluid volume per bin (cohort.md 5.1) and vasopressor NE-eq dose per bin (5.2).

Input rows are interim INPUTEVENTS_MV / INPUTEVENTS_CV frames already restricted to the stays of the batch
(column ``s`` = the stay's position in the batch). Which items count, their tonicity and drug, and the
NE-eq factors come from :class:`adrl.cohort.spec.CohortSpec`.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from .grid import GridSpec, to_seconds

PER_KG = {"mcgkgmin", "mcg/kg/min"}
PER_MIN = {"mcgmin", "mcg/min"}
U_MIN = {"umin", "units/min"}
U_HR = {"uhr", "units/hour"}


def _lower(x: pd.Series) -> pd.Series:
    return x.astype("string").str.strip().str.lower()


def fluid_rows(mv: pd.DataFrame, cv: pd.DataFrame, spec, corrected: bool, tonicity: bool,
               counts: Counter) -> pd.DataFrame:
    """-> DataFrame[s, start, end, vol] with end == start for point rows (seconds); vol in (tonicity-eq) mL."""
    out = []
    for table, df, tcol in (("inputevents_mv", mv, "starttime"), ("inputevents_cv", cv, "charttime")):
        if df is None or not len(df):
            continue
        items = spec.fluid_items[spec.fluid_items["table"] == table].set_index("itemid")
        df = df[df["itemid"].isin(items.index)]
        if not len(df):
            continue
        it = items.loc[df["itemid"].to_numpy()]
        unit = _lower(df["amountuom"]).fillna("").to_numpy()
        rule = it["unit_rule"].to_numpy()
        keep = np.ones(len(df), bool)
        if corrected:
            if table == "inputevents_mv":
                rw = (_lower(df["statusdescription"]).fillna("") == "rewritten").to_numpy()
                counts[f"{table}: fluid rows dropped (Rewritten)"] += int(rw.sum())
                keep &= ~rw
            ok_unit = (unit == "ml") | ((rule == "meq_as_ml") & (unit == "meq"))
            bad = keep & ~ok_unit
            counts[f"{table}: fluid rows dropped (unit not mL)"] += int(bad.sum())
            keep &= ok_unit
        amt = df["amount"].to_numpy(np.float64)
        na = keep & np.isnan(amt)
        counts[f"{table}: fluid rows dropped (no amount)"] += int(na.sum())
        keep &= ~np.isnan(amt)
        factor = it["tonicity"].to_numpy(np.float64) if tonicity else np.ones(len(df))
        start = to_seconds(df[tcol])
        if table == "inputevents_mv":
            end = to_seconds(df["endtime"])
            has_rate = df["rate"].notna().to_numpy()
            interval = has_rate & (end > start)
            end = np.where(interval, end, start)
        else:
            end = start
        out.append(pd.DataFrame({"s": df["s"].to_numpy()[keep], "start": start[keep], "end": end[keep],
                                 "vol": (amt * factor)[keep]}))
    if not out:
        return pd.DataFrame({"s": pd.Series(dtype=np.int64), "start": pd.Series(dtype=float),
                             "end": pd.Series(dtype=float), "vol": pd.Series(dtype=float)})
    return pd.concat(out, ignore_index=True)


def expand(s: np.ndarray, start: np.ndarray, end: np.ndarray, g0: np.ndarray, grid: GridSpec):
    """Rows -> (row index, slot j, overlap seconds) for every grid bin in kmin..kmax-1 the row touches.

    Point rows (end == start) touch the bin containing start with overlap 0. Intervals [start, end) touch
    every bin they overlap.
    """
    B = grid.bin_s
    rel0 = start - g0[s]
    rel1 = end - g0[s]
    k0 = np.floor(rel0 / B).astype(np.int64)
    k1 = np.where(end > start, np.ceil(rel1 / B).astype(np.int64) - 1, k0)
    k0c = np.maximum(k0, grid.kmin)
    k1c = np.minimum(k1, grid.kmax - 1)
    n = np.maximum(k1c - k0c + 1, 0)
    row = np.repeat(np.arange(len(s)), n)
    first = np.repeat(k0c, n)
    offs = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    k = first + offs
    bs = k * B
    ov = np.minimum(rel1[row], bs + B) - np.maximum(rel0[row], bs)
    return row, k - (grid.kmin - 1), np.maximum(ov, 0.0)


def fluid_parts(rows: pd.DataFrame, g0: np.ndarray, grid: GridSpec):
    """(flat cell s * nj + j, volume) of every (row, bin) pair: interval rows apportioned by overlap, point rows
    whole at their time, in row order (sums over them in this order are those of :func:`fluid_per_bin`)."""
    s = rows["s"].to_numpy(np.int64)
    st, en, vol = (rows[c].to_numpy(np.float64) for c in ("start", "end", "vol"))
    row, j, ov = expand(s, st, en, g0, grid)
    dur = (en - st)[row]
    frac = np.where(dur > 0, ov / np.where(dur > 0, dur, 1.0), 1.0)
    return s[row] * grid.nj + j, vol[row] * frac


def fluid_per_bin(rows: pd.DataFrame, g0: np.ndarray, grid: GridSpec, counts: Counter) -> np.ndarray:
    """[S, nj] fluid volume per bin: interval rows apportioned by overlap, point rows whole at their time.

    A bin total below 0 (negative amounts) is clipped to 0 and counted (reference behaviour)."""
    S, nj = len(g0), grid.nj
    cell, vol = fluid_parts(rows, g0, grid)
    # float64 also without any fluid row (np.bincount ignores empty weights and counts in int64)
    tot = np.bincount(cell, weights=vol, minlength=S * nj).astype(np.float64).reshape(S, nj)
    neg = tot < 0
    counts["fluid bins clipped to 0 (negative total)"] += int(neg[:, 1:].sum())
    tot[neg] = 0.0
    tot[:, 0] = 0.0  # the pre slot carries no treatment
    return tot


def vaso_rows(mv: pd.DataFrame, cv: pd.DataFrame, spec, counts: Counter) -> pd.DataFrame:
    """-> DataFrame[s, start, end, drug, unit_kind, rate_min, pw]: rate_min per minute in the unit's own
    mass or U; unit_kind 'kg' (µg/kg/min), 'min' (µg/min) or 'u' (U/min)."""
    out = []
    for table, df, tcol in (("inputevents_mv", mv, "starttime"), ("inputevents_cv", cv, "charttime")):
        if df is None or not len(df):
            continue
        items = spec.vaso_items[spec.vaso_items["table"] == table].set_index("itemid")
        df = df[df["itemid"].isin(items.index)]
        if not len(df):
            continue
        drug = items.loc[df["itemid"].to_numpy(), "drug"].to_numpy()
        rate = df["rate"].to_numpy(np.float64)
        unit = _lower(df["rateuom"]).fillna("").to_numpy()
        keep = ~np.isnan(rate)
        counts[f"{table}: vasopressor rows without a rate (amount only, not a dose)"] += int((~keep).sum())
        if table == "inputevents_mv":
            rw = (_lower(df["statusdescription"]).fillna("") == "rewritten").to_numpy()
            counts[f"{table}: vasopressor rows dropped (Rewritten)"] += int((keep & rw).sum())
            keep &= ~rw
        kind = np.select([np.isin(unit, list(PER_KG)), np.isin(unit, list(PER_MIN)),
                          np.isin(unit, list(U_MIN)), np.isin(unit, list(U_HR))], ["kg", "min", "u", "uh"], "")
        bad = keep & (kind == "")
        counts[f"{table}: vasopressor rows dropped (unknown rate unit)"] += int(bad.sum())
        keep &= kind != ""
        vp = drug == "vasopressin"
        per_hour = (kind == "uh") | (vp & (rate > spec.vaso_hourly_threshold))
        rate_min = np.where(per_hour, rate / 60.0, rate)
        kind = np.where(kind == "uh", "u", kind)
        start = to_seconds(df[tcol])
        end = to_seconds(df["endtime"]) if table == "inputevents_mv" else start
        end = np.where(end > start, end, start)
        pw = df["patientweight"].to_numpy(np.float64) if "patientweight" in df else np.full(len(df), np.nan)
        out.append(pd.DataFrame({"s": df["s"].to_numpy()[keep], "start": start[keep], "end": end[keep],
                                 "drug": drug[keep], "unit_kind": kind[keep], "rate_min": rate_min[keep],
                                 "pw": pw[keep]}))
    if not out:
        return pd.DataFrame({"s": pd.Series(dtype=np.int64), "start": pd.Series(dtype=float),
                             "end": pd.Series(dtype=float), "drug": pd.Series(dtype=object),
                             "unit_kind": pd.Series(dtype=object), "rate_min": pd.Series(dtype=float),
                             "pw": pd.Series(dtype=float)})
    return pd.concat(out, ignore_index=True)


def ne_eq(rate_min, unit_kind, drug, weight_kg, factors: dict) -> np.ndarray:
    """NE-eq µg/kg/min of each row (cohort.md 5.2). weight_kg: the weight to divide µg/min rates by."""
    f = pd.Series(drug).map(factors).to_numpy(np.float64)
    if np.isnan(f).any():
        raise ValueError(f"no NE-eq factor for drug(s) {sorted(set(pd.Series(drug)[np.isnan(f)]))}")
    rate = np.asarray(rate_min, np.float64)
    uk = np.asarray(unit_kind)
    base = np.where(uk == "min", rate / np.asarray(weight_kg, np.float64), rate)
    return base * f


def vaso_per_bin(rows: pd.DataFrame, g0: np.ndarray, grid: GridSpec, weight: np.ndarray, spec,
                 actual_weight: bool) -> np.ndarray:
    """[S, nj] max NE-eq rate active in the bin; 0 without a row. ``weight``: [S, nj] held Weight_kg."""
    S, nj = len(g0), grid.nj
    s = rows["s"].to_numpy(np.int64)
    row, j = vaso_pairs(rows, g0, grid)
    out = np.zeros(S * nj)
    np.maximum.at(out, s[row] * nj + j, vaso_pair_doses(rows, row, weight[s[row], j], spec, actual_weight))
    out = out.reshape(S, nj)
    out[:, 0] = 0.0
    return out


def vaso_pairs(rows: pd.DataFrame, g0: np.ndarray, grid: GridSpec):
    """(row, slot j) of every bin a vasopressor row is active in (point rows: the bin of their time)."""
    s = rows["s"].to_numpy(np.int64)
    st, en = rows["start"].to_numpy(np.float64), rows["end"].to_numpy(np.float64)
    row, j, ov = expand(s, st, en, g0, grid)
    ok = (en <= st)[row] | (ov > 0)
    return row[ok], j[ok]


def vaso_pair_doses(rows: pd.DataFrame, row: np.ndarray, w: np.ndarray, spec, actual_weight: bool) -> np.ndarray:
    """NE-eq dose (>= 0) of each (row, bin) pair; ``w``: the pair's held Weight_kg (NaN: the order's
    PATIENTWEIGHT, else the default weight; always the default when ``actual_weight`` is off)."""
    if actual_weight:
        w = np.where(np.isnan(w), rows["pw"].to_numpy(np.float64)[row], w)
        w = np.where(np.isnan(w) | (w <= 0), spec.default_weight_kg, w)
    else:
        w = np.full(len(row), spec.default_weight_kg)
    dose = ne_eq(rows["rate_min"].to_numpy()[row], rows["unit_kind"].to_numpy()[row],
                 rows["drug"].to_numpy()[row], w, spec.vaso_factors)
    return np.maximum(dose, 0.0)
