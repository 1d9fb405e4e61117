from collections import Counter

import numpy as np
import pandas as pd
import pytest

from adrl.cohort.grid import GridSpec
from adrl.cohort.treatments import fluid_per_bin, fluid_rows, ne_eq, vaso_per_bin, vaso_rows

G0 = pd.Timestamp("2150-01-01 00:00").timestamp()
H = 3600


def ts(h):
    return pd.Timestamp("2150-01-01 00:00") + pd.Timedelta(hours=h)


def mv(rows):
    cols = ["itemid", "start", "end", "amount", "amountuom", "rate", "rateuom", "statusdescription", "patientweight"]
    df = pd.DataFrame(rows, columns=cols)
    df["starttime"], df["endtime"] = df.pop("start").map(ts), df.pop("end").map(ts)
    df["s"] = 0
    df["icustay_id"] = 1
    return df


def cv(rows):
    df = pd.DataFrame(rows, columns=["itemid", "at", "amount", "amountuom", "rate", "rateuom"])
    df["charttime"] = df.pop("at").map(ts)
    df["s"] = 0
    df["icustay_id"] = 1
    return df


@pytest.fixture
def grid(corrected):
    return GridSpec.from_params(corrected[0])


def test_grid_defaults(corrected, faithful):
    g = GridSpec.from_params(corrected[0])
    assert (g.K, g.kmin, g.kmax, g.sepsis_k) == (18, -6, 18, (-6, 12))
    gf = GridSpec.from_params(faithful[0])
    assert (gf.K, gf.kmin, gf.kmax, gf.sepsis_k) == (20, 0, 20, (0, 20))


def test_fluid_apportioning_tonicity_units_rewritten(corrected, faithful, grid):
    _, spec = corrected
    rows = mv([
        (225158, 2, 10, 800.0, "ml", 100.0, "mL/hour", "FinishedRunning", 80),   # infusion 2h-10h: 200/400/200
        (225158, 5, 5.5, 300.0, "mL", None, None, "FinishedRunning", 80),        # bolus (no rate) at 5h
        (225161, 1, 1.5, 100.0, "ml", None, None, "FinishedRunning", 80),        # 3% saline x3
        (225158, 1, 2, 999.0, "ml", 10.0, "mL/hour", "Rewritten", 80),           # superseded: dropped when corrected
        (220995, 1, 1.1, 50.0, "mEq", None, None, "FinishedRunning", 80),        # bicarbonate mEq as mL x6.66
        (227531, 1, 1.1, 10.0, "grams", None, None, "FinishedRunning", 80),      # mannitol: excluded when corrected
    ])
    cvr = cv([(30018, 13, 250.0, "ml", None, None), (30018, 13, 75.0, None, None, None)])
    c = Counter()
    fr = fluid_rows(rows, cvr, spec, corrected=True, tonicity=True, counts=c)
    tot = fluid_per_bin(fr, np.array([G0]), grid, c)[0]
    j = lambda k: k - grid.kmin + 1  # noqa: E731
    assert tot[j(0)] == pytest.approx(200 + 100 * 3 + 50 * 6.66)     # bin [0,4)
    assert tot[j(1)] == pytest.approx(400 + 300)                      # bin [4,8)
    assert tot[j(2)] == pytest.approx(200)                            # bin [8,12)
    assert tot[j(3)] == pytest.approx(250)                            # CV point at 13h; empty unit dropped
    assert c["inputevents_mv: fluid rows dropped (Rewritten)"] == 1
    assert c["inputevents_cv: fluid rows dropped (unit not mL)"] == 1
    # faithful: Rewritten kept, mannitol grams x2.75, empty unit kept, bicarbonate mEq x6.66
    fspec = faithful[1]
    g2 = GridSpec.from_params(faithful[0])
    ff = fluid_per_bin(fluid_rows(rows, cvr, fspec, corrected=False, tonicity=True, counts=Counter()),
                       np.array([G0]), g2, Counter())[0]
    assert ff[1] == pytest.approx(200 + 100 * 3 + 50 * 6.66 + 999 + 10 * 2.75)
    assert ff[4] == pytest.approx(325)
    # tonicity off: plain mL
    fp = fluid_per_bin(fluid_rows(rows, cvr, spec, corrected=True, tonicity=False, counts=Counter()),
                       np.array([G0]), grid, Counter())[0]
    assert fp[j(0)] == pytest.approx(200 + 100 + 50)


