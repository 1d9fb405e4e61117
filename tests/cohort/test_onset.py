from collections import Counter

import numpy as np
import pandas as pd
import pytest

from adrl.cohort.onset import antibiotics, cultures, onsets

H = 3600.0


def frames(abx, cul):
    a = pd.DataFrame({"icustay_id": [1] * len(abx), "t": np.array(abx, float) * H, "order": np.arange(len(abx))})
    c = pd.DataFrame({"icustay_id": [1] * len(cul), "t": np.array(cul, float) * H})
    return a, c


@pytest.mark.parametrize("earliest", [True, False])
@pytest.mark.parametrize("abx,cul,expect", [
    ([0], [24], (0, "abx_first")),          # culture exactly 24 h after the antibiotic
    ([0], [24.01], None),                   # just outside 24 h
    ([72], [0], (0, "culture_first")),      # antibiotic exactly 72 h after the culture
    ([72.01], [0], None),
    ([10], [10], (10, "abx_first")),        # same time: antibiotic first
])
def test_pairing_windows(abx, cul, expect, earliest):
    a, c = frames(abx, cul)
    o = onsets(a, c, 24, 72, earliest=earliest)
    if expect is None:
        assert o.empty
    else:
        assert o["onset_s"].iloc[0] == expect[0] * H and o["onset_kind"].iloc[0] == expect[1]


def test_corrected_earliest_vs_faithful_walk():
    # antibiotic rows in source order: t=100 h first, then t=0 h. Cultures at 50 h and 110 h.
    a = pd.DataFrame({"icustay_id": [1, 1], "t": [100 * H, 0.0], "order": [0, 1]})
    c = pd.DataFrame({"icustay_id": [1, 1], "t": [50 * H, 110 * H]})
    corr = onsets(a, c, 24, 72, earliest=True)
    # culture at 50 then antibiotic at 100 (within 72) -> candidate 50; antibiotic 0 has no culture in 24 h
    assert corr["onset_s"].iloc[0] == 50 * H and corr["onset_kind"].iloc[0] == "culture_first"
    faith = onsets(a, c, 24, 72, earliest=False)
    # first row (t=100): nearest culture is 110 -> antibiotic precedes by 10 h -> onset 100
    assert faith["onset_s"].iloc[0] == 100 * H and faith["onset_kind"].iloc[0] == "abx_first"


def test_faithful_checks_nearest_culture_only():
    # antibiotic at 30 h; nearest culture at 29 h (culture first, 1 h) -> onset 29 although 40 h (abx first) exists
    a, c = frames([30], [29, 40])
    assert onsets(a, c, 24, 72, earliest=False)["onset_s"].iloc[0] == 29 * H
    assert onsets(a, c, 24, 72, earliest=True)["onset_s"].iloc[0] == 29 * H


class _Spec:
    abx_gsn = frozenset({"009327"})
    abx_routes_bad = frozenset({"OD"})
    culture_items = pd.DataFrame({"table": ["chartevents", "procedureevents_mv"], "itemid": [938, 225401]})


def _stays():
    ts = pd.Timestamp("2150-01-01")
    return pd.DataFrame({"subject_id": [1, 1, 2], "hadm_id": [10, 10, 20], "icustay_id": [100, 101, 200],
                         "intime_s": [ts.timestamp(), ts.timestamp() + 10 * 86400, ts.timestamp()],
                         "outtime_s": [ts.timestamp() + 2 * 86400, ts.timestamp() + 12 * 86400,
                                       ts.timestamp() + 3 * 86400]})


def test_antibiotic_gsn_route_and_attachment():
    ts = pd.Timestamp("2150-01-01")
    rx = pd.DataFrame({"subject_id": [1, 1, 1, 2, 2], "hadm_id": [10, 10, 10, 20, 20],
                       "icustay_id": pd.array([None, None, 100, None, None], dtype="Int64"),
                       "startdate": [ts + pd.Timedelta(days=11), ts + pd.Timedelta(days=4), ts, ts, ts],
                       "gsn": ["009327", "009327", "009327", "009327", "000001"], "route": ["IV", "IV", "PO", "OD", "IV"]})
    c = Counter()
    a = antibiotics(rx, _stays(), _Spec, 48, c)
    # row 0: admission has two stays -> the one containing day 11 (101); row 1: day 4 within 48 h of stay 100's
    # OUTTIME (day 2) -> 100; row 2: ICUSTAY_ID given; row 3 eye drops dropped; row 4 not an antibiotic GSN
    assert sorted(a["icustay_id"].tolist()) == [100, 100, 101]
    assert c["prescriptions: antibiotic rows dropped (non-systemic route)"] == 1
    assert c["prescriptions: rows not on the antibiotic GSN list"] == 1


def test_cultures_micro_dedup_chartdate_and_sources():
    ts = pd.Timestamp("2150-01-01")
    micro = pd.DataFrame({"subject_id": [2, 2, 2], "hadm_id": [20, 20, 20], "chartdate": [ts, ts, ts],
                          "charttime": [ts + pd.Timedelta(hours=5), ts + pd.Timedelta(hours=5), pd.NaT],
                          "spec_itemid": [70012, 70012, 70012], "spec_type_desc": ["BLOOD"] * 3})
    ce = pd.DataFrame({"icustay_id": [100, 100], "itemid": [938, 6035], "charttime": [ts, ts]})
    pe = pd.DataFrame({"icustay_id": [101], "itemid": [225401], "starttime": [ts + pd.Timedelta(days=10)]})
    c = Counter()
    out = cultures(micro, ce, pe, _stays(), _Spec, 48, c)
    assert c["microbiologyevents: duplicate rows (subject, admission, time, specimen)"] == 1
    got = sorted(zip(out["icustay_id"], out["t"] - ts.timestamp()))
    assert got == [(100, 0.0), (101, 10 * 86400.0), (200, 0.0), (200, 5 * H)]
