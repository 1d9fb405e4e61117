import numpy as np
import pandas as pd
import pytest

from adrl.actions import from_flat, to_flat
from adrl.cohort.build import fit_action_edges, split_subjects
from adrl.cohort.featurize import dose_bin
from adrl.cohort.params import CohortParams


def test_dose_bins_right_closed_and_zero():
    e = [500, 1000, 2000]
    x = np.array([0, 1e-9, 500, 500.1, 1000, 1999, 2000, 2000.5, 1e6])
    assert dose_bin(x, e).tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_flat_index_roundtrip():
    f, v = np.meshgrid(np.arange(5), np.arange(5), indexing="ij")
    a = to_flat(f.ravel(), v.ravel())
    assert a.tolist() == list(range(25)) and to_flat(0, 0) == 0
    ff, vv = from_flat(a)
    assert (ff == f.ravel()).all() and (vv == v.ravel()).all()
    assert to_flat(3, 1) == 16


def test_quartile_edges_fit_on_nonzero_train_and_median_dose():
    p = CohortParams(actions={"fluid_edges_ml": "quartiles", "vaso_edges": [0.1, 0.2, 0.3]})
    train = pd.DataFrame({"fluid_ml": [0, 0, 100, 200, 300, 400, 500], "vaso_dose": [0, 0.05, 0.15, 0.25, 0.5, 0, 0]})
    e = fit_action_edges(train, p)
    assert e["fluid"]["edges"] == [200.0, 300.0, 400.0]
    assert e["fluid"]["median_raw_per_bin"] == [0.0, 150.0, 300.0, 400.0, 500.0]
    assert e["vaso"]["edges"] == [0.1, 0.2, 0.3] and e["vaso"]["how"].startswith("fixed")
    assert e["vaso"]["n_train_rows_per_bin"] == [3, 1, 1, 1, 1]


def _subjects(n=200, seed=1):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"subject_id": rng.permutation(np.arange(10_000, 10_000 + n)), "died": rng.random(n) < 0.2})


def test_split_by_patient_stratified_deterministic():
    p = CohortParams()
    s = _subjects()
    a, b = split_subjects(s, p), split_subjects(s.sample(frac=1, random_state=3), p)
    assert a.equals(b)                                    # input order does not matter; same seed, same split
    assert set(a.unique()) == {"train", "val", "test"}
    frac = a.value_counts(normalize=True)
    assert frac["train"] == pytest.approx(0.7, abs=0.02)
    died = s.set_index("subject_id")["died"]
    for lab in ("train", "val", "test"):
        ids = a.index[a == lab]
        assert died[ids].mean() == pytest.approx(died.mean(), abs=0.05)
    c = split_subjects(s, CohortParams(split={"seed": 7}))
    assert not a.equals(c)


def test_split_disjoint_stays_share_subject_split():
    from adrl.cohort.build import build_cohort
    from tests.cohort.factory import make_world

    from adrl.cohort.mimic_adapter import build_spec
    p = CohortParams()
    static, events = make_world(16, seed=3)
    # give 6 subjects a second admission with its own ICU stay (copy of another stay's events)
    icu = static["icustays"].copy()
    icu.loc[icu.index[:6], "subject_id"] = icu["subject_id"].iloc[6:12].to_numpy()
    adm = static["admissions"].copy()
    adm.loc[adm.index[:6], "subject_id"] = icu["subject_id"].iloc[:6].to_numpy()
    pats = static["patients"][~static["patients"]["subject_id"].isin(static["icustays"]["subject_id"].iloc[:6])]
    static = {"patients": pats, "admissions": adm, "icustays": icu}
    for t in events:
        if "subject_id" in events[t] and "hadm_id" in events[t]:
            m = dict(zip(adm["hadm_id"], adm["subject_id"]))
            events[t] = events[t].assign(subject_id=events[t]["hadm_id"].map(m).astype("Int64"))
    r = build_cohort(static, events, p, build_spec(p), progress=False)
    t = r.trajectories
    assert (t.groupby("subject_id")["split"].nunique() == 1).all()
    assert t.groupby("subject_id")["icustay_id"].nunique().max() == 2