def test_d5_quarter_normal_tonicity(corrected, faithful, grid):
    rows = mv([(225941, 1, 1.5, 1000.0, "ml", None, None, "FinishedRunning", 80)])
    a = fluid_per_bin(fluid_rows(rows, None, corrected[1], True, True, Counter()), np.array([G0]), grid, Counter())
    b = fluid_per_bin(fluid_rows(rows, None, faithful[1], False, True, Counter()), np.array([G0]),
                      GridSpec.from_params(faithful[0]), Counter())
    assert a.max() == pytest.approx(250) and b.max() == pytest.approx(1000)


@pytest.mark.parametrize("drug,rate,unit,weight,expect", [
    ("norepinephrine", 0.1, "kg", 70, 0.1),
    ("epinephrine", 0.2, "kg", 70, 0.2),
    ("phenylephrine", 1.0, "kg", 70, 0.45),
    ("dopamine", 10.0, "kg", 70, 0.1),
    ("vasopressin", 0.04, "u", 70, 0.2),
    ("norepinephrine", 8.0, "min", 80, 0.1),     # mcg/min / weight
])
def test_ne_eq_factors(corrected, drug, rate, unit, weight, expect):
    assert ne_eq([rate], [unit], [drug], [weight], corrected[1].vaso_factors)[0] == pytest.approx(expect)


def test_ne_eq_mimic_code_factors():
    from adrl.cohort.mimic_adapter import build_spec
    from adrl.cohort.params import CohortParams

    spec = build_spec(CohortParams(actions={"vaso_factors": "mimic_code"}))
    assert ne_eq([1.0], ["kg"], ["phenylephrine"], [70], spec.vaso_factors)[0] == pytest.approx(0.1)
    assert ne_eq([0.04], ["u"], ["vasopressin"], [70], spec.vaso_factors)[0] == pytest.approx(0.1)


def test_vaso_units_weight_and_max(corrected, faithful, grid):
    _, spec = corrected
    rows = mv([
        (221906, 0, 6, 1.0, "mg", 0.1, "mcg/kg/min", "FinishedRunning", 60),
        (221906, 1, 2, 1.0, "mg", 0.3, "mcg/kg/min", "FinishedRunning", 60),   # max within bin 0
        (221749, 8, 9, 1.0, "mg", 60.0, "mcg/min", "FinishedRunning", 60),     # 60/60 kg * 0.45
        (222315, 13, 14, 1.0, "U", 2.4, "units/hour", "FinishedRunning", 60),  # 2.4/60 * 5 = 0.2
        (221906, 17, 18, 1.0, "mg", 9.0, "mcg/kg/min", "Rewritten", 60),       # dropped
        (221906, 17, 18, 1.0, "mg", 9.0, "mg/hour", "FinishedRunning", 60),    # unknown unit: dropped
    ])
    cvr = cv([(30051, 21, None, None, 1.2, "Umin"),     # 1.2 "U/min" read as per hour -> 0.1
              (30047, 22, 5.0, "mg", None, None)])      # amount only: not a dose
    c = Counter()
    vr = vaso_rows(rows, cvr, spec, c)
    weight = np.full((1, grid.nj), np.nan)
    d = vaso_per_bin(vr, np.array([G0]), grid, weight, spec, actual_weight=True)[0]
    j = lambda k: k - grid.kmin + 1  # noqa: E731
    assert d[j(0)] == pytest.approx(0.3) and d[j(1)] == pytest.approx(0.1)
    assert d[j(2)] == pytest.approx(0.45)      # PATIENTWEIGHT 60 kg
    assert d[j(3)] == pytest.approx(0.2)
    assert d[j(4)] == 0
    assert d[j(5)] == pytest.approx(0.1)
    assert c["inputevents_mv: vasopressor rows dropped (Rewritten)"] == 1
    assert c["inputevents_mv: vasopressor rows dropped (unknown rate unit)"] == 1
    assert c["inputevents_cv: vasopressor rows without a rate (amount only, not a dose)"] == 1
    # held chart weight wins over PATIENTWEIGHT; faithful always 80 kg
    weight[0, j(2)] = 100.0
    d2 = vaso_per_bin(vr, np.array([G0]), grid, weight, spec, actual_weight=True)[0]
    assert d2[j(2)] == pytest.approx(0.6 * 0.45)
    d3 = vaso_per_bin(vr, np.array([G0]), grid, weight, spec, actual_weight=False)[0]
    assert d3[j(2)] == pytest.approx(60 / 80 * 0.45)
