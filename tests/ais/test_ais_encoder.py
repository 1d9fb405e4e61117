"""The frozen encoder: causality, padding, the states contract and its time alignment, step-by-step API."""
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from adrl.ais.data import INPUT_COLUMNS
from adrl.ais.encoder import AisEncoder, states_table
from adrl.ais.synthetic import fake_trajectories
from adrl.io import write_parquet
from adrl.schemas import OBS_COLS, STATES_DECISION_COLUMNS, STATES_ID_COLUMNS, z_columns


def _z(states):
    return states[[c for c in states.columns if c.startswith("z_")]].to_numpy()


def test_states_contract_columns_types_and_alignment(fitted, small_cohort, tmp_path):
    enc = fitted.encoder
    s = enc.encode_trajectories(small_cohort)
    assert list(s.columns) == list(STATES_ID_COLUMNS) + z_columns(enc.latent_dim) + list(STATES_DECISION_COLUMNS)
    assert len(s) == len(small_cohort)
    write_parquet(tmp_path / "states.parquet", states_table(s))
    schema = pq.read_schema(tmp_path / "states.parquet")
    types = {f.name: str(f.type) for f in schema}
    assert types["split"] == "string" and types["z_0"] == "float" and types["decision"] == "int8"
    assert types["traj"] == "int32" and types["step"] == "int16" and types["done"] == "bool"
    # method.md 2.2 by hand on one stay: the decision at t is the action of row t+1
    traj = small_cohort["traj"].iloc[0]
    rows = small_cohort[small_cohort["traj"] == traj].reset_index(drop=True)
    st = s[s["traj"] == traj].reset_index(drop=True)
    L = len(rows)
    assert st["decision"].tolist() == rows["action"].tolist()[1:] + [-1]
    assert st["decision_fluid"].tolist() == rows["fluid_bin"].tolist()[1:] + [-1]
    assert st["decision_vaso"].tolist() == rows["vaso_bin"].tolist()[1:] + [-1]
    assert st["reward"].tolist() == rows["reward"].tolist()[1:] + [0.0]
    assert st["done"].tolist() == [False] * (L - 2) + [True, False]
    assert st["last"].tolist() == [False] * (L - 1) + [True]
    # one transition per row but the last: L - 1 per stay, exactly one done each
    assert (~s["last"]).sum() == len(s) - s["traj"].nunique()
    assert s.loc[s["done"]].groupby("traj").size().eq(1).all()
    assert s["split"].tolist() == small_cohort["split"].tolist()


