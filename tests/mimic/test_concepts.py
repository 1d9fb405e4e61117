"""The clinical data files of adrl/mimic/facts against the MIMIC-III demo's complete dictionaries."""
import numpy as np
import pandas as pd
import pytest

from adrl.errors import InputError
from adrl.mimic import concepts as C


@pytest.fixture(scope="module")
def dicts(demo_dir):
    return (pd.read_csv(demo_dir / "D_ITEMS.csv.gz", dtype={"LABEL": str}),
            pd.read_csv(demo_dir / "D_LABITEMS.csv.gz", dtype={"LABEL": str}))


def test_every_itemid_exists_links_to_its_table_and_keeps_its_label(dicts):
    di, dl = dicts
    chk = C.check_against_dictionaries(*dicts)
    assert chk.errors == [] and chk.missing == [] and chk.label_drift == []
    assert chk.n_items == len(C.item_dictionary().drop_duplicates(["itemid", "table"])) > 400
    # and row by row, including dbsource (hospital = D_LABITEMS)
    items = C.item_dictionary()
    m = items.merge(di[["ITEMID", "LABEL", "LINKSTO", "DBSOURCE"]], left_on="itemid", right_on="ITEMID", how="left")
    ce = m[m.table != "labevents"]
    assert (ce.LINKSTO == ce.table).all() and (ce.LABEL == ce.label).all() and (ce.DBSOURCE == ce.dbsource).all()
    le = items[items.table == "labevents"].merge(dl, left_on="itemid", right_on="ITEMID", how="left")
    assert le.ITEMID.notna().all() and (le.LABEL == le.label).all() and (le.dbsource == "hospital").all()


def test_dictionary_check_catches_wrong_table_missing_item_and_label_drift(dicts):
    di, dl = dicts
    bad = di.copy()
    bad.loc[bad.ITEMID == 220045, "LINKSTO"] = "outputevents"      # HR moved to another table
    bad.loc[bad.ITEMID == 211, "LABEL"] = "Pulse"                     # label drift
    bad = bad[bad.ITEMID != 225158]                                    # a fluid item vanished
    chk = C.check_against_dictionaries(bad, dl.rename(columns=str.lower))
    assert any("220045" in e and "LINKSTO is outputevents" in e for e in chk.errors)
    assert any("225158" in e and "not in D_ITEMS" in e for e in chk.missing)
    assert chk.label_drift == ["ITEMID 211: concept map says 'Heart Rate', dictionary says 'Pulse'"]
    with pytest.raises(InputError, match="220045"):
        chk.raise_if_errors("D_ITEMS")


def test_recipe_marks_of_section_4_2_and_appendix_a():
    cc = C.load_concepts("corrected")
    cf = C.load_concepts("faithful")
    key = lambda d, concept: set(d.loc[d.concept == concept, "itemid"])
    # ✗ rows: faithful only
    assert 160 in key(cf, "FiO2_1") and 160 not in key(cc, "FiO2_1")
    assert {4194, 3725} <= key(cf, "Sodium") and not ({4194, 3725} & key(cc, "Sodium"))
    assert 227510 in key(cf, "urine") and 227510 not in key(cc, "urine")
    assert 6035 in key(cf, "culture") and 6035 not in key(cc, "culture")
    # + rows: corrected only
    assert {220050, 442} <= key(cc, "SysBP") and not ({220050, 442} & key(cf, "SysBP"))
    assert {220739, 223900, 223901} <= set(cc.itemid) and not ({220739, 223900, 223901} & set(cf.itemid))
    assert 226732 in key(cc, "O2_device") and 226732 not in key(cf, "O2_device")
    # culture sources: 25 CE items corrected (26 minus Urinalysis sent) + 9 PE procedures
    cul = cc[cc.concept == "culture"]
    assert (cul.table == "chartevents").sum() == 25 and (cul.table == "procedureevents_mv").sum() == 9
    # urine: 227488 enters negative
    u = C.load_concepts().set_index(["concept", "itemid"])
    assert u.loc[("urine", 227488), "sign"] == -1 and u.loc[("urine", 40055), "sign"] == 1
    # conversions and holds
    assert u.loc[("Temp_C", 223761), "conversion"] == "F_to_C" and u.loc[("Weight_kg", 3581), "conversion"] == "lb_to_kg"
    assert u.loc[("Weight_kg", 3582), "conversion"] == "oz_to_kg" and u.loc[("Height_cm", 226707), "conversion"] == "in_to_cm"
    assert u.loc[("Potassium", 50971), "hold_h"] == 14 and u.loc[("Potassium", 50971), "hold_h_faithful"] == 144
    assert set(C.load_concepts().kind) == {"numeric", "text"}


def test_fluids_vasopressors_gsn_routes_devices():
    f = C.load_fluids().set_index("itemid")
    assert len(f) == 67                                                  # cohort.md 5.1: 67 ITEMIDs
    assert f.loc[225941, "tonicity_faithful"] == 1 and f.loc[225941, "tonicity_corrected"] == 0.25
    assert f.loc[227531, "mannitol"] and np.isnan(f.loc[227531, "tonicity_corrected"])
    assert f.loc[220995, "bicarbonate"] and f.loc[220995, "tonicity_faithful"] == 6.66
    v = C.load_vasopressors().set_index("itemid")
    assert v.loc[221749, "factor_ai_clinician"] == 0.45 and v.loc[221749, "factor_mimic_code"] == 0.1
    assert v.loc[30044, "recipe"] == "corrected" and v.loc[222315, "factor_ai_clinician"] == 5
    g = C.antibiotic_gsns()
    assert len(g) == 126 and all(len(x) == 6 and x.isdigit() for x in g) and "002542" in g
    assert {"OD", "OU", "TP", "IH", "VG", "IRR", "LOCK"} <= C.nonsystemic_routes() and "IV" not in C.nonsystemic_routes()
    d = C.load_o2_devices().set_index("key")
    assert d.loc["non-rebreather", "class_faithful"] == "non_rebreather"
    assert d.loc["ventilator", "class_faithful"] == "mask" and d.loc["ventilator", "class_corrected"] == ""


def test_itemids_for_ingest_is_the_union_of_both_recipes():
    ids = C.itemids_for_ingest()
    assert set(ids) == set(C.EVENT_TABLES)
    assert all(a.dtype == np.int32 and (np.diff(a) > 0).all() for a in ids.values())
    for recipe in ("faithful", "corrected"):
        c = C.load_concepts(recipe)
        for t, g in c.groupby("table"):
            assert set(g.itemid) <= set(ids[t])
    assert 160 in ids["chartevents"] and 220050 in ids["chartevents"]          # faithful-only and corrected-only
    assert 227531 in ids["inputevents_mv"] and 30044 in ids["inputevents_cv"]  # mannitol (faithful), epinephrine (+)
    assert 225401 in ids["procedureevents_mv"]


def test_a_broken_data_file_is_named(tmp_path):
    (tmp_path / "concepts.csv").write_text("concept,itemid\nHR,211\n")
    with pytest.raises(InputError, match=r"concepts.csv: missing column\(s\) table"):
        C._read("concepts.csv", str(tmp_path))
