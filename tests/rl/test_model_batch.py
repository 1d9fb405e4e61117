"""The model batch B_k of method.md 4.5: train.dynamics.termination, next_state, survival_input and E3's controls
(shuffle, noise), on a world whose truth is known."""
import numpy as np
import pytest
import torch

from adrl.config import validate_config
from adrl.errors import ConfigError, InputError
from adrl.rl.adbcq import ADBCQ, ADBCQConfig
from adrl.rl.data import Transitions
from adrl.rl.dynamics import DynamicsConfig, fit_dynamics

CFG = dict(ensemble=3, hidden=32, layers=1, max_epochs=60, patience=10, batch_size=128)
N_Q = 4000   # query rows


def _world(n, seed):
    """z' = 0.8 z + 0.3 + fluid_bin/4 on z_0 + 0.05 xi; 1 row in 8 ends, surviving iff its LAST state has z'_0 > 0.

    Fluid (bin 0..4) is random, so it helps survival only through the next state. Terminal rows keep their last
    state in z2_full (z2 holds zeros there, as Transitions from a states table do)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4)).astype(np.float32)
    a = (rng.integers(0, 5, n) * 5).astype(np.int64)
    z2 = (0.8 * z + 0.3 + 0.05 * rng.normal(size=z.shape)).astype(np.float32)
    z2[:, 0] += (a // 5) / 4
    done = (rng.random(n) < 0.125).astype(np.float32)
    r = np.where(done > 0, 100.0 * (z2[:, 0] > 0), 0.0).astype(np.float32)
    z2_zero = np.where(done[:, None] > 0, 0.0, z2).astype(np.float32)
    return Transitions(z, a, r, z2_zero, done, z2_full=z2)


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    tr, va = _world(2000, 0), _world(600, 1)
    out = {}
    for surv in ("next_state", "action"):
        out[surv] = fit_dynamics(tr, va, DynamicsConfig(**CFG, survival_input=surv), seed=0, progress=False)
    return out


def _query(n=N_Q, seed=2, fluid=0):
    z = torch.from_numpy(_world(n, seed).z)
    return z, torch.full((n,), fluid, dtype=torch.int64), torch.zeros(n, dtype=torch.int64)


def _draw(model, seed=0, **kw):
    return model.sample(*_query(), torch.Generator().manual_seed(seed), **kw)


def test_next_state_survival_head_reads_the_next_state_only(models):
    model, rep, _ = models["next_state"]
    # the head is its own network on z' (d inputs, no action); the main network has no survival output
    assert model.surv.out.weight.shape[1:] == (32, 1) and model.surv.hidden[0].weight.shape[1] == 4
    assert model.out.weight.shape[-1] == 2 * 4 + 1 and models["action"][0].surv is None
    assert rep["ensemble/surv_auroc"] > 0.95            # survival is a function of z'_0: learned from the last states
    assert rep["ensemble/surv_auroc_at_predicted"] > 0.8
    # an action changes survival only through z-hat: a patient near the boundary survives with fluid, not without
    z = torch.tensor([[-0.9, 0.0, 0.0, 0.0]] * 2000)    # z'_0 = -0.42 without fluid, +0.58 with bin 4
    zero = torch.zeros(2000, dtype=torch.int64)
    for fluid, want in ((0, (0.0, 0.3)), (4, (0.7, 1.0))):
        z_hat, d_hat, r_hat = model.sample(z, zero + fluid, zero, torch.Generator().manual_seed(0))
        p_surv = float((r_hat / (100 * d_hat)).mean())
        assert want[0] <= p_surv <= want[1], (fluid, p_surv)
    # the head reads the emitted z-hat: the same z-hat gives the same survival whatever the action (one member)
    g = model.surv_logits(torch.zeros(3, 5, 4))
    assert torch.allclose(g[:, 0], g[:, 4])


def test_termination_sample_gives_sparse_bernoulli_rows(models):
    for surv in ("next_state", "action"):
        model = models[surv][0]
        z_s, d_s, r_s = _draw(model)
        z_b, d_b, r_b = _draw(model, termination="sample")
        torch.testing.assert_close(z_b, z_s)            # the same member and noise draws: only the ending differs
        assert set(d_b.unique().tolist()) <= {0.0, 1.0} and set(r_b.unique().tolist()) <= {0.0, 100.0}
        assert (r_b[d_b == 0] == 0).all()               # a row that does not end carries no reward
        # the Bernoulli rows match the soft expectation (P(end) ~ 1/8) within sampling error
        assert abs(float(d_b.mean() - d_s.mean())) < 4 * (0.125 / N_Q) ** 0.5
        assert abs(float(r_b.mean() - r_s.mean())) < 4 * 100 * (0.1 / N_Q) ** 0.5
        assert float((r_s > 0).float().mean()) > 0.9 and float((r_b > 0).float().mean()) < 0.15
        z2, d2, r2 = _draw(model, termination="sample")  # same seed, same rows
        assert torch.equal(d2, d_b) and torch.equal(r2, r_b)


def test_next_state_mean_is_the_ensemble_mean(models):
    model = models["next_state"][0]
    z, af, av = _query()
    z_m1, d_m1, _ = _draw(model, seed=0, next_state="mean")
    z_m2, d_m2, _ = _draw(model, seed=1, next_state="mean")
    torch.testing.assert_close(z_m1, z + model.mean_delta(z, af, av))
    assert torch.equal(z_m1, z_m2) and torch.equal(d_m1, d_m2)    # no draw moves it
    z_s1, _, _ = _draw(model, seed=0)
    z_s2, _, _ = _draw(model, seed=1)
    assert not torch.equal(z_s1, z_s2)
    # the draws scatter around the truth 0.8 z + 0.3 with the world's noise (0.05); the mean does not
    truth = 0.8 * z + 0.3
    assert 0.03 < float((z_s1 - truth).std()) < 0.1 and float((z_m1 - truth).std()) < 0.03


def test_shuffle_control_deranges_the_synthetic_next_states(models):
    model = models["next_state"][0]
    z_n, _, r_n = _draw(model)
    z_h, _, r_h = _draw(model, control="shuffle")
    # every row takes another row's z-hat: the same set of rows, none in its own place
    match = (z_h[:, None, :] == z_n[None, :, :]).all(-1)     # (N, N): z_h[i] == z_n[j]
    assert (match.sum(1) == 1).all() and not match.diagonal().any()
    assert float((z_h - 0.8 * _query()[0] - 0.3).std()) > 0.5      # the link to (z, a) is gone
    assert not torch.allclose(r_h, r_n)   # survival follows the emitted (shuffled) next state


def test_noise_control_in_validation_residual_units(models):
    model = models["next_state"][0]
    # the world's residual is 0.05 per dimension: the stored validation residual std is near it
    np.testing.assert_allclose(model.resid_std.numpy(), 0.05, atol=0.02)
    z_n, _, _ = _draw(model)
    for scale in (0.5, 2.0):
        z_x, _, _ = _draw(model, control="noise", noise_scale=scale)
        std = (z_x - z_n).std(0)
        torch.testing.assert_close(std, scale * model.resid_std, rtol=0.1, atol=0.0)
    z0, _, _ = _draw(model, control="noise", noise_scale=0.0)
    assert torch.equal(z0, z_n)


def test_logged_termination_keeps_the_real_done_and_reward(models):
    model = models["next_state"][0]
    t = _world(64, 5)
    a = torch.from_numpy(t.a) + torch.from_numpy(np.arange(64) % 2)   # half the rows: vasopressor bin 1
    batch = (torch.from_numpy(t.z), a, torch.from_numpy(t.r), torch.from_numpy(t.z2), torch.from_numpy(t.done))
    out = {}
    for term in ("soft", "logged", "sample"):
        learner = ADBCQ(4, ADBCQConfig(hidden=16, termination=term), seed=0, dynamics=model)
        out[term] = learner.extra(*batch)
    _, src, d_k, r_k = out["logged"]
    B = 64
    assert (src >= B).any()                              # there are synthetic rows
    assert torch.equal(d_k, batch[4].repeat(2, 1)) and torch.equal(r_k, batch[2].repeat(2, 1))
    torch.testing.assert_close(out["logged"][0], out["soft"][0])   # the same counterfactual next states
    syn = src >= B
    assert not torch.equal(out["soft"][2][syn], d_k[syn])          # soft: the model's P(end) instead
    assert set(out["sample"][2][syn].unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("key, value", [("termination", "hard"), ("next_state", "median"), ("control", "permute"),
                                        ("survival_input", "state"), ("noise_scale", -1.0)])
def test_bad_values_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"train\.dynamics\.{key}"):
        validate_config({"train": {"dynamics": {key: value}}})
    with pytest.raises(ConfigError, match=rf"train\.dynamics\.{key}"):
        if key == "survival_input":
            DynamicsConfig(survival_input=value)
        else:
            ADBCQConfig(**{key: value})


def test_next_state_head_without_terminal_next_states_is_an_input_error():
    t = _world(300, 0)
    bare = Transitions(t.z, t.a, t.r, t.z2, t.done)    # no z2_full
    with pytest.raises(InputError, match="survival_input: next_state"):
        fit_dynamics(bare, bare, DynamicsConfig(**CFG, survival_input="next_state"), seed=0, progress=False)
