"""Sample-and-hold, derived values and the mechanical-ventilation flag on hand-made rows (cohort.md 3.9-3.10)."""
import numpy as np
import pandas as pd
import pytest

from adrl.cohort.featurize import Featurizer
from adrl.cohort.mimic_adapter import build_spec
from adrl.cohort.params import CohortParams
from tests.cohort.factory import frame, lab_unit

T0 = pd.Timestamp("2150-03-01 00:00")   # onset at +24 h -> bin 0 starts at T0 (corrected, margin 0)
ONSET = T0 + pd.Timedelta(hours=24)


def world(ce_rows, le_rows=()):
    static = {"patients": frame("patients", [dict(subject_id=1, gender="F", dob=T0 - pd.Timedelta(days=365 * 70))]),
              "admissions": frame("admissions", [dict(subject_id=1, hadm_id=10, deathtime=None)]),
              "icustays": frame("icustays", [dict(subject_id=1, hadm_id=10, icustay_id=200, dbsource="metavision",
                                                  intime=T0 - pd.Timedelta(hours=30), outtime=T0 + pd.Timedelta(days=4))])}
    ce = frame("chartevents", [dict(subject_id=1, hadm_id=10, icustay_id=200, itemid=i, charttime=T0 + pd.Timedelta(hours=h),
                                    value=v if isinstance(v, str) else None,
                                    valuenum=None if isinstance(v, str) else v, error=0) for i, h, v in ce_rows])
    le = frame("labevents", [dict(subject_id=1, hadm_id=10, itemid=i, charttime=T0 + pd.Timedelta(hours=h), valuenum=v,
                                  valueuom=lab_unit(i)) for i, h, v in le_rows])
    ev = {"chartevents": ce, "labevents": le}
    return static, pd.DataFrame({"icustay_id": [200], "onset": [ONSET]}), ev


def grid(p, ce_rows, le_rows=()):
    fz = Featurizer(p, build_spec(p))
    static, on, ev = world(ce_rows, le_rows)
    b = fz.bins(static, on, ev)
    return fz.grid_frame(b).set_index("k"), b


def test_hold_expiry_and_unlimited_ffill_for_state():
    p = CohortParams()
    g, b = grid(p, [(220045, 1.0, 80.0)])            # HR once, at 1 h (bin 0)
    assert g.loc[0, "o:HR"] == 80 and g.loc[0, "held:HR"] == 80
    assert np.isnan(g.loc[1, "held:HR"])             # 3 h before bin 1's start > 2 h hold
    assert g.loc[5, "o:HR"] == 80                    # state: carried forward without limit
    g2, _ = grid(CohortParams(state={"ffill_beyond_hold": False}), [(220045, 1.0, 80.0)])
    assert np.isnan(g2.loc[1, "o:HR"])
    g3, _ = grid(p, [(220045, 3.0, 80.0)])           # record at 3 h: 1 h before bin 1 -> held
    assert g3.loc[1, "held:HR"] == 80 and np.isnan(g3.loc[2, "held:HR"])


def test_record_before_the_grid_reaches_it_only_through_hold():
    p = CohortParams()
    g, _ = grid(p, [(220045, -1.5, 70.0), (220045, -30.0, 10.0)])   # 1.5 h before bin 0 starts
    assert g.loc[0, "held:HR"] == 70
    g2, _ = grid(p, [(220045, -2.5, 70.0)])
    assert np.isnan(g2.loc[0, "held:HR"]) and g2.loc[0, "o:HR"] == 70


@pytest.mark.parametrize("recipe,held", [("corrected", False), ("faithful", True)])
def test_potassium_hold_14_vs_144(recipe, held):
    p = CohortParams(recipe=recipe)
    fz = Featurizer(p, build_spec(p))
    static, on, ev = world([], [(50971, 0.5, 4.0)])
    b = fz.bins(static, on, ev)
    j = 5 - fz.grid.kmin + 1   # bin 5 starts 19.5 h (corrected) / 15.5 h (faithful) after the record
    assert (b.values["Potassium"][0, j] == 4.0) == held


def test_derived_values():
    p = CohortParams()
    rows = [(228096, 1.0, -3.0),                                   # RASS -3 -> GCS 11
            (223834, 1.0, 4.0), (226732, 1.0, "Nasal cannula"),    # 4 L/min cannula -> FiO2 0.36
            (220179, 1.0, 120.0), (220180, 1.0, 60.0),             # SBP, DBP -> MAP 80
            (220045, 1.0, 90.0)]
    le = [(51221, 1.0, 30.0), (50883, 1.0, 1.0), (50821, 1.0, 72.0)]   # Ht, direct bilirubin, paO2
    g, _ = grid(p, rows, le)
    r = g.loc[0]
    assert r["o:GCS"] == 11 and r["o:FiO2_1"] == pytest.approx(0.36)
    assert r["o:MeanBP"] == pytest.approx(80)
    assert r["o:Hb"] == pytest.approx((30 - 1.216) / 2.862)
    assert r["o:Total_bili"] == pytest.approx((1 + 0.1752) / 0.6934)
    assert r["o:PaO2_FiO2"] == pytest.approx(72 / 0.36)
    # a charted FiO2 wins over the estimate; a non-rebreather at 12 L/min -> 0.90
    g2, _ = grid(p, [(223834, 1.0, 12.0), (226732, 1.0, "Non-rebreather")])
    assert g2.loc[0, "o:FiO2_1"] == pytest.approx(0.9)
    g3, _ = grid(p, [(223834, 1.0, 12.0), (226732, 1.0, "Non-rebreather"), (223835, 1.0, 50.0)])
    assert g3.loc[0, "o:FiO2_1"] == pytest.approx(0.5)


def test_mechvent_hold_and_extubation():
    p = CohortParams()
    # vent evidence (PEEP 220339 any value) at 1 h; bin 1 (4-8 h): held (3 h <= 6 h); bin 2: expired
    g, _ = grid(p, [(220339, 1.0, 5.0)])
    assert g.loc[0, "m:mechvent"] == 1 and g.loc[1, "m:mechvent"] == 1 and g.loc[2, "m:mechvent"] == 0
    # CareVue 640 extubation at 2 h ends the hold
    g2, _ = grid(p, [(220339, 1.0, 5.0), (640, 2.0, "Extubated")])
    assert g2.loc[0, "m:mechvent"] == 1 and g2.loc[1, "m:mechvent"] == 0
    # 720 "Other/Remarks" is not evidence
    g3, _ = grid(p, [(720, 1.0, "Other/Remarks")])
    assert g3.loc[0, "m:mechvent"] == 0
