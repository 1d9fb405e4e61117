"""A generated stand-in CHARTEVENTS for the MIMIC-III demo (cohort.md 10.4).

THIS IS PROJECT DATA, NOT MIMIC DATA. The open MIMIC-III demo ships every table but CHARTEVENTS. To exercise
``ingest`` and ``cohort`` on the demo's real layouts, this module writes a small, deterministic, seeded
``CHARTEVENTS.csv.gz`` in the official 15-column dialect (quoted upper-case header, same column order; strings
quoted, numbers bare, empty = NULL, fractions written ``.5``) for a subset of the demo's ICU stays, with their
real SUBJECT_ID, HADM_ID, ICUSTAY_ID and INTIME-OUTTIME. Values are invented from simple per-stay baselines:
they are plausible, not clinical truth.

Content: CareVue items for CareVue stays, MetaVision items for MetaVision stays (``both`` stays are treated as
MetaVision); hourly vitals (HR, BP, RR, SpO2), 4-hourly temperature and GCS (CareVue totals 198 and components;
MetaVision components only, verbal "No Response-ETT" while intubated), RASS, FiO2 in percent and as a fraction,
O2 flow with device text, 12-hourly labs, weight and height, ventilator settings with an extubation (CV 640
"Extubated"), charted culture items. Deliberate faults: item 160 "Ectopy Frequency 2", a Fahrenheit value in a
Celsius item, ERROR = 1 rows, out-of-range values, and rows without ICUSTAY_ID.

Itemids are only those of adrl/mimic/facts/concepts.csv (plus a few irrelevant ones, so ingest has something to
filter out); none is hard-coded as a clinical fact elsewhere.
"""
from __future__ import annotations

import gzip
import logging
import os

import numpy as np
import pandas as pd

log = logging.getLogger("adrl.mimic")

COLUMNS = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "ITEMID", "CHARTTIME", "STORETIME", "CGID", "VALUE",
           "VALUENUM", "VALUEUOM", "WARNING", "ERROR", "RESULTSTATUS", "STOPPED"]
MAX_HOURS = 168          # hourly rows for at most a week per stay (keeps the table small)
IRRELEVANT = {"cv": [(31, "", "Activity"), (80, "", "Bowel Sounds")],   # charted, but no concept of the cohort
              "mv": [(220048, "", "Heart Rhythm"), (224641, "", "Alarms On")]}

# (itemid, every_h, offset_h, mean, sd, lo, hi, uom, decimals)
_VITALS = {
    "cv": [(211, 1, 0, 88, 14, 30, 200, "BPM", 0), (455, 1, 0, 118, 18, 60, 220, "mmHg", 0),
           (456, 1, 0, 78, 11, 40, 150, "mmHg", 0), (8441, 1, 0, 60, 10, 25, 120, "mmHg", 0),
           (618, 1, 0, 19, 5, 6, 50, "BPM", 0), (646, 1, 0, 96, 2.5, 70, 100, "%", 0),
           (678, 4, 0, 99.0, 1.3, 94, 105, "Deg. F", 1)],
    "mv": [(220045, 1, 0, 88, 14, 30, 200, "bpm", 0), (220179, 1, 0, 118, 18, 60, 220, "mmHg", 0),
           (220181, 1, 0, 78, 11, 40, 150, "mmHg", 0), (220180, 1, 0, 60, 10, 25, 120, "mmHg", 0),
           (220210, 1, 0, 19, 5, 6, 50, "insp/min", 0), (220277, 1, 0, 96, 2.5, 70, 100, "%", 0),
           (223761, 4, 0, 99.0, 1.3, 94, 105, "?F", 1), (223762, 8, 2, 37.2, 0.7, 34.5, 40.5, "?C", 1)],
}
_ART = {"cv": [(51, 1, 0, 120, 18, 60, 220, "mmHg", 0), (52, 1, 0, 80, 11, 40, 150, "mmHg", 0),
               (8368, 1, 0, 60, 10, 25, 120, "mmHg", 0)],
        "mv": [(220050, 1, 0, 120, 18, 60, 220, "mmHg", 0), (220052, 1, 0, 80, 11, 40, 150, "mmHg", 0),
               (220051, 1, 0, 60, 10, 25, 120, "mmHg", 0)]}
