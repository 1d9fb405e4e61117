"""The per-run convergence check (value_check) and the value-learning profiles of train."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from adrl.config import validate_config
from adrl.errors import ConfigError, EmptyResultError
from adrl.rl import tabular as T
from adrl.rl.params import PROFILES, TrainParams
from adrl.rl.train import run_sweep
from adrl.rl.valuecheck import check_set, checkpoint_check, converged, mc_returns


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
