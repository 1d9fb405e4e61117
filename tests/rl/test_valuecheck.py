"""The per-run convergence check (value_check) and the value-learning profiles of train."""
from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch

from adrl.config import validate_config
from adrl.errors import ConfigError, EmptyResultError
from adrl.rl import tabular as T
from adrl.rl.params import PROFILES, TrainParams
from adrl.rl.data import Transitions, transitions
from adrl.rl.batched import BatchedLearners
from adrl.rl.train import (RunSpec, checkpoint_checks, fit_runs, group_checks, make_learner, run_sweep,
                             value_bounds)
from adrl.rl.valuecheck import CheckSet, SharedLogits, check_set, checkpoint_check, converged, mc_returns, value_check


def _table(rewards_per_stay, split="val"):
    rows = []
    for traj, rs in enumerate(rewards_per_stay):
        L = len(rs) + 1
        for t in range(L):
            rows.append({"traj": traj, "step": t, "split": split, "last": t == L - 1,
                         "reward": rs[t] if t < L - 1 else 0.0, "done": t == L - 2})
    return pd.DataFrame(rows)


def test_mc_returns_are_discounted_returns_to_go_within_each_stay():
    df = _table([[0, 0, 100], [0, 0], [100]])
    g = mc_returns(df, "val", gamma=0.9)
    np.testing.assert_allclose(g, [81, 90, 100, 0, 0, 100])


def test_value_check_needs_a_complete_episode_and_names_the_split():
    df = T.chain(16).sample_states(20, seed=0)
    with pytest.raises(EmptyResultError, match="split 'test'"):
        check_set(df, "test", 0.99)


def test_ratio_bounds():
    assert converged({"ratio": 0.8}) and converged({"ratio": 1.25}) and not converged({"ratio": 0.79})
    assert not converged({"ratio": float("nan")}) and not converged(None)


def test_profiles_fill_null_keys_and_explicit_values_win():
    p = TrainParams()
    assert (p.lr, p.loss, p.value_scale, p.steps) == (PROFILES["default"]["lr"], "mse", p.r_max,
                                                      PROFILES["default"]["steps"])
    t = TrainParams(profile="tang")
    assert (t.lr, t.loss, t.value_scale, t.polyak, t.steps) == (3e-4, "huber", 1.0, 0.005, 10000)
    assert TrainParams(profile="tang", lr=0.01).lr == 0.01


@pytest.mark.parametrize("raw, needle", [
    ({"train": {"profile": "fast"}}, "train.profile"),
    ({"train": {"steps": -5}}, "train.steps"),
    ({"train": {"lr": -0.001}}, "train.lr"),
    ({"train": {"loss": "l1"}}, "train.loss"),
    ({"train": {"value_check_split": "holdout"}}, "train.value_check_split"),
    ({"train": {"q_clip": "yes"}}, "train.q_clip"),
])
def test_bad_value_learning_keys_name_the_key(raw, needle):
    with pytest.raises(ConfigError) as e:
        validate_config(raw)
    assert needle in str(e.value)


def test_every_run_records_its_value_check_per_checkpoint(tmp_path):
    torch.set_num_threads(1)
    mdp = T.chain(6)
    df = mdp.sample_states(400, seed=1)
    p = TrainParams(algorithms=["bcq", "adbcq"], augment=[False], thresholds=[0.3], seeds=[0], steps=60,
                    checkpoint_every=20, hidden=32, workers=1)
    man = run_sweep(df, p, tmp_path / "m", progress=False)
    for r in man["runs"]:
        vc = r["value_check"]
        assert set(vc) >= {"q_logged", "mc_return", "ratio", "q_spread", "td_error", "converged"}
        assert vc["split"] == "val" and np.isclose(vc["ratio"], vc["q_logged"] / vc["mc_return"])
        rec = json.loads((tmp_path / "m" / "runs" / r["run_id"] / "run.json").read_text())
        assert len(rec["value_check_history"]["ratio"]) == len(rec["steps"]) == 3
        assert checkpoint_check(tmp_path / "m" / "runs" / r["run_id"], 60)["ratio"] == vc["ratio"]
        assert checkpoint_check(tmp_path / "m" / "runs" / r["run_id"], 61) is None
    # MC return of the chain's validation rows: the survivors' discounted 100s
    assert 0 < man["runs"][0]["value_check"]["mc_return"] < 100