_LABS = {
    "cv": [(829, 4.1, .5, 2.5, 7, "mEq/L", 1), (837, 139, 4, 120, 160, "mEq/L", 0), (788, 104, 4, 85, 125, "mEq/L", 0),
           (811, 135, 35, 50, 400, "mg/dL", 0), (821, 2.0, .3, 1, 4, "mg/dL", 1), (786, 8.4, .6, 6, 11, "mg/dL", 1),
           (814, 10.2, 1.5, 6, 16, "gm/dl", 1), (813, 30.5, 4, 18, 48, "%", 1), (1127, 11.5, 4, 1, 40, "K/uL", 1),
           (828, 210, 80, 10, 600, "K/uL", 0), (825, 34, 8, 20, 120, "sec", 1), (824, 14, 2, 10, 40, "sec", 1),
           (815, 1.3, .3, .8, 6, "", 1), (781, 28, 14, 4, 150, "mg/dL", 0), (791, 1.5, .8, .3, 9, "mg/dL", 1),
           (848, 1.2, 1.0, .1, 20, "mg/dL", 1), (770, 60, 40, 5, 2000, "IU/L", 0), (769, 50, 35, 5, 2000, "IU/L", 0),
           (780, 7.38, .06, 7.0, 7.6, "", 2), (779, 110, 35, 40, 400, "mmHg", 0), (778, 40, 7, 20, 90, "mmHg", 0),
           (776, -1, 4, -20, 15, "mEq/L", 0), (1531, 2.1, 1.2, .4, 15, "mmol/L", 1)],
    "mv": [(227442, 4.1, .5, 2.5, 7, "mEq/L", 1), (220645, 139, 4, 120, 160, "mEq/L", 0),
           (220602, 104, 4, 85, 125, "mEq/L", 0), (220621, 135, 35, 50, 400, "mg/dL", 0),
           (220635, 2.0, .3, 1, 4, "mg/dL", 1), (225625, 8.4, .6, 6, 11, "mg/dL", 1), (220228, 10.2, 1.5, 6, 16, "g/dl", 1),
           (220545, 30.5, 4, 18, 48, "%", 1), (220546, 11.5, 4, 1, 40, "K/uL", 1), (227457, 210, 80, 10, 600, "K/uL", 0),
           (227466, 34, 8, 20, 120, "sec", 1), (227467, 1.3, .3, .8, 6, "", 1), (225624, 28, 14, 4, 150, "mg/dL", 0),
           (220615, 1.5, .8, .3, 9, "mg/dL", 1), (225690, 1.2, 1.0, .1, 20, "mg/dL", 1), (227443, 24, 4, 10, 40, "mEq/L", 0),
           (225668, 2.1, 1.2, .4, 15, "mmol/L", 1), (224828, -1, 4, -20, 15, "mEq/L", 0)],
}
_DEVICES = {"cv": (467, ["Nasal cannula", "Face tent", "Non-rebreather", "None"]),
            "mv": (226732, ["Nasal cannula", "Face tent", "Non-rebreather", "Venti mask "])}


def _fmt_num(x: np.ndarray, decimals: np.ndarray | int) -> np.ndarray:
    """Numbers as MIMIC writes them: no trailing zeros, fractions without the leading zero (.5)."""
    x = np.asarray(x, float)
    dec = np.broadcast_to(np.asarray(decimals), x.shape)
    out = np.empty(x.shape, object)
    ok = ~np.isnan(x)
    for d in np.unique(dec[ok]):
        m = ok & (dec == d)
        s = np.char.mod(f"%.{int(d)}f", np.round(x[m], int(d)))
        if d > 0:
            s = np.char.rstrip(np.char.rstrip(s, "0"), ".")
        s = np.where(np.char.startswith(s, "0."), np.char.lstrip(s, "0"), s)
        s = np.where(np.char.startswith(s, "-0."), np.char.replace(s, "-0.", "-."), s)
        out[m] = s
    out[~ok] = ""
    return out


def _q(s: pd.Series) -> pd.Series:
    """Quote a string column (empty/None -> bare empty field = NULL)."""
    s = s.astype(object).where(s.notna(), "").astype(str)
    return np.where(s == "", "", '"' + s.str.replace('"', '""', regex=False) + '"')


