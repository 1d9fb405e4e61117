"""The synthetic world: table layout, determinism, actions, mortality, separability, roll-outs, atomicity."""
import gzip
import hashlib

import numpy as np
import pandas as pd
import pytest

from adrl.config import validate_config
from adrl.errors import ConfigError
from adrl.synth import physiology as ph
from adrl.synth.params import SynthParams
from adrl.synth.rollout import RolloutWorld, rollout
from adrl.synth.world import World
from adrl.synth.writer import headers

TABLES = ["PATIENTS", "ADMISSIONS", "ICUSTAYS", "CHARTEVENTS", "LABEVENTS", "INPUTEVENTS_CV", "INPUTEVENTS_MV",
          "OUTPUTEVENTS", "PRESCRIPTIONS", "MICROBIOLOGYEVENTS", "PROCEDUREEVENTS_MV", "D_ITEMS", "D_LABITEMS"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth") / "raw"
    w = World(SynthParams(profile="tiny", n_stays=200, seed=3), progress=False)
    w.write(d)
    return w, d


def test_every_table_written_with_official_header(tiny):
    _, d = tiny
    for t in TABLES:
        with gzip.open(d / f"{t}.csv.gz", "rt") as f:
            head = f.readline().rstrip("\n")
        assert head == ",".join(f'"{c}"' for c in headers()[t]), t


def test_headers_and_formats_match_demo(tiny, demo_dir):
    _, d = tiny
    for t in TABLES:
        if t == "CHARTEVENTS":
            continue
        with gzip.open(demo_dir / f"{t}.csv.gz", "rt") as f:
            assert f.readline() == ",".join(f'"{c}"' for c in headers()[t]) + "\n", t
    with gzip.open(d / "LABEVENTS.csv.gz", "rt") as f:
        lines = [f.readline() for _ in range(2000)]
    body = "".join(lines[1:])
    import re
    assert re.search(r',\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,"', body)  # unquoted time, quoted string
    assert not re.search(r',0\.\d', body)                          # decimals without a leading zero
    assert re.search(r',\.\d', body)
    pd.read_csv(d / "CHARTEVENTS.csv.gz", nrows=1000)


def test_same_seed_same_bytes(tiny, tmp_path):
    w, d = tiny
    w2 = World(SynthParams(profile="tiny", n_stays=200, seed=3), progress=False)
    w2.write(tmp_path / "raw")
    for t in TABLES:
        a = hashlib.sha256((d / f"{t}.csv.gz").read_bytes()).hexdigest()
        b = hashlib.sha256((tmp_path / "raw" / f"{t}.csv.gz").read_bytes()).hexdigest()
        assert a == b, t


def test_actions_and_mortality(tiny):
    w, _ = tiny
    s = w.summary()
    assert min(s["action_counts"]) > 0 or sum(s["action_counts"]) < 6000
    assert s["no_vaso_fraction"] > 0.75
    assert 0.2 < s["septic_fraction"] < 0.5
    assert 0.03 < s["mortality_septic"] < 0.35


def test_all_25_actions_on_default_scale():
    w = World(SynthParams(profile="tiny", n_stays=1500, seed=0), progress=False)
    s = w.summary()
    assert min(s["action_counts"]) > 0, s["action_counts"]
    assert 0.8 < s["no_vaso_fraction"] < 0.99


def _effect(interaction):
    rng = np.random.default_rng(0)
    n = 64
    z = rng.normal(0, 0.7, (n, ph.NL))
    eps = rng.standard_normal((4, n, ph.NL))
    abx = np.full(n, 0.03)
    eff = []
    for vaso in (0.0, 0.1, 0.5):
        base = ph.transition(z, np.zeros(n), np.full(n, vaso), abx, eps, interaction)
        big = ph.transition(z, np.full(n, 2500.0), np.full(n, vaso), abx, eps, interaction)
        eff.append(big - base)
    return eff


def test_fluid_effect_separable_without_interaction():
    e = _effect(0.0)
    assert np.abs(e[0]).max() > 0.1
    assert np.allclose(e[0], e[1]) and np.allclose(e[0], e[2])


def test_fluid_effect_depends_on_vaso_with_interaction():
    e = _effect(1.0)
    assert np.abs(e[0] - e[2]).max() > 0.05


def test_rollout_deterministic():
    a = rollout("clinician", 150, 7, progress=False)
    b = rollout("clinician", 150, 7, progress=False)
    assert np.array_equal(a["died"], b["died"])
    fast = rollout("clinician", 150, 7, progress=False, events=False)  # charting draws no outcome noise
    assert np.array_equal(a["died"], fast["died"])


GT_N, GT_SEED = 1000, 20261125


@pytest.fixture(scope="module")
def ground_truth():
    """True survival of reference policies on the same patients with the same noise (common random numbers)."""
    from adrl.synth.policies import REFERENCE

    return {k: rollout(REFERENCE[k], GT_N, GT_SEED, progress=False, events=False)
            for k in ("clinician", "no_treatment", "max_treatment", "rule")}


def test_no_treatment_clearly_worse_than_clinician(ground_truth):
    c, none = ground_truth["clinician"], ground_truth["no_treatment"]
    assert none["value"] < c["value"] - 5.0, (none["value"], c["value"])
    assert 0.10 <= 1 - c["survival"] <= 0.30          # septic mortality under the clinician


def test_max_fluid_and_vasopressor_harmful(ground_truth):
    assert ground_truth["max_treatment"]["value"] < ground_truth["clinician"]["value"] - 30.0


def test_simple_rule_beats_clinician(ground_truth):
    c, r = ground_truth["clinician"]["died"], ground_truth["rule"]["died"]
    diff = c.astype(float) - r.astype(float)             # paired: same patients, same noise
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    assert diff.mean() > 2 * se and diff.mean() > 0.01, (diff.mean(), se)


def test_rollout_admission_timing_like_the_world():
    w = RolloutWorld(400, 3, events=False)
    rel = (w.intime - w.onset) / 3600.0
    assert (rel < -24).mean() > 0.03 and (rel > -20).mean() > 0.5   # admitted before bin 0, and during the window
    assert (rel < 48).all()
    w.reset()
    assert w.step_i == 1 and not w.done.all()
    w.step(np.zeros(400), np.zeros(400))
    assert (w.batch.death_hour[w.batch.h_start > w.batch.h] < 0).all()  # nobody dies before admission


def test_carevue_mcg_per_min_rate_uses_charted_weight():
    """The cohort divides CareVue mcg/min rates by the charted weight (cohort.md 5.2): it must get the dose back."""
    from adrl.synth import catalogue as cat

    n = 120
    w = RolloutWorld(n, 5)
    ev = [w.reset()]
    for _ in range(5):
        ev.append(w.step(np.zeros(n), np.full(n, 0.2)))
    ce = pd.concat([e["chartevents"] for e in ev])
    icv = pd.concat([e["inputevents_cv"] for e in ev])
    it = cat.items()
    wt_items = it[it.sim_var.isin(["Weight", "WeightDaily"]) & (it.sim_system == "cv")]
    lb = set(wt_items.itemid[wt_items.sim_scale == "lb"])
    wt = ce[ce.itemid.isin(wt_items.itemid)].copy()
    wt["kg"] = np.where(wt.itemid.isin(lb), wt.valuenum * 0.4536, wt.valuenum)
    vaso = it[it.sim_var.str.startswith("Vaso_") & (it.sim_system == "cv")]
    fac = dict(zip(vaso.itemid, vaso.sim_scale.astype(float)))
    rows = icv[icv.rateuom.isin(["mcgmin", "mcg/min"]) & icv.itemid.isin(fac)].copy()
    onset = pd.Series(pd.to_datetime(w.onset, unit="s"), index=w.ids["icustay_id"])
    g0 = onset - pd.Timedelta(hours=24)
    binof = lambda d: ((d.charttime - g0.loc[d.icustay_id].to_numpy()) // pd.Timedelta(hours=4)).to_numpy()  # noqa
    rows["bin"], wt["bin"] = binof(rows), binof(wt)
    wb = wt.groupby(["icustay_id", "bin"]).kg.mean().reset_index().sort_values("bin")
    rows = pd.merge_asof(rows.sort_values("bin"), wb, on="bin", by="icustay_id").dropna(subset=["kg"])
    assert len(rows) > 20
    dose = rows.rate * rows.itemid.map(fac) / rows.kg
    intime = pd.Series(pd.to_datetime(w.intime, unit="s"), index=w.ids["icustay_id"])
    first_bin = (intime - g0) // pd.Timedelta(hours=4)
    late = (rows.bin > np.maximum(first_bin.loc[rows.icustay_id].to_numpy(), 0)).to_numpy()  # the agent's bins
    assert late.sum() > 10
    assert np.allclose(dose[late], 0.2, rtol=0.01), dose[late].describe()


def test_interaction_punishes_concurrent_fluid_and_vasopressor():
    from adrl.synth.policies import concurrent_policy

    a = rollout(concurrent_policy, 600, 9, SynthParams(interaction=0.0), progress=False, events=False)
    b = rollout(concurrent_policy, 600, 9, SynthParams(interaction=1.5), progress=False, events=False)
    assert b["value"] < a["value"] - 5.0


def test_rollout_events_in_interim_schema():
    from adrl.mimic.schema import INTERIM

    w = RolloutWorld(20, 1)
    ev = w.reset()
    for t in ("chartevents", "labevents", "inputevents_mv", "outputevents"):
        assert list(ev[t].columns) == list(INTERIM[t])
    ev = w.step(np.full(20, 600.0), np.full(20, 0.2))
    assert len(ev["chartevents"]) > 0


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    from adrl.synth import tables

    w = World(SynthParams(profile="tiny", n_stays=40, seed=1), progress=False)
    calls = {"n": 0}
    real = tables.write_table

    def boom(path, table, cols, n):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(path, table, cols, n)

    monkeypatch.setattr(tables, "write_table", boom)
    with pytest.raises(KeyboardInterrupt):
        w.write(tmp_path / "raw")
    assert not (tmp_path / "raw").exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_parameter_names_key():
    with pytest.raises(ConfigError, match="synth.n_stays"):
        validate_config({"synth": {"n_stays": 5}})


def test_chunked_writing_continues_row_ids(tmp_path, monkeypatch):
    """Stays are simulated and written in chunks (memory flat in the number of stays); ids run on across chunks."""
    from adrl.synth import world as world_mod

    monkeypatch.setattr(world_mod, "CHUNK_HOURS", 1500)
    w = World(SynthParams(profile="tiny", n_stays=60, seed=2), progress=False)
    assert len(w.chunks()) > 3
    assert sorted(np.concatenate(w.chunks()).tolist()) == list(range(60))
    rows = w.write(tmp_path / "raw")
    for t in ("CHARTEVENTS", "LABEVENTS", "INPUTEVENTS_MV", "PROCEDUREEVENTS_MV"):
        df = pd.read_csv(tmp_path / "raw" / f"{t}.csv.gz", usecols=lambda c: c in ("ROW_ID", "ORDERID"))
        assert len(df) == rows[t]
        assert np.array_equal(df.ROW_ID.to_numpy(), np.arange(1, len(df) + 1)), t
        if "ORDERID" in df:
            assert df.ORDERID.is_unique, t


def test_charted_events_lie_within_their_icu_stay(tiny):
    """Second stays of an admission and readmissions are moved in time: their events must move with them."""
    _, d = tiny
    icu = pd.read_csv(d / "ICUSTAYS.csv.gz", parse_dates=["INTIME", "OUTTIME"]).set_index("ICUSTAY_ID")
    for t, col in (("CHARTEVENTS", "CHARTTIME"), ("INPUTEVENTS_MV", "STARTTIME"), ("OUTPUTEVENTS", "CHARTTIME")):
        ev = pd.read_csv(d / f"{t}.csv.gz", usecols=["ICUSTAY_ID", "ITEMID", col], parse_dates=[col]).dropna()
        if t == "CHARTEVENTS":  # CareVue culture orders follow the infection, not the stay
            from adrl.synth import catalogue as cat
            ev = ev[~ev.ITEMID.isin(cat.choice("CultureCE", "cv").itemids)]
        st = icu.loc[ev.ICUSTAY_ID.astype(int)]
        inside = (ev[col].to_numpy() >= st.INTIME.to_numpy()) & (ev[col].to_numpy() <= st.OUTTIME.to_numpy())
        assert inside.all(), (t, int((~inside).sum()))


@pytest.mark.parametrize("cohort_only", [True, False])
def test_replicas_charted_together_give_the_rows_of_one_charter_each(cohort_only):
    """Replicas of the same patients treated differently and charted in one pass (one generator per replica) give
    the frames (rows, order, dtypes) and outcomes of one charter per replica (the reference)."""
    def run(together):
        w = RolloutWorld(60, 7, SynthParams(), cohort_only=cohort_only, chart_together=together)
        evs = [w.reset()]
        w.replicate(3)
        r = np.random.default_rng(1)
        while not w.done.all() and w.step_i < 18:
            f, v = w.clinician_doses()
            mix = r.random(w.n) < 0.5  # each replica its own doses, so their courses and row counts differ
            evs.append(w.step(np.where(mix, f, r.choice([0.0, 250.0, 1000.0], w.n)),
                              np.where(mix, v, r.choice([0.0, 0.1, 0.4], w.n))))
        return evs, w.outcome()

    (a, died_a), (b, died_b) = run(True), run(False)
    assert np.array_equal(died_a, died_b) and len(a) == len(b)
    n_rows = np.zeros(3, np.int64)
    for x, y in zip(a, b):
        assert set(x) == set(y)
        for t in x:
            pd.testing.assert_frame_equal(x[t], y[t], check_exact=True)
            if "icustay_id" in x[t]:
                n_rows += np.bincount((x[t]["icustay_id"].to_numpy(np.int64) - 3_000_000) // 60, minlength=3)
    # the replicas' charts really differ (other doses, other courses, other draws)
    assert len(set(n_rows.tolist())) == 3
