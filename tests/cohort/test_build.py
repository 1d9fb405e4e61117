import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from adrl.cohort.build import build_cohort, check_invariants, write_outputs
from adrl.cohort.params import CohortParams
from adrl.errors import EmptyResultError, InputError
from adrl.schemas import DEMOG_COLS, OBS_COLS, TRAJECTORY_COLUMNS
from tests.cohort.factory import make_world


@pytest.fixture(scope="module")
def built(corrected):
    p, spec = corrected
    static, events = make_world(20, seed=11)
    return p, static, events, build_cohort(static, events, p, spec, progress=False)


def test_contract_and_invariants(built):
    p, _, _, r = built
    t = r.trajectories
    assert list(t.columns) == list(TRAJECTORY_COLUMNS)
    check_invariants(t, p)
    # normalised state: train rows have mean ~0 / std ~1 on z-scored columns
    tr = t[t["split"] == "train"]
    assert abs(tr["o:HR"].mean()) < 1e-3 and abs(tr["o:HR"].std(ddof=0) - 1) < 1e-3
    assert set(np.unique(t["m:gender"])) <= {-0.5, 0.5}
    # t_onset_h on the grid; trajectories end with the single terminal reward
    assert (t["t_onset_h"] % 4 == 0).all() and t["t_onset_h"].min() >= -24 and t["t_onset_h"].max() <= 44
    died = r.stays.set_index("icustay_id")["died"]
    last = t[t["done"]]
    assert ((last["reward"] == 0) == last["icustay_id"].map(died).to_numpy()).all()
    # raw table: same rows, physical units, imputed
    raw = r.trajectories_raw
    assert (raw[["icustay_id", "step", "action"]].to_numpy() == t[["icustay_id", "step", "action"]].to_numpy()).all()
    assert raw["o:HR"].between(20, 250).all() and raw["m:age"].between(18, 120).all()


def test_invariant_violations_are_caught(built):
    p, _, _, r = built
    t = r.trajectories.copy()
    bad = t.copy()
    bad.loc[0, "o:HR"] = np.nan
    with pytest.raises(InputError, match="NaN"):
        check_invariants(bad, p)
    bad = t.copy()
    bad.loc[0, "action"] = (bad.loc[0, "action"] + 1) % 25
    with pytest.raises(InputError, match="action"):
        check_invariants(bad, p)
    bad = t.copy()
    bad.loc[bad.index[0], "done"] = True
    with pytest.raises(InputError, match="done"):
        check_invariants(bad, p)


def test_outputs_written(built, tmp_path):
    p, _, _, r = built
    out = write_outputs(r, p, tmp_path / "processed", tmp_path / "reports" / "cohort_flow.json")
    sch = pq.read_schema(out["trajectories"])
    assert sch.names == list(TRAJECTORY_COLUMNS)
        # Parquet has no seconds unit: timestamp[s] columns come back as timestamp[ms] holding whole seconds
    assert str(sch.field("step").type) == "int16" and str(sch.field("bin_start").type).startswith("timestamp")
    flow = json.loads(out["flow"].read_text())
    assert flow["steps"][0]["stays"] == 20 and flow["split_stays"]["train"] > 0
    assert len(flow["action_table"]["counts"]) == 5 and sum(map(sum, flow["action_table"]["counts"])) == len(r.trajectories)
    edges = json.loads(out["action_edges"].read_text())
    assert len(edges["vaso"]["median_raw_per_bin"]) == 5
    norm = json.loads(out["normalization"].read_text())
    assert set(norm["columns"]) == set(OBS_COLS + DEMOG_COLS) and norm["fitted_on"] == "train"
    ex = pd.read_csv(out["sepsis_final_data_withTimes.csv"])
    assert len(ex) == len(r.trajectories) and ex.columns[-2:].tolist() == ["a:action", "r:reward"]
    assert set(ex["r:reward"].unique()) <= {-1.0, 0.0, 1.0}
    assert (pd.read_csv(out["splits.csv"]).groupby("subject_id")["split"].nunique() == 1).all()
    assert not list(tmp_path.rglob("*.tmp"))


