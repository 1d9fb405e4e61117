"""AD-BCQ's dynamics model against the simulator's truth (adrl/modelcheck.py): the arms act on the same patients,
the simulator's effects are the physiology's, sign disagreements are flagged, and the report shows the table."""
import json

import numpy as np
import pandas as pd
import pytest

from adrl import modelcheck as mc
from adrl.synth.params import SynthParams
from benchmarks.bench_rollout import reference_setup

N, SEED, BIN = 80, 7, 7


@pytest.fixture(scope="module")
def setup():
    import torch

    torch.set_num_threads(1)
    return reference_setup(n_fit=40, latent=4, hidden=8)


@pytest.fixture(scope="module")
def world(setup):
    z, idx = mc.states_at_decision(N, SEED, SynthParams(), *setup, BIN)
    return z, idx, mc.simulate_arms(N, SEED, SynthParams(), setup[2], BIN, idx)


def test_arms_act_on_the_same_patients_and_follow_the_physiology(world):
    z, idx, sim = world
    assert 10 <= len(idx) < N and z.shape == (len(idx), 4) and np.isfinite(z).all()
    K = len(mc.ARMS)
    assert sim["next"].shape == (K, len(idx), 2) and sim["ended"].shape == sim["survived"].shape == (K, len(idx))
    # before the bin every copy is the same patient (common random numbers)
    assert all(np.array_equal(sim["now"][0], sim["now"][r]) for r in range(K))
    # the arms' doses are applied: fluid raises MAP (volume), vasopressor raises MAP (tone), more with the bin
    cont = ~sim["ended"].any(0)
    d_map = (sim["next"][:, cont, 0] - sim["next"][0, cont, 0]).mean(1)
    fl = [mc.ARMS.index((f, 0)) for f in range(1, 5)]
    va = [mc.ARMS.index((0, v)) for v in range(1, 5)]
    assert (d_map[fl] > 0).all() and (np.diff(d_map[fl]) > 0).all()
    assert (d_map[va] > 0).all() and (np.diff(d_map[va]) > 0).all()


def _readout():
    return mc.Readout(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]), np.array([70.0, 2.0]),
                      {"map": 0.9, "lactate": 0.8})


def test_compare_flags_every_opposite_sign(world):
    z, idx, sim = world
    m = len(z)

    def query(z, a_f, a_v):   # fluid raises "MAP" (z_0) by f; vasopressor LOWERS it by v; lactate unchanged
        z2 = z.astype(np.float64).copy()
        z2[:, 0] += a_f - a_v
        return z2, np.full(m, 0.05), np.full(m, 0.8) + 0.01 * a_f
    res = mc._finite(mc.compare(z, sim, query, _readout()))
    json.loads(json.dumps(res), parse_constant=lambda c: pytest.fail(f"{c} in the model check"))
    arms = {r["arm"]: r for r in res["arms"]}
    assert list(arms) == ["noop", "fluid1", "fluid2", "fluid3", "fluid4", "vaso1", "vaso2", "vaso3", "vaso4"]
    for v in range(1, 5):   # the simulator raises MAP with a vasopressor; this model lowers it: flagged
        r = arms[f"vaso{v}"]
        assert r["effect_vs_noop"]["model"]["map"] == pytest.approx(-v)
        assert r["effect_vs_noop"]["sim"]["map"] > 0 and "effect_map" in r["sign_disagreements"]
        assert "effect_lactate" not in r["sign_disagreements"]   # a model effect of exactly 0 is no disagreement
    for f in range(1, 5):
        assert "effect_map" not in arms[f"fluid{f}"]["sign_disagreements"]
        assert arms[f"fluid{f}"]["effect_vs_noop"]["model"]["p_survive"] == pytest.approx(0.01 * f)
    assert res["sign_disagreements"] == len(res["flags"]) == sum(len(r["sign_disagreements"]) for r in res["arms"])
    assert any(f.startswith("vaso4 against no-op, map: model -4") for f in res["flags"])
    assert res["sign_disagreements_clear"] >= 4   # the vasopressor MAP effects are far beyond their SE
    # only aggregates: no per-patient array anywhere
    assert all(not isinstance(v, list) or k in ("arms", "flags", "sign_disagreements")
               for r in [res, *res["arms"]] for k, v in r.items())


def _tables(rng, n=400):
    """A states table and its trajectory rows where MAP and lactate are linear in z, with their normalisation."""
    zz = rng.normal(size=(n, 4)).astype(np.float32)
    states = pd.DataFrame({"icustay_id": np.arange(n) // 4, "step": np.arange(n) % 4,
                           "split": np.where(np.arange(n) < 300, "train", "val"),
                           **{f"z_{i}": zz[:, i] for i in range(4)}})
    traj = pd.DataFrame({"icustay_id": states["icustay_id"], "step": states["step"],
                         "o:MeanBP": zz[:, 0] + 0.01 * rng.normal(size=n), "o:Arterial_lactate": -zz[:, 1]})
    norm = {"columns": {"o:MeanBP": {"transform": "z", "mean": 70.0, "std": 10.0},
                        "o:Arterial_lactate": {"transform": "z", "mean": 2.0, "std": 1.0}}}
    return zz, states, traj, norm