def _tr(r, done, d=3):
    n = len(r)
    z = np.zeros((n, d), np.float32)
    return Transitions(z, np.zeros(n, np.int64), np.asarray(r, np.float32), z, np.asarray(done, np.float32))


def test_value_bounds_are_the_returns_the_rewards_allow():
    assert value_bounds(_tr([0, 0, 100, 0, 0], [0, 0, 1, 0, 1]), 0.99) == (0.0, 100.0)     # the sepsis reward
    assert value_bounds(_tr([0, 1, -1], [0, 1, 1]), 0.99) == (-1.0, 1.0)                  # pm1 export
    lo, hi = value_bounds(_tr([2, -1, 10], [0, 0, 1]), 0.9)                               # intermediate rewards
    assert np.isclose(lo, -10.0) and np.isclose(hi, 20.0 + 10.0)
    assert value_bounds(_tr([2, 10], [0, 1]), 1.0)[1] == np.inf


@pytest.mark.parametrize("algorithm", ["bcq", "factored_bcq", "adbcq"])
def test_q_clip_auto_keeps_bootstrap_targets_inside_the_possible_returns(algorithm):
    """A network that over-estimates (Q of 5 R_max at every next state) must not be its own target: with q_clip auto
    (the default profile) no target exceeds R_max; with none (tang) they do."""
    torch.set_num_threads(1)
    df = T.chain(6).sample_states(200, seed=0)
    data = transitions(df, "train")
    spec = RunSpec(algorithm, 0.3, 0, "linear" if algorithm == "adbcq" else None, False if algorithm == "adbcq" else None)
    targets = {}
    for clip in ("auto", "none"):
        p = TrainParams(q_clip=clip, hidden=16, workers=1)
        lrn = make_learner(spec, data, p)
        with torch.no_grad():
            for m in lrn.target.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.zero_()
                    m.bias.fill_(5.0)
        idx = np.flatnonzero(data.done == 0)[:50]
        batch = [torch.from_numpy(getattr(data, k)[idx]) for k in ("z", "a", "r", "z2", "done")]
        _, stats = lrn.losses(lrn.net, lrn.target, *batch)
        targets[clip] = float(stats["target/mean"])
    assert targets["auto"] <= 100.0 + 1e-4 < targets["none"]
    assert TrainParams(profile="tang").q_clip == "none" and TrainParams().q_clip == "auto"


def _reference_check(net, cfg, cs):
    """The check as first written: the network over z and over z2 of every row (no state evaluated once)."""
    d = cs.data
    with torch.no_grad():
        q, m = net(torch.from_numpy(d.z))
        q2, m2 = net(torch.from_numpy(d.z2))
    qa = q.gather(1, torch.from_numpy(d.a)[:, None]).squeeze(1)
    hi = torch.where(m, q, torch.full_like(q, -torch.inf)).amax(1)
    lo = torch.where(m, q, torch.full_like(q, torch.inf)).amin(1)
    v2 = torch.where(m2, q2, torch.full_like(q2, -torch.inf)).amax(1)
    done = torch.from_numpy(d.done)
    y = torch.from_numpy(d.r) / cfg.value_scale + cfg.gamma * (1 - done) * torch.where(done > 0, 0.0, v2)
    s = cfg.value_scale
    return {"q_logged": float(qa.double().mean()) * s, "q_spread": float((hi - lo).double().mean()) * s,
            "td_error": float((qa - y).abs().double().mean()) * s}


