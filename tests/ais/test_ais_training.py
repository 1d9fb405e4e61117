"""Training: the loss falls, early stopping keeps the best epoch, the encoder beats carry-forward,
and the same seed gives the same states."""
import numpy as np
import pandas as pd
import pytest

from adrl.ais.params import AisParams
from adrl.ais.synthetic import fake_trajectories
from adrl.ais.train import fit_encoder
from adrl.schemas import z_columns


def test_loss_falls_on_a_small_cohort(fitted):
    h = fitted.history
    assert list(h.columns) == ["epoch", "train_nll", "val_nll"]
    assert h["epoch"].tolist() == list(range(1, len(h) + 1))
    assert h["train_nll"].iloc[-1] < 0.5 * h["train_nll"].iloc[0]
    assert h["val_nll"].min() < 0.5 * h["val_nll"].iloc[0]


def test_best_epoch_is_kept_and_reported(fitted):
    h, m = fitted.history, fitted.metrics
    assert m["best_epoch"] == int(h.loc[h["val_nll"].idxmin(), "epoch"])
    # the frozen weights are the best epoch's: re-evaluating them gives the best validation NLL
    assert m["val_nll"] == pytest.approx(h["val_nll"].min(), rel=1e-5)


def test_early_stopping_stops_after_patience(small_cohort):
    # a learning rate this large makes validation NLL stall quickly; training must stop patience epochs later
    r = fit_encoder(small_cohort, AisParams(latent_dim=4, hidden=8, lr=0.5, batch_size=64, max_epochs=200,
                                            patience=3, threads=1), progress=False)
    assert r.metrics["stopped_early"] and r.metrics["converged"]
    assert r.metrics["epochs_run"] == r.metrics["best_epoch"] + 3


def test_stopping_at_the_epoch_cap_while_improving_is_warned(small_cohort, caplog):
    import logging

    caplog.set_level(logging.WARNING, "adrl.ais")
    r = fit_encoder(small_cohort, AisParams(latent_dim=4, hidden=8, lr=1e-2, batch_size=64, max_epochs=3,
                                            patience=5, threads=1), progress=False)
    assert r.metrics["best_epoch"] > 3 - 5 and not r.metrics["converged"]
    assert any("epoch cap (ais.max_epochs=3)" in m and "raise ais.max_epochs" in m for m in caplog.messages)


def test_encoder_beats_carry_forward_on_learnable_dynamics(fitted):
    m = fitted.metrics
    assert m["naive_val_nll"] > 0
    assert m["val_nll"] < 0.8 * m["naive_val_nll"], m
    assert m["beats_naive"]
    # the per-feature table adds up to the overall numbers
    pf = fitted.per_feature
    assert len(pf) == 33
    assert pf["ais_val_mse"].mean() == pytest.approx(m["val_mse"], rel=1e-6)
    assert pf["naive_val_mse"].mean() == pytest.approx(m["naive_val_mse"], rel=1e-6)


def test_naive_baseline_is_carry_forward(small_cohort, fitted):
    # hand computation of 1/2 ||o_{t+1} - o_t||^2 averaged over validation transitions
    val = small_cohort[small_cohort["split"] == "val"]
    o = val[[c for c in val.columns if c.startswith("o:")]].to_numpy(np.float64)
    same = val["traj"].to_numpy()[1:] == val["traj"].to_numpy()[:-1]
    expect = 0.5 * ((o[1:] - o[:-1]) ** 2).sum(1)[same].mean()
    assert fitted.metrics["naive_val_nll"] == pytest.approx(expect, rel=1e-9)
    assert fitted.metrics["n_transitions"]["val"] == int(same.sum())


def test_same_seed_same_states_other_seed_other_states(small_cohort, fast_params):
    a = fit_encoder(small_cohort, fast_params.model_copy(update={"max_epochs": 3}), progress=False)
    b = fit_encoder(small_cohort, fast_params.model_copy(update={"max_epochs": 3}), progress=False)
    c = fit_encoder(small_cohort, fast_params.model_copy(update={"max_epochs": 3, "seed": 1}), progress=False)
    za = a.encoder.encode_trajectories(small_cohort)
    zb = b.encoder.encode_trajectories(small_cohort)
    zc = c.encoder.encode_trajectories(small_cohort)
    pd.testing.assert_frame_equal(za, zb)
    pd.testing.assert_frame_equal(a.history, b.history)
    assert not np.allclose(za[z_columns(8)].to_numpy(), zc[z_columns(8)].to_numpy())


def test_fit_uses_train_only(small_cohort, fast_params):
    # validation/test rows only pick the epoch: the training curve must not see them
    other = small_cohort.copy()
    rows = other["split"] != "train"
    other.loc[rows, "o:HR"] = other.loc[rows, "o:HR"] + 3.0
    p = fast_params.model_copy(update={"max_epochs": 3})
    a = fit_encoder(small_cohort, p, progress=False)
    b = fit_encoder(other, p, progress=False)
    np.testing.assert_array_equal(a.history["train_nll"], b.history["train_nll"])
    assert not np.array_equal(a.history["val_nll"], b.history["val_nll"])


def test_lstm_option_trains(small_cohort, fast_params):
    r = fit_encoder(small_cohort, fast_params.model_copy(update={"rnn": "lstm", "max_epochs": 4}), progress=False)
    assert r.encoder.rnn == "lstm"
    assert r.history["train_nll"].iloc[-1] < r.history["train_nll"].iloc[0]


def test_fake_cohort_has_the_exact_contract():
    from adrl.schemas import TRAJECTORY_COLUMNS

    df = fake_trajectories(20, seed=1)
    assert list(df.columns) == list(TRAJECTORY_COLUMNS)
    assert set(df["split"]) == {"train", "val", "test"}
    assert (df["action"] == 5 * df["fluid_bin"] + df["vaso_bin"]).all()
