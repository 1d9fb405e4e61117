"""Hand-made interim rows for the cohort tests (project data, not MIMIC data).

Items are real MetaVision/CareVue ITEMIDs of adrl/mimic/facts/concepts.csv so the tests run through the same
concept resolution as the stage.
"""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from adrl.mimic.schema import INTERIM

T0 = pd.Timestamp("2150-01-01 00:00:00")

# MetaVision items used by the generator (concepts.csv)
HR, SBP, MBP, DBP, RR, TEMP_C, FIO2, SPO2 = 220045, 220179, 220181, 220180, 220210, 223762, 223835, 220277
GCS_E, GCS_V, GCS_M, WEIGHT = 220739, 223900, 223901, 224639
LABS = {50971: (4.0, 0.5), 50983: (140, 4), 50902: (104, 4), 50931: (120, 30), 50960: (2.0, 0.3), 50893: (8.5, 0.5),
        51222: (10, 1.5), 51300: (12, 4), 51265: (180, 80), 51275: (35, 8), 51274: (14, 2), 50820: (7.35, 0.05),
        50821: (90, 20), 50818: (40, 6), 50802: (0, 3), 50882: (23, 3), 50813: (2.0, 1.0), 51006: (25, 10),
        50912: (1.4, 0.6), 50878: (40, 20), 50861: (35, 20), 50885: (1.0, 0.6), 51237: (1.3, 0.3)}
NOREPI_MV, NACL_MV, URINE_MV = 221906, 225158, 226559
CULTURE_PE = 225401


@functools.lru_cache(maxsize=None)
def lab_unit(itemid: int):
    """An accepted VALUEUOM spelling of a LABEVENTS item (concepts.csv valueuom_ok)."""
    from adrl.mimic.concepts import load_concepts

    c = load_concepts()
    ok = c.loc[(c["table"] == "labevents") & (c["itemid"] == itemid), "valueuom_ok"].fillna("")
    u = ok.iloc[0].split("|")[0] if len(ok) else ""
    return None if u in ("", "(none)") else u


def empty(table: str) -> pd.DataFrame:
    cols = {}
    for c, t in INTERIM[table].items():
        s = str(t)
        if s.startswith("timestamp"):
            cols[c] = pd.Series(dtype="datetime64[s]")
        elif s in ("int64", "int32", "int8"):
            cols[c] = pd.Series(dtype="Int64")
        elif s == "double":
            cols[c] = pd.Series(dtype="float64")
        else:
            cols[c] = pd.Series(dtype="object")
    return pd.DataFrame(cols)


def frame(table: str, rows: list[dict]) -> pd.DataFrame:
    base = empty(table)
    if not rows:
        return base
    df = pd.DataFrame(rows)
    for c in base.columns:
        if c not in df.columns:
            df[c] = pd.Series([None] * len(df), dtype=base[c].dtype)
    df = df[list(base.columns)]
    for c, t in INTERIM[table].items():
        s = str(t)
        if s.startswith("timestamp"):
            df[c] = pd.to_datetime(df[c]).astype("datetime64[s]")
        elif s in ("int64", "int32", "int8"):
            df[c] = df[c].astype("Int64")
        elif s == "double":
            df[c] = df[c].astype("float64")
    return df


def make_world(n: int = 40, seed: int = 0, hours: int = 96, died_frac: float = 0.3):
    """Cached: returns fresh copies of the frames of ``_make_world``."""
    static, events = _make_world(n, seed, hours, died_frac)
    return {k: v.copy() for k, v in static.items()}, {k: v.copy() for k, v in events.items()}