@pytest.mark.parametrize("algorithm", ["bcq", "factored_bcq", "adbcq"])
def test_check_evaluates_each_state_once_and_equals_the_direct_check(algorithm):
    """Next states are read from the row that starts there (row i + 1 of the stay) and evaluated only where no row
    starts there. The check equals the direct one."""
    torch.set_num_threads(1)
    df = T.chain(6).sample_states(300, seed=2)
    zc = [c for c in df.columns if c.startswith("z_")]
    df[zc] += np.random.default_rng(0).normal(0, 0.01, (len(df), len(zc))).astype(np.float32)   # every state its own
    cs = check_set(df, "val", 0.99)
    d = cs.data
    live = np.flatnonzero(d.done == 0)
    assert (cs.next_row[live] == live + 1).all() and (cs.next_row[d.done > 0] == -1).all()
    # states tables always continue a live stay (done on row t is last on row t + 1); transitions built otherwise
    # (here one next state moved off its row) keep their own next state
    z2 = d.z2.copy()
    z2[live[3]] += 0.5
    cs = CheckSet(Transitions(d.z, d.a, d.r, z2, d.done), cs.mc, "val")
    assert cs.next_row[live[3]] == -1 and (cs.next_row >= 0).sum() == len(live) - 1
    data = transitions(df, "train")
    spec = RunSpec(algorithm, 0.3, 0, "linear" if algorithm == "adbcq" else None, False if algorithm == "adbcq" else None)
    lrn = make_learner(spec, data, TrainParams(hidden=16, workers=1))
    # random weights give every action its own value, so a next state read from the wrong row would show
    got, want = value_check(lrn.net, lrn.cfg, cs, chunk=37), _reference_check(lrn.net, lrn.cfg, cs)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-6, abs=1e-6), k
    wrong = CheckSet(d, cs.mc, "val", next_row=np.where(cs.next_row >= 0, np.roll(cs.next_row, 1), -1))
    assert value_check(lrn.net, lrn.cfg, wrong)["td_error"] != pytest.approx(want["td_error"], rel=1e-4)


def test_runs_that_share_an_imitation_network_share_its_logits_in_the_check_and_get_their_own_check():
    """A batched group's thresholds of one seed: the group's checks (imitation logits computed once per checkpoint)
    equal each run's check alone, exactly; a run whose imitation parameters differ computes its own."""
    torch.set_num_threads(1)
    df = T.chain(6).sample_states(300, seed=3)
    data = transitions(df, "train")
    cs = check_set(df, "val", 0.99)
    p = TrainParams(hidden=16, workers=1, steps=30, checkpoint_every=10)
    specs = [RunSpec("bcq", t, s) for s in (0, 1) for t in (0.0, 0.3, 0.9)]
    learners = [make_learner(s, data, p) for s in specs]
    group = BatchedLearners(learners)
    assert group.imit_of == [0, 0, 0, 1, 1, 1]
    _, states, _, _ = fit_runs(group, data, p.steps, p.batch_size, p.checkpoint_every, [s.seed for s in specs])
    calls = []
    for x in learners:   # count the imitation networks' passes (group_checks copies the nets, hooks included)
        x.net.imit.register_forward_hook(lambda *a: calls.append(1))
    shared = group_checks(learners, states, cs, group.imit_of)
    n_shared = len(calls)
    alone = [checkpoint_checks(x, st, cs) for x, st in zip(learners, states)]
    assert shared == alone
    assert n_shared > 0 and n_shared * 3 == len(calls) - n_shared     # 2 networks of 6 computed per checkpoint
    assert len({tuple(c["q_spread"]) for c in alone}) > 2   # more than one check per imitation network: tau acts
    # a stranger: its imitation parameters are not the first run's, so the memo is not used for it
    sl = SharedLogits()
    nets = [copy.deepcopy(learners[i].net) for i in (0, 3)]
    for net, i in zip(nets, (0, 3)):
        net.load_state_dict(states[i][-1])
    mine = sl.of(nets[0])
    assert mine is not nets[0].imit and sl.of(nets[1]) is nets[1].imit
