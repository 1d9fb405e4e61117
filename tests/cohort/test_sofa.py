import numpy as np

from adrl.cohort import sofa

nan = np.nan


def test_respiration_standard_needs_ventilation_for_3_and_4():
    pf = np.array([450, 399, 299, 199, 199, 99, 99, nan])
    vent = np.array([0, 0, 0, 0, 1, 0, 1, 1], bool)
    assert sofa.resp(pf, vent, standard=True).tolist() == [0, 1, 2, 2, 3, 2, 4, 0]
    # faithful (AI Clinician): points 3-4 without the ventilation condition
    assert sofa.resp(pf, vent, standard=False).tolist() == [0, 1, 2, 3, 3, 4, 4, 0]


def test_coagulation_liver_cns():
    assert sofa.coag([150, 149, 99, 49, 19, nan]).tolist() == [0, 1, 2, 3, 4, 0]
    assert sofa.liver([1.1, 1.2, 2.0, 6.0, 12.0, nan]).tolist() == [0, 1, 2, 3, 4, 0]
    assert sofa.cns([15, 14, 13, 12, 10, 9, 6, 5, 3, nan]).tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 0]


def test_cardiovascular_both_scorings():
    m = np.array([75, 69, 64, 64, 80, 80, nan])
    d = np.array([0, 0, 0, 0, 0.05, 0.2, 0])
    assert sofa.cardio(m, d, standard=True).tolist() == [0, 1, 1, 1, 3, 4, 0]
    assert sofa.cardio(m, d, standard=False).tolist() == [0, 1, 2, 2, 3, 4, 0]
    assert sofa.cardio([80], [0.1]).tolist() == [3]  # 0 < dose <= 0.1


def test_renal_creatinine_urine_and_missing_urine():
    c = np.array([1.1, 1.2, 2.0, 3.5, 5.0, nan, nan, nan, 1.0])
    u = np.array([nan, nan, nan, nan, nan, 83.9, 84, 33.9, nan])
    assert sofa.renal(c, u, 4, standard=True).tolist() == [0, 1, 2, 3, 4, 3, 0, 4, 0]
    # faithful: no urine record counts as 0 mL -> renal 4
    assert sofa.renal([1.0], [nan], 4, standard=False).tolist() == [4]
    # cut-offs scale with bin_h: 500 mL/day over 8 h = 167 mL
    assert sofa.renal([nan], [160], 8).tolist() == [3]
    assert sofa.renal([nan], [170], 8).tolist() == [0]


def test_total_sums_components():
    tot = sofa.sofa_total(pf=[250], vent=[True], platelets=[90], bili=[2.5], map_=[60], vaso_dose=[0], gcs=[12],
                          creat=[1.5], urine_ml=[100], bin_h=4)
    assert tot.tolist() == [2 + 2 + 2 + 1 + 2 + 1]
    assert sofa.sofa_total([nan], [False], [nan], [nan], [nan], [0], [nan], [nan], [nan], 4).tolist() == [0]
