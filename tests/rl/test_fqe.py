"""FQE (adrl/rl/fqe.py) recovers exact policy values on a small tabular MDP, and says when it has not converged."""
import numpy as np
import pytest
import torch

from adrl.errors import InputError
from adrl.rl.data import Transitions
from adrl.rl.fqe import FQEConfig, fit_fqe
from tests.ope.mdp_helpers import ACTS, S, SURV, make_mdp, simulate

POLICIES = [np.array([ACTS[(i + j) % 4] for j in range(S)]) for i in range(4)]  # one deterministic action per state


def exact_v(P, greedy):
    """V of a deterministic policy in the MDP with transitions P (S, 25, S + 2)."""
    pe = np.zeros((S, 25))
    pe[np.arange(S), greedy] = 1
    M = np.einsum("sa,sat->st", pe, P[:, :, :S])
    c = 100 * np.einsum("sa,sa->s", pe, P[:, :, SURV])
    return np.linalg.solve(np.eye(S) - M, c)


def empirical_P(st, a, r, same):
    """The data's own MDP (certainty equivalence): the fixed point FQE converges to on one-hot states."""
    cnt = np.zeros((S, 25, S + 2))
    nxt = np.where(same, np.r_[st[1:], 0], np.where(r > 0, SURV, SURV + 1))
    np.add.at(cnt, (st, a, nxt), 1)
    return cnt / np.maximum(cnt.sum(2, keepdims=True), 1)


@pytest.fixture(scope="module")
def tabular():
    """One-hot states of make_mdp(0) under its behaviour policy, as the states contract's transitions."""
    mdp = make_mdp(0)
    ep, st, a, r = simulate(mdp, 20000, np.random.default_rng(1))
    same = np.r_[ep[1:] == ep[:-1], False]
    z = np.eye(S, dtype=np.float32)[st]
    z2 = np.zeros_like(z)
    z2[:-1][same[:-1]] = z[1:][same[:-1]]
    nxt_state = np.r_[st[1:], 0]
    t = Transitions(z, a.astype(np.int64), r.astype(np.float32), z2, (~same).astype(np.float32))
    starts = np.r_[True, ep[1:] != ep[:-1]]
    return mdp, t, st, nxt_state, starts, empirical_P(st, a, r, same)


CFG = FQEConfig(steps=1500, target_every=50, hidden=32, batch_size=1024, tol=1.0)


def test_fqe_recovers_exact_values_of_several_policies_at_once(tabular):
    torch.set_num_threads(1)
    mdp, t, st, nxt, starts, P_hat = tabular
    na = np.stack([p[nxt] for p in POLICIES])
    sa = np.stack([p[st[starts]] for p in POLICIES])
    res = fit_fqe(t, na, t.z[starts], sa, CFG, progress=False)
    conv = res.convergence()
    for k, p in enumerate(POLICIES):
        V = exact_v(mdp["P"], p)
        truth = V[st[starts]].mean()       # the exact value, from the sampled start states
        assert abs(conv["value"][k] - truth) < 3.0, (k, conv["value"][k], truth)
        # per state, Q of the policy's own action against the data's own MDP (what FQE can know)
        V_hat = exact_v(P_hat, p)
        q = res.q_values(np.eye(S, dtype=np.float32))[k]
        assert np.allclose(q[np.arange(S), p], V_hat, atol=1.5), (k, q[np.arange(S), p], V_hat)
    assert conv["converged"].all(), conv
    # the policies differ by up to ~40 points: one shared network keeps them apart
    assert np.ptp(conv["value"]) > 20


def test_fqe_that_has_not_converged_says_so(tabular):
    torch.set_num_threads(1)
    mdp, t, st, nxt, starts, _ = tabular
    na = np.stack([p[nxt] for p in POLICIES[:2]])
    sa = np.stack([p[st[starts]] for p in POLICIES[:2]])
    res = fit_fqe(t, na, t.z[starts], sa, FQEConfig(steps=100, target_every=20, hidden=32, lr=1e-4),
                  progress=False)
    conv = res.convergence()
    assert not conv["converged"].any()
    assert (np.abs(conv["td_mean"]) > 1).all()    # its values are still far from their own targets
    with pytest.raises(InputError, match="next-state actions"):
        fit_fqe(t, na[:, :-1], t.z[starts], sa, CFG)
    with pytest.raises(InputError, match="integers in"):
        fit_fqe(t, na + 30, t.z[starts], sa, CFG)


def test_fqe_shared_action_pick_and_target_table_equal_the_full_products():
    """The fast paths of the fit (logged actions grouped by action; the target network's values tabulated per
    copy) give what the full (B, 25 K) product gives: the same values, gradients up to float rounding."""
    from adrl.rl.fqe import BatchedQ

    torch.manual_seed(3)
    net = BatchedQ(7, 5, 16, 2)
    z = torch.randn(300, 5)
    a = torch.randint(0, 25, (300,))
    a[:40] = 3  # an action many rows share, and (with 300 rows) some actions no row takes
    q_full, q_fast = net.pick(z, a), net.pick_shared(z, a)
    assert torch.allclose(q_full, q_fast, atol=1e-6)
    g_full = torch.autograd.grad(q_full.pow(2).sum(), list(net.parameters()))
    g_fast = torch.autograd.grad(q_fast.pow(2).sum(), list(net.parameters()))
    for x, y in zip(g_full, g_fast):
        assert torch.allclose(x, y, atol=1e-4, rtol=1e-4)
    per_policy = torch.randint(0, 25, (7, 300))
    assert torch.allclose(net.pick_all(z, per_policy, row_chunk=64), net.pick(z, per_policy), atol=1e-6)
