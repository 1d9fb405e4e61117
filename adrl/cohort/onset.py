"""Antibiotics, cultures and the suspected-infection onset (cohort.md 3.3-3.5), vectorised.

All times here are float seconds since the epoch. Stays are given as a frame with subject_id, hadm_id,
icustay_id, intime_s, outtime_s (the candidate stays after the population filters).
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from .grid import H, to_seconds


def _attach_rows(rows: pd.DataFrame, stays: pd.DataFrame, key: str, pad_s: float,
                 fallback_single_subject: bool) -> pd.Series:
    """Attach event rows (columns rid, key, t, hadm_id) to a stay: the stay whose [INTIME, OUTTIME] contains t,
    else whose window padded by pad_s contains it; else (fallback) the subject's only stay; else the single
    stay of the same HADM_ID. Returns icustay_id indexed by rid (NaN where none)."""
    m = rows[list(dict.fromkeys(["rid", key, "t"]))].merge(
        stays[[key, "icustay_id", "intime_s", "outtime_s"]], on=key, how="inner")
    inside = (m["t"] >= m["intime_s"]) & (m["t"] <= m["outtime_s"])
    padded = (m["t"] >= m["intime_s"] - pad_s) & (m["t"] <= m["outtime_s"] + pad_s)
    m = m.assign(pri=np.where(inside, 0, np.where(padded, 1, 9)),
                 dist=np.abs(m["t"] - (m["intime_s"] + m["outtime_s"]) / 2))
    m = m[m["pri"] < 9].sort_values(["rid", "pri", "dist"], kind="stable").drop_duplicates("rid")
    out = pd.Series(m["icustay_id"].to_numpy(), index=m["rid"].to_numpy(), dtype="float64")
    out = out.reindex(rows["rid"].to_numpy())
    if fallback_single_subject and key == "subject_id":
        n = stays.groupby("subject_id")["icustay_id"].agg(["count", "first"])
        one = n[n["count"] == 1]["first"]
        miss = out.isna().to_numpy()
        out[miss] = rows["subject_id"].map(one).to_numpy()[miss]
    if key == "subject_id":
        nh = stays.groupby("hadm_id")["icustay_id"].agg(["count", "first"])
        oneh = nh[nh["count"] == 1]["first"]
        miss = out.isna().to_numpy()
        out[miss] = rows["hadm_id"].map(oneh).to_numpy()[miss]
    return out


def antibiotics(rx: pd.DataFrame, stays: pd.DataFrame, spec, attach_h: float, counts: Counter) -> pd.DataFrame:
    """-> DataFrame[icustay_id, t, order] of antibiotic starts attached to candidate stays (3.3)."""
    rx = rx.reset_index(drop=True).assign(rid=lambda d: np.arange(len(d)))
    gsn = rx["gsn"].astype("string").str.strip()
    ok = gsn.isin(list(spec.abx_gsn)).fillna(False).to_numpy(bool)
    counts["prescriptions: rows not on the antibiotic GSN list"] += int((~ok).sum())
    rx = rx[ok]
    if spec.abx_routes_bad:
        bad = rx["route"].astype("string").str.strip().str.upper().isin(list(spec.abx_routes_bad)).fillna(False)
        counts["prescriptions: antibiotic rows dropped (non-systemic route)"] += int(bad.sum())
        rx = rx[~bad.to_numpy(bool)]
    t = to_seconds(rx["startdate"])
    counts["prescriptions: antibiotic rows dropped (no STARTDATE)"] += int(np.isnan(t).sum())
    rx = rx.assign(t=t)[~np.isnan(t)]
    rx = rx[rx["hadm_id"].isin(stays["hadm_id"]) | rx["icustay_id"].isin(stays["icustay_id"])]
    sid = rx["icustay_id"].where(rx["icustay_id"].isin(stays["icustay_id"]))
    nh = stays.groupby("hadm_id")["icustay_id"].agg(["count", "first"])
    one = rx["hadm_id"].map(nh.loc[nh["count"] == 1, "first"])
    sid = sid.fillna(one)
    miss = sid.isna().to_numpy()
    if miss.any():
        att = _attach_rows(rx[miss], stays, "hadm_id", attach_h * H, False)
        sid[miss] = att.to_numpy()
    counts["prescriptions: antibiotic rows not attached to a candidate stay"] += int(sid.isna().sum())
    # source order: the reference extraction sorted by HADM_ID and ICUSTAY_ID only (stable)
    out = pd.DataFrame({"icustay_id": sid.to_numpy(), "t": rx["t"].to_numpy(), "hadm_id": rx["hadm_id"].to_numpy(),
                        "rid": rx["rid"].to_numpy()}).dropna(subset=["icustay_id"])
    out["icustay_id"] = out["icustay_id"].astype(np.int64)
    out = out.sort_values(["hadm_id", "icustay_id", "rid"], kind="stable")
    out["order"] = np.arange(len(out))
    return out[["icustay_id", "t", "order"]].reset_index(drop=True)


def cultures(micro: pd.DataFrame | None, ce: pd.DataFrame | None, pe: pd.DataFrame | None, stays: pd.DataFrame,
             spec, attach_h: float, counts: Counter) -> pd.DataFrame:
    """-> DataFrame[icustay_id, t] of culture times attached to candidate stays (3.4)."""
    parts = []
    if micro is not None and len(micro):
        t = to_seconds(micro["charttime"])
        d = to_seconds(micro["chartdate"])
        t = np.where(np.isnan(t), d, t)
        mi = micro.assign(t=t)
        counts["microbiologyevents: rows without a time"] += int(np.isnan(t).sum())
        mi = mi[~np.isnan(t)]
        n0 = len(mi)
        mi = mi.drop_duplicates(["subject_id", "hadm_id", "t", "spec_itemid"])
        counts["microbiologyevents: duplicate rows (subject, admission, time, specimen)"] += n0 - len(mi)
        mi = mi[mi["subject_id"].isin(stays["subject_id"])].reset_index(drop=True)
        mi = mi.assign(rid=np.arange(len(mi)))
        sid = _attach_rows(mi, stays, "subject_id", attach_h * H, True)
        counts["microbiologyevents: rows not attached to a candidate stay"] += int(sid.isna().sum())
        parts.append(pd.DataFrame({"icustay_id": sid.to_numpy(), "t": mi["t"].to_numpy()}))
    for table, df, tcol in (("chartevents", ce, "charttime"), ("procedureevents_mv", pe, "starttime")):
        if df is None or not len(df):
            continue
        items = spec.culture_items.loc[spec.culture_items["table"] == table, "itemid"]
        d = df[df["itemid"].isin(items) & df["icustay_id"].isin(stays["icustay_id"])]
        parts.append(pd.DataFrame({"icustay_id": d["icustay_id"].to_numpy(np.float64), "t": to_seconds(d[tcol])}))
    if not parts:
        return pd.DataFrame({"icustay_id": pd.Series(dtype=np.int64), "t": pd.Series(dtype=float)})
    out = pd.concat(parts, ignore_index=True).dropna()
    out["icustay_id"] = out["icustay_id"].astype(np.int64)
    return out.reset_index(drop=True)


def onsets(abx: pd.DataFrame, cult: pd.DataFrame, abx_then_culture_h: float, culture_then_abx_h: float,
           earliest: bool) -> pd.DataFrame:
    """Suspected-infection onset per stay (3.5) -> DataFrame[icustay_id, onset_s, onset_kind, abx_s, culture_s].

    earliest (corrected): the earliest candidate over all qualifying pairs (ties: antibiotic first).
    Otherwise (faithful): walk antibiotic rows in source order, nearest culture only, first hit.
    """
    cols = ["icustay_id", "onset_s", "onset_kind", "abx_s", "culture_s"]
    if not len(abx) or not len(cult):
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    a = abx.sort_values("t", kind="stable")[["icustay_id", "t", "order"]].rename(columns={"t": "a"})
    c = cult.sort_values("t", kind="stable")[["icustay_id", "t"]].rename(columns={"t": "c"}).drop_duplicates()
    A, C = abx_then_culture_h * H, culture_then_abx_h * H
    if earliest:
        # antibiotic first: the first culture at or after a must fall within A
        fa = pd.merge_asof(a, c.assign(ct=c["c"]), left_on="a", right_on="c", by="icustay_id", direction="forward")
        fa = fa[(fa["ct"] - fa["a"]) <= A]
        ca = pd.DataFrame({"icustay_id": fa["icustay_id"], "onset_s": fa["a"], "onset_kind": "abx_first",
                           "abx_s": fa["a"], "culture_s": fa["ct"], "pri": 0})
        # culture first: the first antibiotic at or after c must fall within C
        fc = pd.merge_asof(c, a.assign(at=a["a"]), left_on="c", right_on="a", by="icustay_id", direction="forward")
        fc = fc[(fc["at"] - fc["c"]) <= C]
        cc = pd.DataFrame({"icustay_id": fc["icustay_id"], "onset_s": fc["c"], "onset_kind": "culture_first",
                           "abx_s": fc["at"], "culture_s": fc["c"], "pri": 1})
        cand = pd.concat([ca, cc], ignore_index=True).sort_values(["icustay_id", "onset_s", "pri"], kind="stable")
        out = cand.drop_duplicates("icustay_id")
    else:
        n = pd.merge_asof(a, c.assign(ct=c["c"]), left_on="a", right_on="c", by="icustay_id", direction="nearest")
        n = n.dropna(subset=["ct"])
        abx_first = (n["a"] <= n["ct"]) & (n["ct"] - n["a"] <= A)
        cul_first = ~abx_first & (n["ct"] < n["a"]) & (n["a"] - n["ct"] <= C)
        keep = (abx_first | cul_first).to_numpy()
        n = n[keep].assign(af=abx_first.to_numpy()[keep])
        n = n.sort_values(["icustay_id", "order"], kind="stable").drop_duplicates("icustay_id")
        if not len(n):
            return pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
        out = pd.DataFrame({"icustay_id": n["icustay_id"], "onset_s": np.where(n["af"], n["a"], n["ct"]),
                            "onset_kind": np.where(n["af"], "abx_first", "culture_first"), "abx_s": n["a"],
                            "culture_s": n["ct"]})
    return out[cols].reset_index(drop=True)
