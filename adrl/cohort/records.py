"""Record-level cleaning (cohort.md 3.7): interim event rows -> long (stay, time, concept, value) records.

Every dropped row is counted in ``counts`` under a key naming the table/concept and the reason.
Text concepts are turned into numeric codes via ``spec.text_values`` (a code of -1 on GCS_verbal marks the
intubated value, which makes the GCS 15, the mimic-code convention).
"""
from __future__ import annotations

import weakref
from collections import Counter

import numpy as np
import pandas as pd

from .grid import H, to_seconds
from .spec import GCS_PARTS, CohortSpec

RECORD_COLUMNS = ("s", "t", "concept", "value")
INTUBATED = -1.0


INTERNAL_CONCEPTS = ("Total_bili_raw", "Weight_mv")


def concept_categories(spec: CohortSpec) -> list:
    return list(_derived(spec)["categories"])


_DERIVED: dict = {}


def _derived(spec: CohortSpec) -> dict:
    """What the cleaning derives from the spec alone (concept categories, the text-value table), computed once
    per spec object (the featuriser cleans bin by bin in roll-outs: many small calls)."""
    hit = _DERIVED.get(id(spec))
    if hit is not None and hit[0]() is spec:
        return hit[1]
    cats = sorted(set(spec.obs_items["concept"].astype(str)) | set(spec.concept_info.index) | {"GCS"}
                  | set(INTERNAL_CONCEPTS))
    tv = spec.text_values
    key = pd.MultiIndex.from_arrays([tv["concept"].to_numpy(), tv["value"].str.lower().str.strip().to_numpy()])
    lut = pd.Series(tv["code"].to_numpy(np.float64), index=key)
    d = {"categories": tuple(cats), "dtype": pd.CategoricalDtype(cats), "code": {c: i for i, c in enumerate(cats)},
         "text_lut": lut[~lut.index.duplicated()]}
    _DERIVED[id(spec)] = (weakref.ref(spec), d)
    return d


def _cat(spec: CohortSpec, values) -> pd.Categorical:
    return pd.Categorical(values, dtype=_derived(spec)["dtype"])


def _cat_const(spec: CohortSpec, concept: str, n: int) -> pd.Categorical:
    """``_cat(spec, [concept] * n)`` without n strings."""
    d = _derived(spec)
    return pd.Categorical.from_codes(np.full(n, d["code"][concept], np.int32), dtype=d["dtype"])


def _empty(spec: CohortSpec):
    return pd.DataFrame({"s": pd.Series(dtype=np.int64), "t": pd.Series(dtype=np.float64),
                         "concept": pd.Series(_cat(spec, [])), "value": pd.Series(dtype=np.float64)})


def attach_by_icustay(df: pd.DataFrame, stay_pos: pd.Series, table: str, counts: Counter) -> pd.DataFrame:
    """Add column s (batch position) from icustay_id; rows of other stays are outside the batch (not counted),
    rows without ICUSTAY_ID are counted."""
    noid = df["icustay_id"].isna()
    if noid.any():
        counts[f"{table}: rows dropped (no ICUSTAY_ID)"] += int(noid.sum())
    idx = pd.Index(stay_pos.index).get_indexer(df["icustay_id"].to_numpy(np.float64, na_value=np.nan))
    ok = idx >= 0
    return (df if ok.all() else df[ok]).assign(s=stay_pos.to_numpy()[idx[ok]].astype(np.int64))


def attach_labs(le: pd.DataFrame, stays: pd.DataFrame, counts: Counter, pad_h: float = 24.0) -> pd.DataFrame:
    """LABEVENTS by HADM_ID with CHARTTIME in [INTIME - pad, OUTTIME + pad] (reference rule)."""
    st = stays[["s", "hadm_id", "intime_s", "outtime_s"]]
    m = le.merge(st, on="hadm_id", how="inner")
    t = to_seconds(m["charttime"])
    ok = (t >= m["intime_s"].to_numpy() - pad_h * H) & (t <= m["outtime_s"].to_numpy() + pad_h * H)
    return m[ok].drop(columns=["intime_s", "outtime_s"])


def _text_codes(values: pd.Series, concepts: pd.Series, spec: CohortSpec) -> np.ndarray:
    lut = _derived(spec)["text_lut"]
    q = pd.MultiIndex.from_arrays([concepts.to_numpy(), values.astype("string").str.lower().str.strip()
                                   .fillna("").to_numpy()])
    return lut.reindex(q).to_numpy(np.float64)


