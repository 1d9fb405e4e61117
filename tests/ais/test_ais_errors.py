"""Bad input gets a clear error naming what and where."""
import numpy as np
import pytest

from adrl.ais.encoder import AisEncoder
from adrl.ais.train import fit_encoder
from adrl.errors import EmptyResultError, InputError

WHERE = "data/processed/trajectories.parquet"


@pytest.fixture
def df(small_cohort):
    return small_cohort.copy()


def test_missing_column_is_named(df, fast_params):
    with pytest.raises(InputError, match=r"trajectories.parquet: missing required column\(s\) \['o:HR', 'action'\]"):
        fit_encoder(df.drop(columns=["o:HR", "action"]), fast_params, where=WHERE)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_name_column_and_rows(df, fast_params, value):
    df.loc[[3, 5, 9], "m:age"] = value
    with pytest.raises(InputError, match=r"trajectories.parquet: column 'm:age' has 3 row\(s\) with NaN or infinite"):
        fit_encoder(df, fast_params, where=WHERE)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_split_without_stays_is_named(df, fast_params, split):
    df = df[df["split"] != split].reset_index(drop=True)
    with pytest.raises(EmptyResultError, match=f"trajectories.parquet: split '{split}' has no stays"):
        fit_encoder(df, fast_params, where=WHERE, require_splits=("train", "val", "test"))


def test_split_of_length_one_stays_has_no_transitions(df, fast_params):
    val = df["split"] == "val"
    df = df[~val | (df["step"] == 0)].reset_index(drop=True)
    df["done"] = np.r_[df["traj"].to_numpy()[1:] != df["traj"].to_numpy()[:-1], True]
    with pytest.raises(EmptyResultError, match="split 'val' has no transitions"):
        fit_encoder(df, fast_params, where=WHERE)


def test_empty_table(df, fitted):
    with pytest.raises(EmptyResultError, match="no rows"):
        fitted.encoder.encode_trajectories(df.iloc[:0])


def test_unsorted_or_gapped_steps(df, fitted):
    with pytest.raises(InputError, match="steps must run 0, 1, ..., L-1"):
        fitted.encoder.encode_trajectories(df.drop(index=2).reset_index(drop=True), where=WHERE)
    with pytest.raises(InputError, match=r"sorted by \(traj, step\)"):
        fitted.encoder.encode_trajectories(df.iloc[::-1].reset_index(drop=True), where=WHERE)


def test_inconsistent_actions_done_and_split(df, fitted):
    bad = df.copy()
    bad.loc[0, "action"] = 24
    with pytest.raises(InputError, match="'action', 'fluid_bin', 'vaso_bin': 1 row"):
        fitted.encoder.encode_trajectories(bad, where=WHERE)
    bad = df.copy()
    bad.loc[0, "done"] = True
    with pytest.raises(InputError, match="'done' must be true exactly on each traj's last row; 1 row"):
        fitted.encoder.encode_trajectories(bad, where=WHERE)
    bad = df.copy()
    bad["split"] = bad["split"].astype(object)
    bad.loc[0, "split"] = "holdout"
    with pytest.raises(InputError, match=r"'split' has value\(s\) \['holdout'\]"):
        fitted.encoder.encode_trajectories(bad, where=WHERE)


def test_step_rejects_bad_shapes_and_values(fitted):
    enc = fitted.encoder
    h = enc.start(2)
    x = np.zeros((2, 38), np.float32)
    with pytest.raises(InputError, match=r"obs_demog must have shape \(n, 38\)"):
        enc.step(h, np.zeros((2, 33)), np.zeros(2, int))
    x[1, 33] = np.nan
    with pytest.raises(InputError, match=r"NaN or infinite values in \['m:gender'\]"):
        enc.step(h, x, np.zeros(2, int))
    with pytest.raises(InputError, match="prev_action must be 2 integer flat actions in 0..24"):
        enc.step(h, np.zeros((2, 38)), np.array([0, 25]))
    with pytest.raises(InputError, match="use start"):
        enc.step(enc.start(3), np.zeros((2, 38)), np.zeros(2, int))


def test_diverging_training_names_the_learning_rate(df, fast_params):
    from adrl.errors import ConfigError

    with pytest.raises(ConfigError, match="lower ais.lr"):
        fit_encoder(df, fast_params.model_copy(update={"lr": 1.0e30, "max_epochs": 2}))


def test_load_names_the_missing_file(tmp_path):
    with pytest.raises(InputError, match="config.json: AIS model file not found"):
        AisEncoder.load(tmp_path)