def test_exclusions_counted(corrected):
    p, spec = corrected
    static, events = make_world(8, seed=2)
    # stay 0: a 13 L urine bin; stay 1: a 17-year-old; stay 2: no culture
    oe = events["outputevents"]
    i0 = oe.index[oe["icustay_id"] == 200000][10]
    oe.loc[i0, "value"] = 13000.0
    pats = static["patients"].copy()
    pats.loc[1, "dob"] = static["icustays"].loc[1, "intime"] - pd.Timedelta(days=365 * 17)
    static = {**static, "patients": pats}
    events = {**events, "microbiologyevents": events["microbiologyevents"][events["microbiologyevents"]["hadm_id"] != 100002]}
    r = build_cohort(static, events, p, spec, progress=False)
    steps = {s["step"]: s for s in r.flow["steps"]}
    assert steps["age >= 18 years"]["dropped"] == 1
    assert steps["with an antibiotic and a culture"]["dropped"] == 1
    assert steps["no bin with urine > 12000 mL"]["dropped"] == 1
    assert set(r.trajectories["icustay_id"]) .isdisjoint({200000, 200001, 200002})


def test_empty_cohort_names_the_step(corrected):
    p, spec = corrected
    static, events = make_world(3, seed=1)
    events = {**events, "prescriptions": events["prescriptions"].iloc[0:0]}
    with pytest.raises(EmptyResultError, match="with an antibiotic prescription"):
        build_cohort(static, events, p, spec, progress=False)


def test_missing_column_is_named(corrected):
    p, spec = corrected
    static, events = make_world(3, seed=1)
    with pytest.raises(InputError, match="chartevents.*valuenum"):
        build_cohort(static, {**events, "chartevents": events["chartevents"].drop(columns="valuenum")}, p, spec)


def test_faithful_recipe_runs_with_20_bins(faithful):
    p, spec = faithful
    static, events = make_world(8, seed=4)
    r = build_cohort(static, events, p, spec, progress=False)
    check_invariants(r.trajectories, p)
    t = r.trajectories
    assert t["step"].max() <= 19 and t["t_onset_h"].min() >= -28 and t["t_onset_h"].max() == 48
    assert (t.groupby("traj")["t_onset_h"].max() == 48).all()   # margin 4 h: the last bin starts at +48 h


def test_window_shorter_than_one_bin_is_a_config_error():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="shorter than one bin"):
        CohortParams(window={"before_onset_h": 0, "after_onset_h": 0})
    with pytest.raises(ValidationError, match="cohort.window.after_onset_h"):
        CohortParams(window={"after_onset_h": 46})


def test_withdrawal_of_care_needs_all_five_conditions():
    from adrl.cohort.build import withdrawal_of_care

    base = dict(died_90d=[True], last_vaso=[0.0], max_vaso=[0.5], last_sofa=[6], max_sofa=[10], n_bins=[10])
    assert withdrawal_of_care(**base, K=18, max_dose=0.3).tolist() == [True]
    for key, val in (("died_90d", [False]), ("last_vaso", [0.05]), ("max_vaso", [0.3]), ("last_sofa", [4]),
                     ("n_bins", [18])):
        assert withdrawal_of_care(**{**base, key: val}, K=18, max_dose=0.3).tolist() == [False], key


def test_outcome_definitions(corrected, faithful):
    from adrl.cohort.build import outcomes

    t = pd.Timestamp("2150-01-10")
    st = pd.DataFrame({"icustay_id": [1, 2, 3, 4], "subject_id": [1, 2, 3, 4], "hadm_id": [1, 2, 3, 4],
                       "intime_s": (t - pd.Timedelta(days=5)).timestamp(), "outtime_s": t.timestamp()})
    static = {"admissions": pd.DataFrame({"hadm_id": [1, 2, 3, 4], "dischtime": t + pd.Timedelta(days=9),
                                          "deathtime": [t + pd.Timedelta(hours=40), pd.NaT, t + pd.Timedelta(days=8), pd.NaT],
                                          "hospital_expire_flag": [1, 0, 1, 0]}),
              "patients": pd.DataFrame({"subject_id": [1, 2, 3, 4],
                                        "dod": [t.normalize() + pd.Timedelta(days=1), t - pd.Timedelta(days=1),
                                                t + pd.Timedelta(days=8), t + pd.Timedelta(days=200)]})}
    o = outcomes(st, static, corrected[0], corrected[1].facts).set_index("icustay_id")
    # 1: death 40 h after out-time; 2: DOD a day before out-time (corrected: <= OUTTIME + 48 h); 3: ward death day 8
    assert o["died_icu48"].tolist() == [True, True, False, False]
    assert o["died_hosp"].tolist() == [True, False, True, False]
    assert o["died"].tolist() == [True, True, True, False]            # icu48_or_hospital
    assert o["died_90d"].tolist() == [True, True, True, False]
    of = outcomes(st, static, faithful[0], faithful[1].facts).set_index("icustay_id")
    # faithful: abs(DOD - OUTTIME) < 48 h on the day-resolution DOD
    assert of["died_icu48"].tolist() == [True, True, False, False]
