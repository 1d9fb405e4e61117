"""Weighted doubly robust (WDR) and the FQE plug-in on a tabular MDP with exact values (method.md 5.3)."""
import numpy as np
import pytest

from adrl.errors import InputError
from adrl.ope import estimators as est
from tests.ope.mdp_helpers import S, SURV, make_mdp, simulate, soft_policy

GREEDY = np.array([5, 0, 5])


def exact_qv(mdp, pe):
    """Q^pi_e (S, 25) and V^pi_e (S,) of the tabular MDP (terminal reward 100 on survival)."""
    P = mdp["P"]
    M = np.einsum("sa,sat->st", pe, P[:, :, :S])
    c = 100 * np.einsum("sa,sa->s", pe, P[:, :, SURV])
    V = np.linalg.solve(np.eye(S) - M, c)
    Q = 100 * P[:, :, SURV] + P[:, :, :S] @ V
    return Q, V


def wdr_once(mdp, pe, Q, V, n, rng, q_model=None):
    ep, st, a, r = simulate(mdp, n, rng)
    data = est.make_logged(ep, a, r, mdp["pb"][st], mdp["pb"][st])
    log_rho = est.proba_log_ratios(data, pe[st])
    Qm = Q if q_model is None else q_model
    Vm = (pe * Qm).sum(axis=1)
    return (est.wdr(data, log_rho, 1e12, Qm[st, a][None], Vm[st][None])[0],
            est.pdwis(data, log_rho, 1e12)[0])


def test_wdr_is_unbiased_with_the_true_model_and_behaviour():
    mdp = make_mdp(0)
    pe = soft_policy(mdp, GREEDY, 0.3)
    Q, V = exact_qv(mdp, pe)
    truth = float(mdp["mu0"] @ V)
    rng = np.random.default_rng(7)
    reps = np.array([wdr_once(mdp, pe, Q, V, 20, rng) for _ in range(600)])
    dr, pd_ = reps[:, 0], reps[:, 1]
    se = dr.std(ddof=1) / np.sqrt(len(dr))
    assert abs(dr.mean() - truth) < 3 * se + 1e-9, (dr.mean(), truth, se)
    # the point of the model: less variance than the same weights without it (PDWIS)
    assert dr.std() < pd_.std()


def test_wdr_with_zero_model_is_pdwis_and_with_exact_values_on_one_path_is_exact():
    mdp = make_mdp(0)
    ep, st, a, r = simulate(mdp, 50, np.random.default_rng(3))
    data = est.make_logged(ep, a, r, mdp["pb"][st], mdp["pb"][st])
    pe = soft_policy(mdp, GREEDY, 0.3)
    log_rho = est.proba_log_ratios(data, pe[st])
    z = np.zeros((1, data.n_decisions))
    assert np.allclose(est.wdr(data, log_rho, 1e3, z, z), est.pdwis(data, log_rho, 1e3))


def test_fqe_start_values_and_bootstrap_of_model_based_estimates():
    mdp = make_mdp(0)
    pe = soft_policy(mdp, GREEDY, 0.3)
    Q, V = exact_qv(mdp, pe)
    ep, st, a, r = simulate(mdp, 400, np.random.default_rng(5))
    data = est.make_logged(ep, a, r, mdp["pb"][st], mdp["pb"][st])
    v0 = est.fqe_start_values(data, V[st][None])
    assert v0.shape == (1, data.n_episodes) and np.allclose(v0[0], V[st[data.starts]])
    log_rho = est.proba_log_ratios(data, pe[st])
    w = est.episode_weights(data, log_rho, 1e3)
    parts = est.wdr_terms(data, log_rho, 1e3, Q[st, a][None], V[st][None])
    counts = est.resample_counts(data.n_episodes, 200, 0)
    bs = est.bootstrap(data, w, counts, est.step_weights(data, log_rho, 1e3), parts, v0)
    point = est.wdr(data, log_rho, 1e3, Q[st, a][None], V[st][None])[0]
    lo, hi = np.percentile(bs.wdr[:, 0], [2.5, 97.5])
    assert lo < point < hi
    assert np.allclose(bs.fqe[:, 0], counts @ v0[0] / counts.sum(1))
    with pytest.raises(InputError, match="non-finite model values"):
        est.wdr(data, log_rho, 1e3, np.full((1, data.n_decisions), np.nan), V[st][None])
    with pytest.raises(InputError, match="candidates"):
        est.wdr(data, log_rho, 1e3, Q[st, a][None, :5], V[st][None])