@functools.lru_cache(maxsize=8)
def _make_world(n: int = 40, seed: int = 0, hours: int = 96, died_frac: float = 0.3):
    """n MetaVision stays with hourly vitals, 6-hourly labs, norepinephrine / saline / urine, one antibiotic and
    a culture each (onset around hour 24). Returns (static, events)."""
    rng = np.random.default_rng(seed)
    pats, adms, icus = [], [], []
    ev = {t: [] for t in ("chartevents", "labevents", "inputevents_mv", "outputevents", "procedureevents_mv",
                          "prescriptions", "microbiologyevents")}
    for i in range(n):
        sid, hid, iid = 1000 + i, 100000 + i, 200000 + i
        intime = T0 + pd.Timedelta(days=30 * i)
        outtime = intime + pd.Timedelta(hours=hours)
        died = rng.random() < died_frac
        pats.append(dict(subject_id=sid, gender="F" if i % 2 else "M", dob=intime - pd.Timedelta(days=365 * 60),
                         dod=outtime + pd.Timedelta(hours=10) if died else None, expire_flag=int(died)))
        adms.append(dict(subject_id=sid, hadm_id=hid, admittime=intime - pd.Timedelta(hours=5),
                         dischtime=outtime + pd.Timedelta(days=3), deathtime=None, hospital_expire_flag=int(died)))
        icus.append(dict(subject_id=sid, hadm_id=hid, icustay_id=iid, dbsource="metavision", first_careunit="MICU",
                         intime=intime, outtime=outtime, los=hours / 24))
        sick = 1.0 + rng.random()
        for h in range(hours):
            t = intime + pd.Timedelta(hours=h, minutes=int(rng.integers(0, 50)))
            for item, mu, sd in ((HR, 90 * sick, 10), (SBP, 110 / sick, 10), (MBP, 75 / sick, 6), (DBP, 55, 5),
                                 (RR, 20, 3), (SPO2, 96, 2)):
                ev["chartevents"].append(dict(subject_id=sid, hadm_id=hid, icustay_id=iid, itemid=item, charttime=t,
                                              value=None, valuenum=float(mu + sd * rng.standard_normal()),
                                              valueuom=None, error=0))
            if h % 4 == 0:
                ev["chartevents"].append(dict(subject_id=sid, hadm_id=hid, icustay_id=iid, itemid=TEMP_C, charttime=t,
                                              valuenum=float(37 + rng.standard_normal()), error=0))
                ev["chartevents"].append(dict(subject_id=sid, hadm_id=hid, icustay_id=iid, itemid=FIO2, charttime=t,
                                              valuenum=float(40 + 10 * rng.random()), error=0))
                for item, v in ((GCS_E, 3), (GCS_V, 4), (GCS_M, 6)):
                    ev["chartevents"].append(dict(subject_id=sid, hadm_id=hid, icustay_id=iid, itemid=item,
                                                  charttime=t, value=str(v), valuenum=float(v), error=0))
                ev["outputevents"].append(dict(subject_id=sid, hadm_id=hid, icustay_id=iid, charttime=t,
                                               itemid=URINE_MV, value=float(rng.uniform(20, 300)), valueuom="mL",
                                               iserror=0))
            if h % 6 == 1:
                for item, (mu, sd) in LABS.items():
                    ev["labevents"].append(dict(subject_id=sid, hadm_id=hid, itemid=item, charttime=t, value=None,
                                                valuenum=float(abs(mu + sd * rng.standard_normal()) if mu else
                                                               sd * rng.standard_normal()),
                                                valueuom=lab_unit(item)))
        ev["chartevents"].append(dict(subject_id=sid, hadm_id=hid, icustay_id=iid, itemid=WEIGHT, charttime=intime,
                                      valuenum=float(rng.uniform(50, 110)), error=0))
        # treatments: norepinephrine infusion 20-40 h (some stays), saline boluses
        if rng.random() < 0.6:
            s0 = intime + pd.Timedelta(hours=20)
            ev["inputevents_mv"].append(dict(subject_id=sid, hadm_id=hid, icustay_id=iid, starttime=s0,
                                             endtime=s0 + pd.Timedelta(hours=20), itemid=NOREPI_MV, amount=10.0,
                                             amountuom="mg", rate=float(rng.uniform(0.02, 0.6)),
                                             rateuom="mcg/kg/min", patientweight=80.0, statusdescription="FinishedRunning"))
        for h in range(2, hours, 7):
            s0 = intime + pd.Timedelta(hours=h)
            ev["inputevents_mv"].append(dict(subject_id=sid, hadm_id=hid, icustay_id=iid, starttime=s0,
                                             endtime=s0 + pd.Timedelta(minutes=30), itemid=NACL_MV,
                                             amount=float(rng.choice([250, 500, 1000])), amountuom="ml", rate=None,
                                             rateuom=None, patientweight=80.0, statusdescription="FinishedRunning"))
        onset = (intime + pd.Timedelta(hours=24)).normalize()
        ev["prescriptions"].append(dict(subject_id=sid, hadm_id=hid, icustay_id=iid, startdate=onset,
                                        enddate=onset + pd.Timedelta(days=5), drug="Vancomycin", gsn="009327",
                                        route="IV"))
        ev["microbiologyevents"].append(dict(subject_id=sid, hadm_id=hid, chartdate=onset,
                                             charttime=onset + pd.Timedelta(hours=3), spec_itemid=70012,
                                             spec_type_desc="BLOOD CULTURE"))
    static = {"patients": frame("patients", pats), "admissions": frame("admissions", adms),
              "icustays": frame("icustays", icus)}
    events = {t: frame(t, rows) for t, rows in ev.items()}
    events["inputevents_cv"] = empty("inputevents_cv")
    return static, events
