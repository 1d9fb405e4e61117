"""MIMIC-III v1.4 source tables and the interim (ingested) event tables.

Source: upper-case ``<TABLE>.csv.gz`` (or ``.csv``), quoted upper-case headers (a lower-case header,
as in a later PhysioNet packaging of the demo, is mapped once at load).

Interim (written by ``ingest`` under ``data/interim/events/<table>/`` as Parquet part files ``part-NNNNN.parquet``,
plus ``ingest_report.json``): lower-case column names, the columns below only,
explicit types. Event tables keep only the ITEMIDs of the concept map (union of faithful and corrected
items); PRESCRIPTIONS keeps only rows whose GSN is on the antibiotic list. Read them with
``adrl.mimic.ingest.read_interim(events_dir, table, columns=..., filter=...)``: Parquet stores timestamp[s] as
milliseconds (so plain ``pyarrow.dataset`` / ``pandas.read_parquet`` give timestamp[ms]); read_interim casts back
to exactly these schemas. The synthetic world's roll-out
API emits a simulated stay's events in these same interim schemas, so the cohort featuriser reads both.
"""
from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("s")
ID = pa.int64()

# interim table -> {column: arrow type}; column order is the contract
INTERIM: dict[str, dict[str, pa.DataType]] = {
    "patients": {"subject_id": ID, "gender": pa.string(), "dob": TS, "dod": TS, "dod_hosp": TS,
                 "dod_ssn": TS, "expire_flag": pa.int8()},
    "admissions": {"subject_id": ID, "hadm_id": ID, "admittime": TS, "dischtime": TS, "deathtime": TS,
                   "hospital_expire_flag": pa.int8()},
    "icustays": {"subject_id": ID, "hadm_id": ID, "icustay_id": ID, "dbsource": pa.string(),
                 "first_careunit": pa.string(), "intime": TS, "outtime": TS, "los": pa.float64()},
    "chartevents": {"subject_id": ID, "hadm_id": ID, "icustay_id": ID, "itemid": pa.int32(), "charttime": TS,
                    "value": pa.string(), "valuenum": pa.float64(), "valueuom": pa.string(), "error": pa.int8()},
    "labevents": {"subject_id": ID, "hadm_id": ID, "itemid": pa.int32(), "charttime": TS, "value": pa.string(),
                  "valuenum": pa.float64(), "valueuom": pa.string(), "flag": pa.string()},
    "microbiologyevents": {"subject_id": ID, "hadm_id": ID, "chartdate": TS, "charttime": TS,
                           "spec_itemid": pa.int32(), "spec_type_desc": pa.string()},
    "prescriptions": {"subject_id": ID, "hadm_id": ID, "icustay_id": ID, "startdate": TS, "enddate": TS,
                      "drug": pa.string(), "gsn": pa.string(), "route": pa.string()},
    "inputevents_cv": {"subject_id": ID, "hadm_id": ID, "icustay_id": ID, "charttime": TS, "itemid": pa.int32(),
                       "amount": pa.float64(), "amountuom": pa.string(), "rate": pa.float64(),
                       "rateuom": pa.string()},
    "inputevents_mv": {"subject_id": ID, "hadm_id": ID, "icustay_id": ID, "starttime": TS, "endtime": TS,
                       "itemid": pa.int32(), "amount": pa.float64(), "amountuom": pa.string(),
                       "rate": pa.float64(), "rateuom": pa.string(), "patientweight": pa.float64(),
                       "statusdescription": pa.string()},
    "outputevents": {"subject_id": ID, "hadm_id": ID, "icustay_id": ID, "charttime": TS, "itemid": pa.int32(),
                     "value": pa.float64(), "valueuom": pa.string(), "iserror": pa.int8()},
    "procedureevents_mv": {"subject_id": ID, "hadm_id": ID, "icustay_id": ID, "starttime": TS, "endtime": TS,
                           "itemid": pa.int32()},
}


def interim_schema(table: str) -> pa.Schema:
    return pa.schema([(c, t) for c, t in INTERIM[table].items()])