def generate_demo_chartevents(icustays: pd.DataFrame, *, seed: int = 0, n_stays: int | None = None) -> pd.DataFrame:
    """The stand-in CHARTEVENTS rows (columns of :data:`COLUMNS`, typed) for a seeded subset of ``icustays``.

    ``icustays``: the demo's ICUSTAYS (upper- or lower-case headers). ``n_stays``: how many stays to cover
    (default: about three quarters, chosen by the seed; the rest have no chart data, like a real gap).
    """
    rng = np.random.default_rng(seed)
    st = icustays.rename(columns=str.upper)
    st = st[st.INTIME.notna() & st.OUTTIME.notna()].sort_values("ICUSTAY_ID").reset_index(drop=True)
    st["INTIME"], st["OUTTIME"] = pd.to_datetime(st.INTIME), pd.to_datetime(st.OUTTIME)
    n = len(st) if n_stays is None else min(int(n_stays), len(st))
    if n_stays is None:
        n = max(1, int(round(0.75 * len(st))))
    st = st.iloc[np.sort(rng.choice(len(st), n, replace=False))].reset_index(drop=True)
    st["sys"] = np.where(st.DBSOURCE.str.lower() == "carevue", "cv", "mv")
    # per-stay hourly grid
    start = st.INTIME.dt.ceil("h")
    hours = np.clip(((np.minimum(st.OUTTIME, st.INTIME + pd.Timedelta(hours=MAX_HOURS)) - start)
                     / pd.Timedelta(hours=1)).astype(int), 0, None).to_numpy()
    si = np.repeat(np.arange(len(st)), hours)
    hr = np.concatenate([np.arange(h) for h in hours]) if len(hours) else np.zeros(0, int)
    gtime = start.to_numpy()[si] + hr.astype("timedelta64[h]")
    gsys = st.sys.to_numpy()[si]
    art = rng.random(len(st)) < 0.5                                   # arterial line
    vent = rng.random(len(st)) < 0.45                                 # ventilated from admission ...
    ext_h = np.where(vent, rng.integers(12, 96, len(st)), -1)         # ... until an extubation
    sev = rng.normal(0, 1, len(st))                                   # per-stay severity
    parts: list[pd.DataFrame] = []

    def emit(mask, itemid, valuenum, value=None, uom="", decimals=0):
        idx = np.flatnonzero(mask)
        if not len(idx):
            return
        vn = np.asarray(valuenum, float)[idx] if np.ndim(valuenum) else np.full(len(idx), float(valuenum))
        if value is None:
            vs = _fmt_num(vn, decimals)
        elif np.ndim(value):
            vs = np.asarray(value, object)[idx]
        else:
            vs = np.full(len(idx), value, object)
        parts.append(pd.DataFrame({"si": si[idx], "CHARTTIME": gtime[idx], "ITEMID": itemid, "VALUE": vs,
                                   "VALUENUM": vn, "VALUEUOM": uom, "dec": decimals}))

    ng = len(si)
    for sys_ in ("cv", "mv"):
        on = gsys == sys_
        for it, every, off, mu, sd, lo, hi, uom, dec in _VITALS[sys_]:
            v = np.clip(mu + sd * (0.6 * sev[si] + rng.normal(0, 1, ng)), lo, hi)
            emit(on & (hr % every == off), it, v, uom=uom, decimals=dec)
        for it, every, off, mu, sd, lo, hi, uom, dec in _ART[sys_]:
            v = np.clip(mu + sd * (0.6 * sev[si] + rng.normal(0, 1, ng)), lo, hi)
            emit(on & art[si] & (hr % every == off), it, v, uom=uom, decimals=dec)
        for it, mu, sd, lo, hi, uom, dec in _LABS[sys_]:
            v = np.clip(mu + sd * (0.7 * sev[si] + 0.5 * rng.normal(0, 1, ng)), lo, hi)
            emit(on & (hr % 12 == 3), it, v, uom=uom, decimals=dec)
        intub = vent[si] & (hr < ext_h[si])
        g4 = on & (hr % 4 == 1)
        eye = np.clip(np.round(4 - 1.2 * np.clip(sev[si], 0, None) + rng.normal(0, .5, ng)), 1, 4)
        motor = np.clip(np.round(6 - 1.5 * np.clip(sev[si], 0, None) + rng.normal(0, .5, ng)), 1, 6)
        verbal = np.where(intub, 1, np.clip(np.round(5 - 1.5 * np.clip(sev[si], 0, None) + rng.normal(0, .5, ng)), 1, 5))
        if sys_ == "cv":
            emit(g4, 198, eye + motor + verbal, uom="points")
            emit(g4, 184, eye, value=np.char.add(_fmt_num(eye, 0).astype(str), " To Speech"))
            emit(g4, 454, motor, value=np.char.add(_fmt_num(motor, 0).astype(str), " Obeys Commands"))
            emit(g4, 723, verbal, value=np.where(intub, "1.0 ET/Trach", np.char.add(_fmt_num(verbal, 0).astype(str),
                                                                                      " Confused")))
        else:
            emit(g4, 220739, eye, value="Spontaneously")
            emit(g4, 223901, motor, value="Obeys Commands")
            emit(g4, 223900, verbal, value=np.where(intub, "No Response-ETT", "Oriented"))
            emit(g4 & intub, 228096, np.clip(np.round(-1 - sev[si] + rng.normal(0, 1, ng)), -5, 4),
                 value=None, uom="")
        # oxygen: FiO2 in percent (and fractions), device and flow when not intubated
        g2 = on & (hr % 2 == 0)
        fio2 = np.clip(np.round(40 + 15 * sev[si] + rng.normal(0, 5, ng)), 21, 100)
        if sys_ == "cv":
            emit(g2 & intub, 3420, fio2, uom="%")
            emit(g2 & intub & (hr % 4 == 0), 190, fio2 / 100, uom="torr", decimals=2)
        else:
            emit(g2 & intub & (hr % 6 != 0), 223835, fio2, uom="None")
            emit(g2 & intub & (hr % 6 == 0), 223835, fio2 / 100, uom="None", decimals=2)   # a fraction, same item
        dev_item, devices = _DEVICES[sys_]
        dev = np.asarray(devices, object)[(np.clip(sev[si], -1, 1.99) + 1).astype(int) % len(devices)]
        if sys_ == "mv":
            dev = np.where(intub, "Endotracheal tube", dev)
        else:
            dev = np.where(intub, "Ventilator", dev)
        flow = np.clip(np.round(2 + 2.5 * np.clip(sev[si], 0, None) + rng.normal(0, 1, ng)), 1, 15)
        emit(g2, dev_item, np.nan, value=dev)
        emit(g2 & ~intub, 470 if sys_ == "cv" else 223834, flow, uom="L/min")
        # ventilator settings while intubated, then the extubation
        if sys_ == "cv":
            emit(g4 & intub, 720, np.nan, value="Assist Control")
            emit(g4 & intub, 682, np.round(480 + rng.normal(0, 60, ng)), uom="ml")
            emit(g4 & intub, 505, np.round(5 + 3 * np.clip(sev[si], 0, None)), uom="cmH2O")
            emit(on & vent[si] & (hr == ext_h[si]), 640, np.nan, value="Extubated")
        else:
            emit(g4 & intub, 224685, np.round(480 + rng.normal(0, 60, ng)), uom="mL")
            emit(g4 & intub, 220339, np.round(5 + 3 * np.clip(sev[si], 0, None)), uom="cmH2O")
            emit(g4 & intub, 224687, np.round(8 + rng.normal(0, 1.5, ng), 1), uom="L/min", decimals=1)
        # weight and height at the first hour; daily weights
        first = on & (hr == 0)
        wt = np.clip(np.round(78 + 16 * rng.normal(0, 1, len(st)), 1), 40, 180)[si]
        if sys_ == "cv":
            emit(first, 580, wt, uom="kg", decimals=1)
            emit(on & (hr % 24 == 6), 763, wt, uom="kg", decimals=1)
            emit(first & (st.ICUSTAY_ID.to_numpy()[si] % 3 == 0), 3581, wt / 0.45359237, uom="lb", decimals=1)
        else:
            emit(first, 226512, wt, uom="kg", decimals=1)
            emit(first & (st.ICUSTAY_ID.to_numpy()[si] % 3 == 0), 226531, wt / 0.45359237, uom="lbs", decimals=1)
            emit(on & (hr % 24 == 6), 224639, wt, uom="kg", decimals=1)
            ht = np.round(170 + 10 * rng.normal(0, 1, len(st)))[si]
            emit(first, 226707, np.round(ht / 2.54), uom="Inch")
            emit(first, 226730, ht, uom="cm")
        # charted culture items
        cult = on & (hr == 2)
        if sys_ == "cv":
            emit(cult, 938, np.nan, value="Sent")
            emit(cult & (si % 2 == 0), 6035, np.nan, value="Sent")      # urinalysis sent: not a culture
        else:
            emit(cult & (si % 2 == 0), 225722, np.nan, value="Sent")
        for it, _, _ in IRRELEVANT[sys_]:
            emit(on & (hr % 4 == 2), it, np.nan, value="Present")
    ce = pd.concat(parts, ignore_index=True)
    # ---- deliberate faults (each a few rows, chosen by the seed)
    cv_rows = ce.index[(st.sys.to_numpy()[ce.si] == "cv")].to_numpy()
    mv_rows = ce.index[(st.sys.to_numpy()[ce.si] == "mv")].to_numpy()
    faults = []
    if len(cv_rows):
        pick = rng.choice(cv_rows, min(6, len(cv_rows)), replace=False)
        f = ce.loc[pick].copy()
        f["ITEMID"], f["VALUENUM"], f["VALUE"], f["VALUEUOM"], f["dec"] = 160, np.nan, "Occasional", "", 0
        f.loc[f.index[:2], "VALUENUM"] = 2.0                           # item 160 with a number: read by faithful FiO2
        f.loc[f.index[:2], "VALUE"] = "2"
        faults.append(f)
        c = ce.loc[ce.index.isin(cv_rows) & (ce.ITEMID == 678)].head(2).copy()
        c["ITEMID"], c["VALUEUOM"] = 676, "Deg. C"                      # a Fahrenheit value in a Celsius item
        faults.append(c)
    if len(mv_rows):
        c = ce.loc[ce.index.isin(mv_rows) & (ce.ITEMID == 223761)].head(2).copy()
        c["ITEMID"], c["VALUEUOM"] = 223762, "?C"                       # Fahrenheit in the Celsius item
        faults.append(c)
        e = ce.loc[rng.choice(mv_rows, min(8, len(mv_rows)), replace=False)].copy()
        e["ERR"] = 1                                                    # ERROR = 1 rows (a mis-keyed value)
        e["VALUENUM"] = e.VALUENUM * 3
        faults.append(e)
    hrs = ce.index[ce.ITEMID.isin([211, 220045])].to_numpy()
    if len(hrs):
        o = ce.loc[rng.choice(hrs, min(3, len(hrs)), replace=False)].copy()
        o["VALUENUM"] = [300.0, 350.0, 0.0][:len(o)]                   # out of range heart rates
        faults.append(o)
    sp = ce.index[ce.ITEMID.isin([646, 220277])].to_numpy()
    if len(sp):
        o = ce.loc[rng.choice(sp, min(2, len(sp)), replace=False)].copy()
        o["VALUENUM"] = [140.0, 160.0][:len(o)]                        # SpO2: one capped, one dropped
        faults.append(o)
    noid = ce.loc[rng.choice(len(ce), min(5, len(ce)), replace=False)].copy()
    noid["NOID"] = True                                                 # rows without ICUSTAY_ID
    faults.append(noid)
    ce = pd.concat([ce] + faults, ignore_index=True)
    # keep VALUE in step with VALUENUM for numeric rows (faults changed some numbers)
    numeric = ce.VALUENUM.notna() & ~ce.ITEMID.isin([184, 454, 723, 220739, 223900, 223901, 160])
    ce.loc[numeric, "VALUE"] = _fmt_num(ce.VALUENUM[numeric].to_numpy(), ce.dec[numeric].to_numpy())
    # ---- keys, times, system-specific columns
    s = st.iloc[ce.si.to_numpy()].reset_index(drop=True)
    out = pd.DataFrame({
        "SUBJECT_ID": s.SUBJECT_ID.astype("int64"), "HADM_ID": s.HADM_ID.astype("int64"),
        "ICUSTAY_ID": s.ICUSTAY_ID.astype("Int64"), "ITEMID": ce.ITEMID.astype("int64"),
        "CHARTTIME": pd.to_datetime(ce.CHARTTIME),
        "VALUE": ce.VALUE, "VALUENUM": ce.VALUENUM, "VALUEUOM": ce.VALUEUOM, "dec": ce.dec})
    if "NOID" in ce:
        out.loc[ce.NOID.fillna(False).astype(bool).to_numpy(), "ICUSTAY_ID"] = pd.NA
    is_mv = (s.sys == "mv").to_numpy()
    err = ce["ERR"].fillna(0).to_numpy() if "ERR" in ce else np.zeros(len(ce))
    out["STORETIME"] = out.CHARTTIME + pd.to_timedelta(rng.integers(1, 90, len(ce)), "m")
    out["CGID"] = rng.integers(14000, 21600, len(ce))
    out["WARNING"] = pd.array(np.where(is_mv, 0, pd.NA), dtype="Int64")
    out["ERROR"] = pd.array(np.where(is_mv, err, pd.NA), dtype="Int64")
    out.loc[(err == 1) & is_mv, "WARNING"] = 1
    out["RESULTSTATUS"] = None
    out["STOPPED"] = np.where(is_mv, None, "NotStopd")
    out = out.sort_values(["SUBJECT_ID", "CHARTTIME", "ITEMID"], kind="stable").reset_index(drop=True)
    out["ROW_ID"] = np.arange(1, len(out) + 1, dtype=np.int64)
    return out[COLUMNS + ["dec"]]