def clean_chart_like(df: pd.DataFrame, table: str, spec: CohortSpec, corrected_errors: bool,
                     arterial: bool, counts: Counter, specimen: pd.DataFrame | None = None) -> pd.DataFrame:
    """CHARTEVENTS / LABEVENTS rows (with column s) -> long records, cleaned and range-checked."""
    items = spec.obs_items[spec.obs_items["table"] == table]
    items = items.assign(concept=_cat(spec, items["concept"].astype(str)))
    if not len(df) or not len(items):
        return _empty(spec)
    if corrected_errors and "error" in df.columns:
        err = df["error"].fillna(0).to_numpy() == 1
        counts[f"{table}: rows dropped (ERROR = 1)"] += int(err.sum())
        if err.any():
            df = df[~err]
    # merge without the (costly) VALUE strings; fetch them for text items only
    base = df[[c for c in ("s", "subject_id", "itemid", "charttime", "valuenum") if c in df.columns]]
    df = df.reset_index(drop=True)
    base = base.assign(_r=np.arange(len(base)))
    m = base.merge(items, on="itemid", how="inner")
    kind = m["kind"].to_numpy()
    vnum = m["valuenum"].to_numpy(np.float64) * m["factor"].to_numpy(np.float64)
    text = np.full(len(m), np.nan)
    need_text = np.isin(kind, ["text", "any", "num_text"])
    has_val = ~np.isnan(m["valuenum"].to_numpy(np.float64))
    if need_text.any():
        r = m["_r"].to_numpy()[need_text]
        vals = df["value"].iloc[r].reset_index(drop=True)
        text[need_text] = _text_codes(vals, m.loc[need_text, "concept"].reset_index(drop=True), spec)
        has_val[need_text] |= vals.notna().to_numpy()
    tv_conc = set(spec.text_values["concept"])
    val = np.select(
        [kind == "num", kind == "text", kind == "num_text", kind == "any"],
        [vnum, text, np.where(np.isnan(text), vnum, text),
         np.where(has_val & np.isnan(text), 1.0, np.where(text == 1, 1.0, np.nan))], np.nan)
    # kind "any": a text_values row with code 0 excludes that value (e.g. ventilator mode "Other/Remarks")
    missing = np.isnan(val)
    if missing.any():
        mm = m.loc[missing, ["concept", "kind"]]
        for (conc, knd), n in mm.value_counts().items():
            if not n:
                continue
            reason = "unmapped text" if knd == "text" and conc in tv_conc else "no value"
            if knd == "any" or conc in ("mechvent", "extubation"):
                reason = "not evidence (value)"
            counts[f"{table}: {conc}: rows dropped ({reason})"] += int(n)
    m = m.assign(value_=val)[~missing]
    conv = m["convert"].fillna("").to_numpy()
    v = m["value_"].to_numpy(np.float64).copy()
    # temperature (AI Clinician): 25-45 in a degF item is Celsius; > 70 in a degC item is Fahrenheit
    f_item = conv == "F_to_C"
    c_item = conv == "C_or_F"
    to_c = (f_item & ~((v >= 25) & (v <= 45))) | (c_item & (v > 70))
    counts["Temp_C: Celsius values in a Fahrenheit item"] += int((f_item & (v >= 25) & (v <= 45)).sum())
    counts["Temp_C: Fahrenheit values in a Celsius item"] += int((c_item & (v > 70)).sum())
    v = np.where(to_c, (v - 32.0) / 1.8, v)
    fio2 = conv == "fio2_pct_or_frac"
    fbad = fio2 & (v > 100)
    counts[f"{table}: FiO2_1: rows dropped (above 100)"] += int(fbad.sum())
    v = np.where(fio2 & (v > 1) & (v <= 100), v / 100.0, v)
    spo2 = conv == "spo2"
    sbad = spo2 & (v > 150)
    counts[f"{table}: SpO2: rows dropped (above 150)"] += int(sbad.sum())
    v = np.where(spo2 & (v > 100) & (v <= 150), 100.0, v)
    keep = ~(fbad | sbad)
    if "valueuom_ok" in m.columns and "valueuom" in df.columns:
        # lab units (cohort.md 3.7.2): compared case-insensitively with the accepted spellings; a mismatch is
        # counted and the value dropped, never converted
        ok_u = m["valueuom_ok"].fillna("").to_numpy(object)
        chk = ok_u != ""
        if chk.any():
            r = m["_r"].to_numpy()[chk]
            got = df["valueuom"].iloc[r].astype("string").str.strip().str.lower().fillna("(none)").to_numpy(object)
            got = np.where(got == "", "(none)", got)
            bad_u = ~_unit_ok(got, ok_u[chk])
            badm = np.zeros(len(m), bool)
            badm[np.flatnonzero(chk)] = bad_u
            badm &= keep
            if badm.any():
                for conc, n in m.loc[badm, "concept"].astype(str).value_counts().items():
                    counts[f"{table}: {conc}: rows dropped (unit mismatch)"] += int(n)
            keep &= ~badm
    if arterial and specimen is not None and len(specimen) and "arterial_only" in m.columns:
        ao = m["arterial_only"].fillna(False).to_numpy(bool)
        if ao.any():
            sp = specimen.groupby(["subject_id", "charttime"], as_index=False)["code"].min()
            j = m.loc[ao, ["subject_id", "charttime"]].merge(sp, on=["subject_id", "charttime"], how="left")
            venous = np.zeros(len(m), bool)
            venous[np.flatnonzero(ao)] = j["code"].to_numpy(np.float64) == 0
            counts[f"{table}: blood-gas rows dropped (non-arterial specimen)"] += int((keep & venous).sum())
            keep &= ~venous
    out = pd.DataFrame({"s": m["s"].to_numpy(np.int64)[keep], "t": to_seconds(m["charttime"])[keep],
                        "concept": m["concept"][keep].reset_index(drop=True), "value": v[keep]})
    return out


