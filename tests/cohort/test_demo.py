"""End to end on the MIMIC-III demo (real tables except CHARTEVENTS, which is a generated stand-in: project data,
not MIMIC data). Explains the flow counts (cohort.md 10.4)."""
import numpy as np
import pytest

from adrl.cohort.build import build_cohort, check_invariants
from adrl.cohort.mimic_adapter import build_spec
from adrl.cohort.params import CohortParams
from pipeline.cohort import load_events

pytestmark = pytest.mark.demo


@pytest.fixture(scope="module")
def runs(demo_interim):
    out = {}
    for recipe in ("corrected", "faithful"):
        p = CohortParams(recipe=recipe)
        spec = build_spec(p)
        static, ev, load_chunk = load_events(p, spec, demo_interim)
        out[recipe] = (p, static, ev, build_cohort(static, ev, p, spec, progress=False, load_chunk=load_chunk))
    return out


def steps(r):
    return {s["step"]: s["stays"] for s in r.flow["steps"]}


def test_population_counts_are_the_demo_facts(runs):
    for recipe, (p, static, ev, r) in runs.items():
        s = steps(r)
        icu = static["icustays"]
        assert s["ICU stays in ICUSTAYS"] == 136
        # one 17-year-old (stay 271544; cohort.md 10.1); over-89s (age ~300) are kept as 91.4
        assert s["age >= 18 years"] == 135
        assert 271544 not in set(r.stays["icustay_id"])
        # admissions with several ICU stays keep their first: 135 stays in 128 admissions
        kept = icu[icu["icustay_id"] != 271544]
        assert s["first ICU stay of the admission"] == kept["hadm_id"].nunique() == 128


def test_antibiotic_and_culture_counts(runs):
    p, static, ev, r = runs["corrected"]
    s = steps(r)
    # the 6 Vigamox eye-drop rows (route OD) are dropped by the corrected recipe only
    assert r.flow["dropped"]["prescriptions: antibiotic rows dropped (non-systemic route)"] == 6
    assert "prescriptions: antibiotic rows dropped (non-systemic route)" not in runs["faithful"][3].flow["dropped"]
    # every candidate admission with a GSN-matched prescription has one stay: count them independently
    icu = static["icustays"]
    first = icu[icu["icustay_id"] != 271544].sort_values("intime").drop_duplicates("hadm_id")
    rx = ev["prescriptions"]
    rx = rx[~rx["route"].str.upper().isin(build_spec(p).abx_routes_bad)]
    assert s["with an antibiotic prescription"] == first["hadm_id"].isin(rx["hadm_id"]).sum()
    assert s["with an antibiotic and a culture"] <= s["with an antibiotic prescription"]
    # MICROBIOLOGYEVENTS has one row per specimen x organism x antibiotic: most rows are duplicates of a sample
    assert r.flow["dropped"]["microbiologyevents: duplicate rows (subject, admission, time, specimen)"] > 500


def test_flow_is_consistent_and_final_cohort_valid(runs):
    for recipe, (p, static, ev, r) in runs.items():
        st = r.flow["steps"]
        assert all(b["stays"] == a["stays"] - b["dropped"] for a, b in zip(st, st[1:]))
        assert all(b["stays"] <= a["stays"] for a, b in zip(st, st[1:]))
        check_invariants(r.trajectories, p)
        final = r.stays[r.stays["kept"]]
        assert len(final) == st[-1]["stays"] == r.trajectories["traj"].nunique()
        assert (final["max_sofa"] >= p.sepsis.sofa_threshold).all()
        # the onset pair respects the pairing windows
        d = (final["culture_time"] - final["abx_time"]).dt.total_seconds() / 3600
        af = final["onset_kind"] == "abx_first"
        assert d[af].between(0, 24).all() and (-d[~af]).between(0, 72).all()
        assert (final["onset"] == np.where(af, final["abx_time"], final["culture_time"])).all()
        # corrected only: Rewritten MV rows dropped, counted
    corr = runs["corrected"][3].flow["dropped"]
    assert corr["inputevents_mv: fluid rows dropped (Rewritten)"] > 0
    assert corr["labevents: blood-gas rows dropped (non-arterial specimen)"] > 0
    assert runs["faithful"][3].trajectories["step"].max() <= 19
    assert runs["corrected"][3].trajectories["step"].max() <= 17


def test_stage_script_writes_every_output(demo_interim, tmp_path, monkeypatch):
    """pipeline/cohort.py end to end (tracking off) in a scratch project directory."""
    import json
    import shutil

    from adrl import tracking
    from adrl.config import load_config
    from pipeline import cohort as stage

    root = tmp_path / "proj"
    (root / "data" / "interim").mkdir(parents=True)
    (root / "data" / "interim" / "events").symlink_to(demo_interim)
    shutil.copy("params.yaml", root / "params.yaml")
    monkeypatch.chdir(root)
    stage.main(load_config(root / "params.yaml"), tracking.StageRun())
    m = json.loads((root / "reports" / "metrics" / "cohort.json").read_text())
    flow = json.loads((root / "reports" / "cohort_flow.json").read_text())
    assert m["stays_final"] == flow["steps"][-1]["stays"] > 0
    assert m["stays_train"] + m["stays_val"] + m["stays_test"] == m["stays_final"]
    for f in ("data/processed/trajectories.parquet", "data/processed/trajectories_raw.parquet",
              "data/processed/stays.parquet", "data/processed/cohort/normalization.json",
              "data/processed/cohort/action_edges.json", "data/processed/export/splits.csv",
              "data/processed/export/sepsis_final_data_withTimes.csv",
              "data/processed/export/sepsis_final_data_RAW_withTimes.csv"):
        assert (root / f).exists(), f