def to_mimic_csv(ce: pd.DataFrame) -> str:
    """CSV text in the official dialect (quoted header and strings, bare numbers, empty NULLs)."""
    def ints(s):
        return s.astype("Int64").astype("string").fillna("").astype(object)

    def times(s):
        return s.dt.strftime("%Y-%m-%d %H:%M:%S").astype(object).fillna("")

    cols = {
        "ROW_ID": ints(ce.ROW_ID), "SUBJECT_ID": ints(ce.SUBJECT_ID), "HADM_ID": ints(ce.HADM_ID),
        "ICUSTAY_ID": ints(ce.ICUSTAY_ID), "ITEMID": ints(ce.ITEMID), "CHARTTIME": times(ce.CHARTTIME),
        "STORETIME": times(ce.STORETIME), "CGID": ints(ce.CGID), "VALUE": _q(ce.VALUE),
        "VALUENUM": pd.Series(_fmt_num(ce.VALUENUM.to_numpy(float), ce.get("dec", pd.Series(2, index=ce.index))
                                       .to_numpy()), index=ce.index),
        "VALUEUOM": _q(ce.VALUEUOM), "WARNING": ints(ce.WARNING), "ERROR": ints(ce.ERROR),
        "RESULTSTATUS": _q(ce.RESULTSTATUS), "STOPPED": _q(ce.STOPPED)}
    body = None
    for c in COLUMNS:
        col = pd.Series(np.asarray(cols[c], dtype=object), index=ce.index).fillna("").astype(object)
        body = col if body is None else body + "," + col
    header = ",".join(f'"{c}"' for c in COLUMNS)
    return header + "\n" + "\n".join(body.tolist()) + "\n"


def write_demo_chartevents(demo_dir: str | os.PathLike, out_path: str | os.PathLike, *, seed: int = 0,
                           n_stays: int | None = None) -> dict:
    """Write the stand-in ``CHARTEVENTS.csv.gz`` for the demo's ICUSTAYS (deterministic bytes for a seed).

    Returns a summary (rows, stays, per-system counts, fault counts).
    """
    from ..io import atomic_path
    from .files import find_table

    icu = pd.read_csv(find_table(demo_dir, "icustays"))
    ce = generate_demo_chartevents(icu, seed=seed, n_stays=n_stays)
    text = to_mimic_csv(ce).encode()
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0, compresslevel=6) as f:
            f.write(text)
    summary = {"rows": len(ce), "stays": int(ce.ICUSTAY_ID.nunique()), "without_icustay_id": int(ce.ICUSTAY_ID.isna().sum()),
               "error_1": int((ce.ERROR == 1).sum()), "item_160": int((ce.ITEMID == 160).sum())}
    log.info("generated stand-in CHARTEVENTS (project data, not MIMIC data): %s -> %s", summary, out_path)
    return summary
