"""The incremental featuriser returns, call by call, exactly the new rows the batch featuriser returns on all events
so far: hand-made stays (holds expiring, stays ending, values arriving late) and a simulator roll-out."""
import numpy as np
import pandas as pd
import pytest

from adrl.cohort.build import build_cohort
from adrl.cohort.featurize import Featurizer
from adrl.cohort.grid import to_seconds
from adrl.cohort.incremental import TIME_COLUMNS, IncrementalFeaturizer
from adrl.cohort.params import CohortParams
from adrl.errors import InputError
from tests.cohort.factory import HR, make_world

STATIC = ("patients", "admissions", "icustays")


@pytest.fixture(scope="module")
def world(corrected):
    p, spec = corrected
    static, events = make_world(12, seed=5)
    res = build_cohort(static, events, p, spec, progress=False)
    onsets = res.stays[res.stays["kept"]][["icustay_id", "onset"]]
    # stays ending inside the window while events go on: one discharged 18 h, one dead 10 h after the onset
    on = onsets.set_index("icustay_id")["onset"]
    a, b = onsets["icustay_id"].iloc[1], onsets["icustay_id"].iloc[2]
    icu = static["icustays"].copy()
    icu.loc[icu["icustay_id"] == a, "outtime"] = on[a] + pd.Timedelta(hours=18)
    adm = static["admissions"].copy()
    adm.loc[adm["hadm_id"] == icu.loc[icu["icustay_id"] == b, "hadm_id"].iloc[0], "deathtime"] = \
        on[b] + pd.Timedelta(hours=10)
    # a 12-hour gap in one stay's heart rate (held 2 h): the held value expires, the forward fill keeps it
    c = onsets["icustay_id"].iloc[3]
    ce = events["chartevents"]
    t = pd.to_datetime(ce["charttime"])
    gap = (ce["icustay_id"] == c) & (ce["itemid"] == HR) & (t >= on[c]) & (t < on[c] + pd.Timedelta(hours=12))
    events = {**events, "chartevents": ce[~gap.to_numpy()]}
    return {**static, "icustays": icu, "admissions": adm}, events, onsets, res


def _key(df):
    return df["icustay_id"].astype(str) + ":" + df["step"].astype(str)


def _stay_of(static, table, df):
    if table == "labevents":
        return df["hadm_id"].map(static["icustays"].set_index("hadm_id")["icustay_id"]).to_numpy()
    return df["icustay_id"].to_numpy()


def feed(fz, static, onsets, events, late_frac=0.0, keep_history=False, seed=0, every=1):
    """Deliver the events bin by bin (per-stay clocks on the cohort grid; ``every`` bins at a time), a share
    ``late_frac`` of them one to three bins late; after each delivery compare the incremental rows with the batch
    featuriser's new rows. The last delivery brings whatever is left."""
    inc = IncrementalFeaturizer(fz, static, onsets, keep_history=keep_history)
    g = fz.grid
    st = inc.st
    g0 = pd.Series(st["g0"].to_numpy(), index=st["icustay_id"].to_numpy())
    rng = np.random.default_rng(seed)
    bins, delay = {}, {}
    for t, df in events.items():
        if t in TIME_COLUMNS and df is not None and len(df):
            iid = _stay_of(static, t, df)
            k = np.floor((to_seconds(df[TIME_COLUMNS[t]]) - g0.reindex(iid).to_numpy()) / g.bin_s)
            bins[t] = np.clip(np.nan_to_num(k, nan=g.kmax + 5), g.kmin - 2, g.kmax + 5)  # other stays: the end
            delay[t] = np.where(rng.random(len(df)) < late_frac, rng.integers(1, 4, len(df)), 0)
    seen, given, n_rows = set(), {t: np.zeros(len(events[t]), bool) for t in bins}, 0
    ks = list(range(g.kmin - 1, g.kmax + 1, every))
    for k in ks:
        batch = {}
        for t in bins:
            now = ((bins[t] + delay[t] <= k) | (k == ks[-1])) & ~given[t]
            given[t] |= now
            batch[t] = events[t][now]
        inc.add(batch)
        until = st["g0"].to_numpy() + (k + 1) * g.bin_s if k != ks[-1] else None
        new = inc.rows(until)
        cum = {t: (events[t][given[t]] if t in bins else df) for t, df in events.items()}
        old = fz(static, onsets, cum, until=until)
        want = old[~_key(old).isin(seen)]
        seen |= set(_key(old))
        pd.testing.assert_frame_equal(new.reset_index(drop=True), want.reset_index(drop=True), check_exact=True)
        n_rows += len(new)
    return n_rows, old


def test_bin_by_bin_equals_batch_featuriser(world, corrected):
    static, events, onsets, res = world
    p, spec = corrected
    fz = Featurizer(p, spec, res.normalization, res.action_edges)
    n, rows = feed(fz, static, onsets, events)
    assert n == len(rows) > 50
    # the hand-made stays exercise what the carried state is for: stays ending before the window does,
    # holds expiring (a held value that is gone again while the forward-filled state keeps it)
    assert (rows.groupby("icustay_id")["step"].max() < fz.grid.K - 1).any()
    held = rows.sort_values(["icustay_id", "step"])
    prev = held.groupby("icustay_id")["held:HR"].shift()
    assert (prev.notna() & held["held:HR"].isna() & held["o:HR"].notna()).any()


def test_without_forward_fill_beyond_the_hold(world, corrected):
    static, events, onsets, res = world
    p = CohortParams(state={"ffill_beyond_hold": False})
    fz = Featurizer(p, corrected[1], res.normalization, res.action_edges)
    n, _ = feed(fz, static, onsets, events, every=3)
    assert n > 50


def test_values_arriving_late_recompute_the_stay(world, corrected):
    static, events, onsets, res = world
    fz = Featurizer(corrected[0], corrected[1], res.normalization, res.action_edges)
    n, _ = feed(fz, static, onsets, events, late_frac=0.1, keep_history=True, seed=3)
    assert n > 50
    with pytest.raises(InputError, match="icustay_id.*keep_history"):
        feed(fz, static, onsets, events, late_frac=0.1, keep_history=False, seed=3)


def test_a_simulated_roll_out_bin_by_bin():
    """The roll-out world's events, as the ground-truth roll-outs feed them (one 4-hour bin per call)."""
    from benchmarks.bench_rollout import reference_setup
    from adrl.synth.rollout import RolloutWorld

    fz, _, _ = reference_setup(n_fit=40, latent=4, hidden=8)
    w = RolloutWorld(30, 9)
    ev = w.reset()
    static, onsets = {t: ev[t] for t in STATIC}, ev["onset"]
    inc = IncrementalFeaturizer(fz, static, onsets)
    cum = {t: [] for t in TIME_COLUMNS}
    seen, total = set(), 0
    while True:
        for t in TIME_COLUMNS:
            cum[t].append(ev[t])
        inc.add({t: ev[t] for t in TIME_COLUMNS})
        until = np.asarray(w.onset, np.float64) - 24 * 3600 + w.step_i * fz.grid.bin_s
        new = inc.rows(until)
        old = fz(static, onsets, {t: pd.concat(v, ignore_index=True) for t, v in cum.items()}, until=until)
        want = old[~_key(old).isin(seen)]
        seen |= set(_key(old))
        pd.testing.assert_frame_equal(new.reset_index(drop=True), want.reset_index(drop=True), check_exact=True)
        total += len(new)
        if w.done.all() or w.step_i >= 18:
            break
        ev = w.step(*w.clinician_doses())
    assert total > 100