def test_causality_future_rows_do_not_change_past_states(fitted, small_cohort):
    enc = fitted.encoder
    base = enc.encode_trajectories(small_cohort)
    t = 3
    later = (small_cohort["step"] > t).to_numpy()
    changed = small_cohort.copy()
    rng = np.random.default_rng(0)
    for c in INPUT_COLUMNS:
        changed.loc[later, c] = rng.normal(0, 3, later.sum()).astype(np.float32)
    new_a = rng.integers(0, 25, later.sum())
    changed.loc[later, "action"] = new_a.astype(np.int8)
    changed.loc[later, "fluid_bin"] = (new_a // 5).astype(np.int8)
    changed.loc[later, "vaso_bin"] = (new_a % 5).astype(np.int8)
    after = enc.encode_trajectories(changed)
    np.testing.assert_array_equal(_z(after)[~later], _z(base)[~later])
    assert not np.allclose(_z(after)[later], _z(base)[later])
    # and the state at t does depend on row t (including its action)
    at_t = (small_cohort["step"] == t).to_numpy()
    bumped = small_cohort.copy()
    bumped.loc[at_t, "action"] = ((bumped.loc[at_t, "action"].astype(int) + 1) % 25).astype(np.int8)
    bumped.loc[at_t, "fluid_bin"] = (bumped.loc[at_t, "action"].astype(int) // 5).astype(np.int8)
    bumped.loc[at_t, "vaso_bin"] = (bumped.loc[at_t, "action"].astype(int) % 5).astype(np.int8)
    z_b = _z(enc.encode_trajectories(bumped))
    assert not np.allclose(z_b[at_t], _z(base)[at_t])
    np.testing.assert_array_equal(z_b[(small_cohort["step"] < t).to_numpy()],
                                  _z(base)[(small_cohort["step"] < t).to_numpy()])


def test_padding_and_variable_lengths(fitted):
    enc = fitted.encoder
    df = fake_trajectories(30, min_len=1, max_len=12, seed=3)
    assert df.groupby("traj").size().nunique() > 5 and df.groupby("traj").size().min() == 1
    together = enc.encode_trajectories(df)
    # each stay alone (no padding at all) gives the same states as inside a padded batch
    for traj in df["traj"].unique()[:8]:
        alone = enc.encode_trajectories(df[df["traj"] == traj].reset_index(drop=True))
        np.testing.assert_allclose(_z(alone), _z(together[together["traj"] == traj]), rtol=0, atol=1e-5)
    # a stay of length 1 has one row, no decision, and a state
    ones = together[together.groupby("traj")["step"].transform("size") == 1]
    assert len(ones) and ones["last"].all() and (ones["decision"] == -1).all() and not ones["done"].any()
    assert np.isfinite(_z(together)).all() and (np.abs(_z(together)).sum(1) > 0).all()


def test_step_by_step_equals_encode_trajectories_exactly(fitted, small_cohort):
    enc = fitted.encoder
    states = enc.encode_trajectories(small_cohort)
    trajs = small_cohort["traj"].unique()
    n, T = len(trajs), int(small_cohort["step"].max()) + 1
    h = enc.start(n)
    assert h.shape == (n, enc.latent_dim)
    zs = np.zeros((n, T, enc.latent_dim), np.float32)
    pos = np.searchsorted(trajs, small_cohort["traj"].to_numpy())
    step = small_cohort["step"].to_numpy()
    for t in range(T):
        x = np.zeros((n, len(INPUT_COLUMNS)), np.float32)
        a = np.zeros(n, np.int64)
        here = step == t
        x[pos[here]] = small_cohort.loc[here, list(INPUT_COLUMNS)].to_numpy(np.float32)
        a[pos[here]] = small_cohort.loc[here, "action"].to_numpy()
        zs[:, t], h = enc.step(h, x, a)
        np.testing.assert_array_equal(zs[:, t], h)  # GRU: the hidden state is z_t itself (ais_rollout relies on it)
    np.testing.assert_array_equal(zs[pos, step], _z(states))


def test_step_for_one_new_patient_matches(fitted, small_cohort):
    enc = fitted.encoder
    rows = small_cohort[small_cohort["traj"] == small_cohort["traj"].iloc[-1]]
    states = enc.encode_trajectories(small_cohort)
    h = enc.start(1)
    for i in range(len(rows)):
        z, h = enc.step(h, rows[list(INPUT_COLUMNS)].to_numpy(np.float32)[i:i + 1], rows["action"].to_numpy()[i:i + 1])
    np.testing.assert_allclose(z[0], _z(states)[-1], rtol=0, atol=1e-5)
    # the decoder predicts o_{t+1} from (z_t, A_t)
    assert enc.predict_next_obs(z, np.array([3])).shape == (1, len(OBS_COLS))


def test_lstm_step_matches_and_save_load_round_trip(small_cohort, fast_params, tmp_path):
    from adrl.ais.train import fit_encoder

    r = fit_encoder(small_cohort, fast_params.model_copy(update={"rnn": "lstm", "max_epochs": 2}), progress=False)
    r.encoder.save(tmp_path / "ais")
    enc = AisEncoder.load(tmp_path / "ais")
    assert enc.rnn == "lstm" and enc.latent_dim == 8 and enc.training["best_epoch"] >= 1
    assert enc.config["input_columns"] == list(INPUT_COLUMNS)
    pd.testing.assert_frame_equal(enc.encode_trajectories(small_cohort), r.encoder.encode_trajectories(small_cohort))
    one = small_cohort[small_cohort["traj"] == 0]
    h = enc.start(1)
    assert h.shape == (1, 16)
    for i in range(len(one)):
        z, h = enc.step(h, one[list(INPUT_COLUMNS)].to_numpy(np.float32)[i:i + 1], one["action"].to_numpy()[i:i + 1])
    last = enc.encode_trajectories(one)
    np.testing.assert_allclose(z, _z(last)[-1:], rtol=0, atol=1e-5)