def _model(zz, rng):
    import torch

    from adrl.rl.data import Transitions
    from adrl.rl.dynamics import DynamicsConfig, fit_dynamics

    n = len(zz)
    done = (rng.random(n) < 0.1).astype(np.float32)
    z2 = (zz + 0.1 * rng.normal(size=zz.shape)).astype(np.float32)
    t = Transitions(zz, rng.integers(0, 25, n), np.where(done > 0, 100.0, 0.0).astype(np.float32),
                    np.where(done[:, None] > 0, 0, z2).astype(np.float32), done, z2_full=z2)
    torch.manual_seed(0)
    cfg = DynamicsConfig(ensemble=2, hidden=8, max_epochs=2, survival_input="next_state")
    return fit_dynamics(t, t, cfg, 0, progress=False)[0], cfg


def test_stage_writes_the_check_or_says_why_not(setup, tmp_path, monkeypatch):
    import pipeline.evaluate as ev
    from adrl.config import validate_config
    from adrl.groundtruth import Rollouts
    from adrl.rl.train import load_dynamics, save_dynamics

    monkeypatch.chdir(tmp_path)
    cfg = validate_config({"evaluate": {"model_check": {"n_patients": 30}}})
    assert "no dynamics model" in ev.model_checks(cfg, setup)["skipped"]
    assert "n_patients is 0" in ev.model_checks(validate_config({"evaluate": {"model_check": {"n_patients": 0}}}),
                                                setup)["skipped"]
    rng = np.random.default_rng(1)
    zz, states, traj, norm = _tables(rng)
    (tmp_path / "data/processed/cohort").mkdir(parents=True)
    states.to_parquet("data/processed/states.parquet")
    traj.to_parquet("data/processed/trajectories.parquet")
    (tmp_path / "data/processed/cohort/normalization.json").write_text(json.dumps(norm))
    dyn, dcfg = _model(zz, rng)
    save_dynamics(dyn, dcfg, tmp_path / "models/train/dynamics/seed3/ensemble.pt")
    out = ev.model_checks(cfg, setup)
    assert list(out) == ["seed3"] and out["seed3"]["n_patients"] == 30 and len(out["seed3"]["arms"]) == len(mc.ARMS)
    m = ev.model_check_metrics(out)
    assert m["model_check.seed3.sign_disagreements"] == out["seed3"]["sign_disagreements"]
    assert "model_check.seed3.vaso4.effect_sim.map" in m and "model_check.seed3.noop.model.p_end" in m
    assert all(isinstance(v, (int, float)) for v in m.values())
    # a second ensemble: the patients are simulated once (one roll-out unit) and each model is checked against them,
    # exactly as a check of that model alone
    dyn2, _ = _model(zz, np.random.default_rng(2))
    save_dynamics(dyn2, dcfg, tmp_path / "models/train/dynamics/seed4/ensemble.pt")
    runner = Rollouts(cfg.synth, setup)
    both = ev.model_checks(cfg, setup, runner)
    assert runner.in_process == 1 and both["seed3"] == out["seed3"]
    ro = mc.fit_readout(ev.read_states_with_ids(), traj, norm)
    alone = mc.model_check(load_dynamics(tmp_path / "models/train/dynamics/seed4/ensemble.pt").expected, ro, 30,
                           cfg.evaluate.truth.seed, cfg.synth, *setup, cfg.evaluate.model_check.decision_bin)
    assert both["seed4"] == alone
    real = validate_config({"source": {"kind": "demo"}, "evaluate": {"model_check": {"n_patients": 30}}})
    assert "no simulator truth" in ev.model_checks(real, setup)["skipped"]


def test_readout_and_the_whole_check_with_a_fitted_model(setup, tmp_path):
    from adrl.report.build import model_check_blocks
    from adrl.report.html import Table

    rng = np.random.default_rng(0)
    zz, states, traj, norm = _tables(rng)
    ro = mc.fit_readout(states, traj, norm)
    assert ro.r2["map"] > 0.99 and ro.r2["lactate"] > 0.99
    np.testing.assert_allclose(ro(np.array([[1.0, 1.0, 0, 0]])), [[80.0, 1.0]], atol=0.2)   # ridge shrinks a little
    dyn, _ = _model(zz, rng)   # a small model on noise transitions, queried through DynamicsEnsemble.expected
    res = mc.model_check(dyn.expected, ro, 40, SEED, SynthParams(), *setup, BIN)
    assert res["n_patients"] == 40 and res["decision_bin"] == BIN and len(res["arms"]) == len(mc.ARMS)
    assert 0 < res["n_patients_checked"] < 40
    json.loads(json.dumps(res), parse_constant=lambda c: pytest.fail(f"{c} in the model check"))
    blocks = model_check_blocks({"seed0": res})
    tables = [b for b in blocks if isinstance(b, Table)]
    assert len(tables) == 1 and len(tables[0].rows) == len(mc.ARMS) and len(tables[0].rows[0]) == 15
    assert any(isinstance(b, tuple) and b[0] == "warn" for b in blocks) == bool(res["flags"])
    assert model_check_blocks({"skipped": "no dynamics model"})[0] == ("note", "No model check against the "
                                                                       "simulator: no dynamics model.")
