from collections import Counter

import numpy as np
import pandas as pd

from adrl.cohort.records import clean_events

T = pd.Timestamp("2150-01-01 10:00")


def _stays():
    return pd.DataFrame({"s": [0], "icustay_id": [200001], "hadm_id": [100001], "subject_id": [1],
                         "intime_s": [T.timestamp() - 86400], "outtime_s": [T.timestamp() + 86400]})


def ce(rows):
    df = pd.DataFrame(rows, columns=["itemid", "valuenum", "value", "error"])
    df["subject_id"], df["hadm_id"], df["icustay_id"] = 1, 100001, 200001
    df["charttime"] = [T + pd.Timedelta(minutes=i) for i in range(len(df))]
    df["valueuom"] = None
    return df


def run(rows, spec, fixes=None):
    fx = {"error_rows": True, "arterial_gases": True}
    fx.update(fixes or {})
    c = Counter()
    rec = clean_events({"chartevents": ce(rows)}, _stays(), spec, fx, c)
    return rec.sort_values("t"), c


def test_temperature_rules(corrected):
    _, spec = corrected
    # 223762 Celsius item, 223761 Fahrenheit item (MetaVision)
    rec, _ = run([(223762, 37.0, None, 0), (223762, 98.6, None, 0), (223761, 98.6, None, 0),
                  (223761, 38.0, None, 0)], spec)
    t = rec[rec["concept"] == "Temp_C"]["value"].round(3).tolist()
    # 98.6 in a C item is Fahrenheit -> 37; 38 in a F item is already Celsius
    assert t == [37.0, 37.0, 37.0, 38.0]


def test_fio2_percent_fraction_and_bounds(corrected):
    _, spec = corrected
    rec, c = run([(223835, 0.5, None, 0), (223835, 50, None, 0), (223835, 100, None, 0), (223835, 150, None, 0),
                  (223835, 15, None, 0), (223835, 1.0, None, 0)], spec)
    f = rec[rec["concept"] == "FiO2_1"]["value"].tolist()
    assert f == [0.5, 0.5, 1.0, 1.0]           # 150 dropped (> 100), 15 % -> 0.15 out of range
    assert c["chartevents: FiO2_1: rows dropped (above 100)"] == 1
    assert c["FiO2_1: values out of range"] == 1


def test_spo2_cap_and_drop_and_error_rows(corrected, faithful):
    _, spec = corrected
    rec, c = run([(220277, 120, None, 0), (220277, 160, None, 0), (220277, 40, None, 0), (220277, 97, None, 1)], spec)
    assert rec[rec["concept"] == "SpO2"]["value"].tolist() == [100.0]
    assert c["chartevents: rows dropped (ERROR = 1)"] == 1
    recf, _ = run([(220277, 97, None, 1)], faithful[1], {"error_rows": False})
    assert recf["value"].tolist() == [97.0]   # faithful keeps ERROR = 1 rows


def test_weight_units_and_itemid_recipes(corrected, faithful):
    _, spec = corrected
    rec, _ = run([(226531, 200.0, None, 0), (3582, 2000.0, None, 0)], spec)  # lb and oz items
    w = rec[rec["concept"] == "Weight_kg"]["value"].round(3).tolist()
    assert w == [round(200 * 0.4536, 3), round(2000 * 0.02835, 3)]
    # 160 "Ectopy Frequency 2" is FiO2 only in the faithful recipe
    assert run([(160, 0.4, None, 0)], spec)[0].empty
    assert run([(160, 0.4, None, 0)], faithful[1], {"error_rows": False})[0]["concept"].tolist() == ["FiO2_1"]


def test_gcs_components_intubated_and_carry(corrected):
    _, spec = corrected
    rows = [(220739, 3, "3", 0), (223900, 4, "4", 0), (223901, 5, "5", 0),   # 12 at minute 0-2 (3 times)
            (220739, 2, "2", 0),                                            # minute 3: eye only, others carried
            (223900, np.nan, "No Response-ETT", 0)]                          # minute 4: intubated -> 15
    rec, _ = run(rows, spec)
    g = rec[rec["concept"] == "GCS"]["value"].tolist()
    # minute 0: eye 3 + verbal normal 5 + motor normal 6 = 14; minute 1: 3+4+6; minute 2: 3+4+5
    assert g == [14.0, 13.0, 12.0, 11.0, 15.0]


def test_arterial_specimen_rule(corrected):
    _, spec = corrected
    le = pd.DataFrame({"subject_id": 1, "hadm_id": 100001, "itemid": [50800, 50820, 50800, 50820, 50820],
                       "charttime": [T, T, T + pd.Timedelta(hours=1), T + pd.Timedelta(hours=1),
                                     T + pd.Timedelta(hours=2)],
                       "value": ["VEN", None, "ART", None, None], "valuenum": [np.nan, 7.3, np.nan, 7.4, 7.2],
                       "valueuom": [None, "units", None, "units", "units"], "flag": None})
    c = Counter()
    rec = clean_events({"labevents": le}, _stays(), spec, {"error_rows": True, "arterial_gases": True}, c)
    assert sorted(rec[rec["concept"] == "Arterial_pH"]["value"].tolist()) == [7.2, 7.4]
    assert c["labevents: blood-gas rows dropped (non-arterial specimen)"] == 1
    rec2 = clean_events({"labevents": le}, _stays(), spec, {"error_rows": True, "arterial_gases": False}, Counter())
    assert len(rec2[rec2["concept"] == "Arterial_pH"]) == 3
    # a lab unit that is not an accepted spelling is counted and dropped, never converted
    le3 = le.assign(valueuom=[None, "mg/dL", None, "UNITS", "units"])
    c3 = Counter()
    rec3 = clean_events({"labevents": le3}, _stays(), spec, {"error_rows": True, "arterial_gases": False}, c3)
    assert sorted(rec3[rec3["concept"] == "Arterial_pH"]["value"]) == [7.2, 7.4]
    assert c3["labevents: Arterial_pH: rows dropped (unit mismatch)"] == 1