def _unit_ok(got: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Vectorised over the few distinct (unit, allowed) pairs."""
    pairs = pd.DataFrame({"g": got, "a": allowed})
    u = pairs.drop_duplicates()
    ok = {(g, a): g in {x.strip().lower() for x in a.split("|")} for g, a in zip(u["g"], u["a"])}
    lut = pd.DataFrame([(g, a, v) for (g, a), v in ok.items()], columns=["g", "a", "v"])
    return pairs.merge(lut, on=["g", "a"], how="left")["v"].to_numpy(bool)


def range_check(rec: pd.DataFrame, spec: CohortSpec, counts: Counter) -> pd.DataFrame:
    """Values outside the concept's range become missing (dropped) and are counted per concept. The raw total
    bilirubin is kept as Total_bili_raw first (the exclusion of cohort.md 3.13 looks at raw values)."""
    ci = spec.concept_info
    raw_bili = rec[rec["concept"] == "Total_bili"]
    raw_bili = raw_bili.assign(concept=_cat_const(spec, "Total_bili_raw", len(raw_bili)))
    conc = rec["concept"].astype("category")
    cats = [("Weight_kg" if c == "Weight_mv" else c) for c in conc.cat.categories]  # MV weights: weight range
    codes = conc.cat.codes.to_numpy()
    lo = np.append(ci["lo"].reindex(cats).to_numpy(np.float64), np.nan)[codes]
    hi = np.append(ci["hi"].reindex(cats).to_numpy(np.float64), np.nan)[codes]
    v = rec["value"].to_numpy(np.float64)
    bad = (~np.isnan(lo) & (v < lo)) | (~np.isnan(hi) & (v > hi))
    if bad.any():
        for conc, n in rec.loc[bad, "concept"].value_counts().items():
            counts[f"{conc}: values out of range"] += int(n)
    return pd.concat([rec[~bad], raw_bili], ignore_index=True)


def build_gcs(rec: pd.DataFrame, spec: CohortSpec) -> pd.DataFrame:
    """GCS per charting time (cohort.md 3.7.7): the total when charted; else eye + verbal + motor charted at
    that time, a missing part from the stay's previous charting within the window, else its normal value;
    an intubated verbal value gives 15. Component records are replaced by GCS records."""
    parts = rec[rec["concept"].isin(GCS_PARTS)]
    rest = rec[~rec["concept"].isin(GCS_PARTS)]
    if not len(parts):
        return rest
    times = parts[["s", "t"]].drop_duplicates().sort_values("t", kind="stable")
    tol = spec.gcs_part_window_h * H
    tot = np.zeros(len(times))
    intub = np.zeros(len(times), bool)
    for p in GCS_PARTS:
        pp = parts[parts["concept"] == p][["s", "t", "value"]].sort_values("t", kind="stable")
        pp = pp.drop_duplicates(["s", "t"], keep="last")
        j = pd.merge_asof(times, pp, on="t", by="s", direction="backward", tolerance=tol)
        val = j["value"].to_numpy(np.float64)
        if p == "GCS_verbal":
            intub = val == INTUBATED
        tot += np.where(np.isnan(val) | (val == INTUBATED), spec.gcs_normal[p], val)
    tot = np.where(intub, 15.0, tot)
    g = pd.DataFrame({"s": times["s"].to_numpy(), "t": times["t"].to_numpy(),
                      "concept": _cat_const(spec, "GCS", len(times)), "value": tot})
    charted = rest.loc[rest["concept"] == "GCS", ["s", "t"]].drop_duplicates()
    g = g.merge(charted.assign(_c=1), on=["s", "t"], how="left")
    g = g[g["_c"].isna()].drop(columns="_c")
    return pd.concat([rest, g], ignore_index=True)


def clean_events(events: dict, stays: pd.DataFrame, spec: CohortSpec, fixes: dict, counts: Counter,
                 lab_pad_h: float = 24.0) -> pd.DataFrame:
    """All observation-like records of the batch's stays as a long frame [s, t, concept, value].

    ``stays``: columns s, icustay_id, hadm_id, subject_id, intime_s, outtime_s. ``events``: interim frames
    by table name (missing tables are treated as empty).
    """
    rec = raw_records(events, stays, spec, fixes, counts, lab_pad_h)
    rec = build_gcs(rec, spec)
    return range_check(rec, spec, counts)


def raw_records(events: dict, stays: pd.DataFrame, spec: CohortSpec, fixes: dict, counts: Counter,
                lab_pad_h: float = 24.0) -> pd.DataFrame:
    """The records of :func:`clean_events` before GCS assembly and the range check (GCS parts still apart)."""
    pos = pd.Series(stays["s"].to_numpy(), index=stays["icustay_id"].to_numpy())
    parts = []
    ce = events.get("chartevents")
    if ce is not None and len(ce):
        ce = attach_by_icustay(ce[["subject_id", "icustay_id", "itemid", "charttime", "value", "valuenum", "error"]],
                               pos, "chartevents", counts)
        parts.append(clean_chart_like(ce, "chartevents", spec, fixes["error_rows"], False, counts))
    le = events.get("labevents")
    if le is not None and len(le):
        le = attach_labs(le, stays, counts, lab_pad_h)
        specimen = None
        if fixes["arterial_gases"]:
            sp = clean_chart_like(le[le["itemid"].isin(spec.obs_items.loc[spec.obs_items["concept"] == "Specimen_type",
                                                                          "itemid"])],
                                  "labevents", spec, False, False, Counter())
            if len(sp):
                spm = le[["s", "subject_id", "charttime"]].assign(t=to_seconds(le["charttime"]))
                sp = sp.merge(spm.drop_duplicates(["s", "t"]), on=["s", "t"])
                specimen = sp.rename(columns={"value": "code"})[["subject_id", "charttime", "code"]]
        parts.append(clean_chart_like(le, "labevents", spec, False, fixes["arterial_gases"], counts, specimen))
    oe = events.get("outputevents")
    if oe is not None and len(oe):
        oe = attach_by_icustay(oe, pos, "outputevents", counts)
        items = spec.obs_items[spec.obs_items["table"] == "outputevents"]
        items = items.assign(concept=_cat(spec, items["concept"].astype(str)))
        if fixes["error_rows"] and "iserror" in oe.columns:
            err = oe["iserror"].fillna(0).to_numpy() == 1
            counts["outputevents: rows dropped (ISERROR = 1)"] += int(err.sum())
            oe = oe[~err]
        m = oe.merge(items, on="itemid", how="inner")
        v = m["value"].to_numpy(np.float64) * m["sign"].fillna(1).to_numpy(np.float64)
        ok = ~np.isnan(v)
        counts["outputevents: urine: rows dropped (no value)"] += int((~ok).sum())
        parts.append(pd.DataFrame({"s": m["s"].to_numpy(np.int64)[ok], "t": to_seconds(m["charttime"])[ok],
                                   "concept": m["concept"][ok].reset_index(drop=True), "value": v[ok]}))
    mv = events.get("inputevents_mv")
    if spec.mv_weight_is_weight and mv is not None and len(mv):
        mvw = attach_by_icustay(mv, pos, "inputevents_mv", Counter())
        mvw = mvw[mvw["patientweight"].notna()]
        w = pd.DataFrame({"s": mvw["s"].to_numpy(np.int64), "t": to_seconds(mvw["starttime"]),
                          "concept": _cat_const(spec, "Weight_mv", len(mvw)),
                          "value": mvw["patientweight"].to_numpy(np.float64)})
        parts.append(w.drop_duplicates(["s", "t"]))
    return pd.concat(parts, ignore_index=True) if parts else _empty(spec)
