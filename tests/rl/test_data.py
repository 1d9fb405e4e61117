"""The states table -> transitions contract, and bad input."""
import numpy as np
import pytest

from adrl.errors import ConfigError, EmptyResultError, InputError
from adrl.rl.data import transitions
from adrl.rl.params import TrainParams
from adrl.rl.train import expand_sweep
from adrl.config import validate_config
from tests.rl.factored_mdp import make_states


def test_transitions_align_decision_reward_and_next_state():
    df = make_states(40, seed=1)
    tr = transitions(df, "train")
    n_train_stays = (df[df.split == "train"].traj.nunique())
    assert len(tr) == 2 * n_train_stays                      # a stay of length 3 gives 2 transitions
    part = df[df.split == "train"].sort_values(["traj", "step"])
    zc = [f"z_{i}" for i in range(13)]
    row0 = part[part.step == 0]
    row1 = part[part.step == 1]
    # first transition of each stay: (z_0, decision_0, reward_0, z_1, done=False)
    np.testing.assert_array_equal(tr.z[0::2], row0[zc].to_numpy(np.float32))
    np.testing.assert_array_equal(tr.a[0::2], row0.decision.to_numpy())
    np.testing.assert_array_equal(tr.z2[0::2], row1[zc].to_numpy(np.float32))
    assert (tr.done[0::2] == 0).all() and (tr.done[1::2] == 1).all()
    # terminal next states are zeros; the reward sits on the terminal transition
    assert (tr.z2[1::2] == 0).all()
    np.testing.assert_allclose(tr.r[1::2], row1.reward.to_numpy())
    assert (tr.r[0::2] == 0).all()


def test_missing_contract_column_is_named():
    df = make_states(10).drop(columns=["decision_vaso"])
    with pytest.raises(InputError, match="decision_vaso"):
        transitions(df, "train", where="my_states.parquet")


def test_missing_state_columns_are_named():
    df = make_states(10).drop(columns=["z_3"])
    with pytest.raises(InputError, match="z_0 .. z_"):
        transitions(df, "train")


@pytest.mark.parametrize("col, value, needle", [("decision", 25, "out of range"), ("decision", -1, "out of range"),
                                                ("decision_fluid", 7, "decision_fluid")])
def test_actions_out_of_range(col, value, needle):
    df = make_states(10)
    df.loc[(df.step == 0).to_numpy().nonzero()[0][0], col] = value
    with pytest.raises(InputError, match=needle):
        transitions(df, "train")


def test_split_without_transitions_is_an_error():
    df = make_states(10)
    with pytest.raises(EmptyResultError, match="split 'test' has no transitions"):
        transitions(df, "test")
    only_last = df[df["last"] | (df.split != "val")]
    with pytest.raises((EmptyResultError, InputError), match="val"):
        transitions(only_last, "val")


def test_broken_stay_is_an_error():
    df = make_states(10)
    df = df[~((df.traj == 0) & (df.step == 1))]
    with pytest.raises(InputError, match="no next row"):
        transitions(df, "train")


@pytest.mark.parametrize("key", ["algorithms", "mixers", "augment", "thresholds", "seeds"])
def test_empty_sweep_list_is_an_error(key):
    with pytest.raises(ConfigError, match=f"train.{key}"):
        validate_config({"train": {key: []}})


def test_duplicate_sweep_entries_are_an_error():
    with pytest.raises(ConfigError, match="duplicate"):
        expand_sweep(TrainParams(seeds=[0, 0]))


def test_sweep_expansion_applies_mixers_and_augment_to_adbcq_only():
    p = TrainParams(algorithms=["bcq", "adbcq"], mixers=["mean", "linear"], augment=[True, False],
                    thresholds=[0.1, 0.3], seeds=[0, 1])
    specs = expand_sweep(p)
    assert len(specs) == 2 * 2 + 2 * 2 * 2 * 2
    assert len({s.run_id for s in specs}) == len(specs)
    assert all(s.mixer is None for s in specs if s.algorithm == "bcq")
