"""The generated stand-in CHARTEVENTS for the demo (cohort.md 10.4). It is project data, not MIMIC data."""
import gzip

import pandas as pd
import pytest

from adrl.mimic import demo_chartevents as dce


@pytest.fixture(scope="module")
def generated(demo_source):
    return pd.read_csv(demo_source / "CHARTEVENTS.csv.gz", dtype={"VALUE": str, "STOPPED": str, "RESULTSTATUS": str})


def test_it_says_it_is_project_data_not_mimic():
    assert "PROJECT DATA, NOT MIMIC DATA" in dce.__doc__


def test_deterministic_per_seed_and_official_dialect(demo_dir, tmp_path):
    a, b, c = tmp_path / "a.csv.gz", tmp_path / "b.csv.gz", tmp_path / "c.csv.gz"
    dce.write_demo_chartevents(demo_dir, a, seed=3, n_stays=10)
    dce.write_demo_chartevents(demo_dir, b, seed=3, n_stays=10)
    dce.write_demo_chartevents(demo_dir, c, seed=4, n_stays=10)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    lines = gzip.open(a, "rt").read().splitlines()
    assert lines[0] == ('"ROW_ID","SUBJECT_ID","HADM_ID","ICUSTAY_ID","ITEMID","CHARTTIME","STORETIME","CGID","VALUE",'
                        '"VALUENUM","VALUEUOM","WARNING","ERROR","RESULTSTATUS","STOPPED"')
    import csv

    assert {len(r) for r in csv.reader(lines)} == {15}
    assert any(',".' in l and ',.' in l for l in lines[1:])           # fractions written .32


def test_real_stays_and_times_and_each_system_its_own_items(generated, demo_dir):
    icu = pd.read_csv(demo_dir / "ICUSTAYS.csv.gz", parse_dates=["INTIME", "OUTTIME"])
    di = pd.read_csv(demo_dir / "D_ITEMS.csv.gz", usecols=["ITEMID", "DBSOURCE", "LINKSTO"])
    g = generated.dropna(subset=["ICUSTAY_ID"]).astype({"ICUSTAY_ID": "int64"})
    m = g.merge(icu, on="ICUSTAY_ID", suffixes=("", "_icu"), how="left", validate="many_to_one")
    assert m.INTIME.notna().all()
    assert (m.SUBJECT_ID == m.SUBJECT_ID_icu).all() and (m.HADM_ID == m.HADM_ID_icu).all()
    t = pd.to_datetime(m.CHARTTIME)
    assert ((t >= m.INTIME) & (t <= m.OUTTIME)).all()
    assert 0.5 * len(icu) < g.ICUSTAY_ID.nunique() < len(icu)           # a subset of the stays
    m = m.merge(di.rename(columns={"DBSOURCE": "ITEM_SYSTEM"}), on="ITEMID", how="left")
    assert (m.LINKSTO == "chartevents").all()
    stay_cv = m.DBSOURCE == "carevue"
    assert stay_cv.any() and (~stay_cv).any()
    assert (stay_cv == (m.ITEM_SYSTEM == "carevue")).all()


def test_the_listed_contents_and_faults(generated):
    g = generated
    items = set(g.ITEMID)
    # GCS: CV totals, MV components with the intubated verbal value; RASS; FiO2 percent and fraction; O2 flow + device
    assert {198, 220739, 223900, 223901, 228096, 467, 226732, 470, 223834, 3420, 223835} <= items
    assert "No Response-ETT" in set(g.VALUE) and "1.0 ET/Trach" in set(g.VALUE)
    fio2 = g.loc[g.ITEMID == 223835, "VALUENUM"]
    assert (fio2 <= 1).any() and (fio2 > 1).any()
    # ventilator settings, an extubation, charted culture items, weight and height
    assert {720, 505, 224685, 220339} <= items and set(g.loc[g.ITEMID == 640, "VALUE"]) == {"Extubated"}
    assert {938, 225722, 6035} <= items and {226512, 580, 226707} <= items
    # faults: item 160, Fahrenheit in a Celsius item, ERROR = 1, out of range, no ICUSTAY_ID
    assert (g.ITEMID == 160).sum() > 0
    assert (g.loc[g.ITEMID.isin([223762, 676]), "VALUENUM"] > 70).sum() >= 2
    assert (g.ERROR == 1).sum() > 0 and g.ICUSTAY_ID.isna().sum() > 0
    assert (g.loc[g.ITEMID.isin([211, 220045]), "VALUENUM"] > 250).any()
    assert (g.loc[g.ITEMID.isin([646, 220277]), "VALUENUM"] > 150).any()
    # numeric rows keep VALUE and VALUENUM in step
    num = g[g.VALUENUM.notna() & g.ITEMID.isin([211, 220045, 220179])]
    assert (num.VALUE.astype(float) == num.VALUENUM).all()
