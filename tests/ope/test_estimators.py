import numpy as np
import pytest

from adrl.errors import InputError
from adrl.ope import estimators as est
from tests.ope.mdp_helpers import ACTS, exact_value, make_mdp, simulate, soft_policy, variance_radius

GREEDY = np.array([5, 0, 5])  # greedy action per state: the best actions of make_mdp(2, cont=0.4)


def finite_variance_case(eps):
    # method 5.7: with variance radius > 1, E[w^2] grows without bound and WIS converges very slowly;
    # the convergence and coverage tests use a case where the weights have finite variance.
    mdp = make_mdp(2, cont=0.4)
    pe = soft_policy(mdp, GREEDY, eps)
    assert variance_radius(mdp, pe) < 1
    return mdp, exact_value(mdp, pe)


def logged(mdp, n, seed):
    ep, st, a, r = simulate(mdp, n, np.random.default_rng(seed))
    P = mdp["pb"][st]
    return est.make_logged(ep, a, r, P, P), st


def test_behaviour_policy_gives_ess_n_and_observed_mean():
    mdp = make_mdp(0)
    data, st = logged(mdp, 500, 1)
    for log_rho in (est.proba_log_ratios(data, mdp["pb"][st]),                    # pi_e = pi_b exactly
                    est.greedy_log_ratios(data, np.full((1, data.n_decisions), 0), 1.0)):  # eps = 1 -> pi_b_train
        w = est.episode_weights(data, log_rho, 1000.0)
        s = est.weight_stats(w, data.returns)
        assert s["ess"][0] == pytest.approx(data.n_episodes, rel=1e-12)
        assert s["wis"][0] == pytest.approx(data.returns.mean(), rel=1e-12)
        assert s["is"][0] == pytest.approx(data.returns.mean(), rel=1e-12)
        assert est.pdwis(data, log_rho, 1000.0)[0] == pytest.approx(data.returns.mean(), rel=1e-12)
    c = est.clinician_value(data, est.resample_counts(data.n_episodes, 200, 0))
    assert c["ess"] == data.n_episodes and c["wis"] == pytest.approx(data.returns.mean())
    assert c["wis_ci"][0] < c["wis"] < c["wis_ci"][1]


def test_wis_converges_to_linear_solve_value():
    eps = 0.3
    mdp, truth = finite_variance_case(eps)
    behaviour_value = exact_value(mdp, mdp["pb"])
    assert abs(truth - behaviour_value) > 2  # the test can tell the two apart

    def err(n, seed):
        data, st = logged(mdp, n, seed)
        w = est.episode_weights(data, est.greedy_log_ratios(data, GREEDY[st][None], eps), 1e12)
        return est.weight_stats(w, data.returns)["wis"][0] - truth

    small = np.mean([abs(err(200, s)) for s in range(10)])
    large = err(60_000, 99)
    assert abs(large) < 0.8, (large, truth)
    assert abs(large) < small / 3


def test_vectorised_weights_match_a_plain_loop():
    mdp = make_mdp(1)
    data, st = logged(mdp, 60, 5)
    rng = np.random.default_rng(0)
    greedy = rng.choice(ACTS, size=(7, data.n_decisions))
    greedy[0] = data.actions  # always agrees
    eps, clip = 0.05, 30.0
    stats = est.evaluate_greedy(data, greedy, eps, clip, chunk=3)
    pd_vec = est.pdwis(data, est.greedy_log_ratios(data, greedy, eps), clip)
    for c in range(len(greedy)):
        W, G = [], []
        wt_steps = np.zeros((data.n_episodes, data.horizon))
        for e, (s0, L) in enumerate(zip(data.starts, data.lengths)):
            w = 1.0
            for t in range(s0, s0 + L):
                pe = (1 - eps) * (greedy[c, t] == data.actions[t]) + eps * data.pb_train[t]
                w *= pe / data.pb[t]
                wt_steps[e, t - s0] = min(w, clip)
            wt_steps[e, L:] = min(w, clip)
            W.append(min(w, clip)); G.append(data.rewards[s0:s0 + L].sum())
        W, G = np.array(W), np.array(G)
        assert stats["wis"][c] == pytest.approx((W * G).sum() / W.sum())
        assert stats["ess"][c] == pytest.approx(W.sum() ** 2 / (W ** 2).sum())
        assert stats["max_weight_share"][c] == pytest.approx(W.max() / W.sum())
        assert stats["n_positive"][c] == (W > 0).sum()
        R = np.zeros_like(wt_steps)
        R[data.episode_index, data.position] = data.rewards
        expected_pd = sum((wt_steps[:, t] * R[:, t]).sum() / wt_steps[:, t].sum() for t in range(data.horizon))
        assert pd_vec[c] == pytest.approx(expected_pd)
    assert stats["agreement"][0] == 1.0


def test_clipping_caps_weights():
    mdp = make_mdp(0)
    data, st = logged(mdp, 300, 2)
    log_rho = est.greedy_log_ratios(data, data.actions[None], 0.0)  # agreeing everywhere: w = prod 1/pb
    w = est.episode_weights(data, log_rho, 5.0)
    assert w.max() == pytest.approx(5.0) and (w <= 5.0 + 1e-12).all()


def test_pdwis_equals_wis_with_equal_lengths_and_terminal_reward():
    rng = np.random.default_rng(0)
    E, T = 50, 4
    ep = np.repeat(np.arange(E), T)
    a = rng.integers(0, 25, E * T)
    r = np.zeros(E * T); r[T - 1::T] = 100.0 * (rng.random(E) < 0.8)
    P = rng.dirichlet(np.ones(25), E * T)
    data = est.make_logged(ep, a, r, P, P)
    g = rng.integers(0, 25, (3, E * T)); g[:, ::2] = a[::2]
    lr = est.greedy_log_ratios(data, g, 0.3)
    s = est.weight_stats(est.episode_weights(data, lr, 1e9), data.returns)
    np.testing.assert_allclose(est.pdwis(data, lr, 1e9), s["wis"])


def test_bootstrap_ci_covers_truth_at_nominal_rate():
    eps = 0.3
    mdp, truth = finite_variance_case(eps)
    rng = np.random.default_rng(11)
    hits, reps = 0, 120
    for i in range(reps):
        ep, st, a, r = simulate(mdp, 400, rng)
        data = est.make_logged(ep, a, r, mdp["pb"][st], mdp["pb"][st])
        w = est.episode_weights(data, est.greedy_log_ratios(data, GREEDY[st][None], eps), 1e12)
        b = est.bootstrap(data, w, est.resample_counts(data.n_episodes, 300, i))
        lo, hi = est.summarize_replicates(b.wis[:, 0])["ci"]
        hits += lo <= truth <= hi
    assert 0.86 <= hits / reps <= 0.99, hits / reps


def test_resample_counts_are_paired_and_deterministic():
    c1 = est.resample_counts(40, 25, 7)
    c2 = est.resample_counts(40, 25, 7)
    assert c1.shape == (25, 40) and (c1.sum(axis=1) == 40).all()
    np.testing.assert_array_equal(c1, c2)
    assert not np.array_equal(c1, est.resample_counts(40, 25, 8))


def test_zero_weight_policy_is_reported_not_silent_nan():
    mdp = make_mdp(0)
    data, st = logged(mdp, 100, 0)
    never = np.full((1, data.n_decisions), 24)  # action 24 is never logged
    s = est.evaluate_greedy(data, never, 0.0, 1000.0)  # eps = 0: one disagreement zeroes the weight
    assert not s["defined"][0] and np.isnan(s["wis"][0]) and s["ess"][0] == 0 and s["n_positive"][0] == 0
    msg = est.diagnose({k: v[0] for k, v in s.items()}, data.n_episodes, 10, 0.1)
    assert "WIS undefined" in msg[0]


def test_diagnose_flags_small_ess_and_degenerate_weights():
    w = np.array([[100.0, 1, 1, 1, 0, 0]])
    s = est.weight_stats(w, np.array([100.0, 0, 100, 100, 0, 0]))
    msgs = est.diagnose({k: v[0] for k, v in s.items()}, 6, min_ess=3, max_share=0.5)
    assert any("small ESS" in m for m in msgs) and any("degenerate" in m for m in msgs)


def _good(n=6):
    ep = np.array([1, 1, 2, 2, 2, 3])[:n]
    a = np.array([0, 1, 2, 3, 4, 5])[:n]
    r = np.zeros(n)
    P = np.full((n, 25), 1 / 25)
    return ep, a, r, P


@pytest.mark.parametrize("mutate, needle", [
    (lambda ep, a, r, P: (ep, a, r, P * 1.1), "do not sum to one"),
    (lambda ep, a, r, P: (ep, a, r, np.where(np.arange(25) == 3, np.nan, P)), "NaN or inf"),
    (lambda ep, a, r, P: (ep, a, r, P[:-1]), "expected (6, 25)"),
    (lambda ep, a, r, P: (ep, a, r[:-1], P), "disagree in length"),
    (lambda ep, a, r, P: (ep, np.where(a == 5, 25, a), r, P), "outside [0, 25)"),
    (lambda ep, a, r, P: (np.array([1, 2, 1, 2, 2, 3]), a, r, P), "not contiguous"),
    (lambda ep, a, r, P: (ep, a, np.where(a == 0, np.inf, r), P), "reward"),
])
def test_bad_inputs_raise_named_errors(mutate, needle):
    with pytest.raises(InputError, match=needle.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        est.make_logged(*mutate(*_good()))


def test_zero_behaviour_probability_error_or_counted_floor():
    ep, a, r, P = _good()
    P = P.copy()
    P[2] = 0; P[2, 0] = 1.0  # logged action 2 gets probability 0
    with pytest.raises(InputError, match="probability 0 to 1 logged action"):
        est.make_logged(ep, a, r, P)
    d = est.make_logged(ep, a, r, P, zero_behaviour="floor", floor=0.01)
    assert d.corrections["zero_behaviour_prob"] == 1 and d.pb[2] == 0.01


def test_policies_that_disagree_with_states_raise():
    ep, a, r, P = _good()
    d = est.make_logged(ep, a, r, P, P)
    with pytest.raises(InputError, match="expected \\(candidates, 6\\)"):
        est.check_candidates(d, np.zeros((2, 5), dtype=int))
    with pytest.raises(InputError, match="episode ids do not match"):
        est.check_candidates(d, np.zeros((2, 6), dtype=int), episode_ids=np.array([1, 1, 2, 2, 3, 3]))
    with pytest.raises(InputError, match="integers"):
        est.check_candidates(d, np.zeros((2, 6)))
    with pytest.raises(InputError, match="outside"):
        est.check_candidates(d, np.full((2, 6), 30))


def test_paired_differences_and_policy_table():
    from adrl.ope.workflow import evaluate_policies

    eps = 0.3
    mdp, truth = finite_variance_case(eps)
    data, st = logged(mdp, 800, 4)
    g = GREEDY[st]
    res = evaluate_policies(data, {"a": g, "b": g.copy(), "c": data.actions}, epsilon=eps, clip=1000.0, n_boot=200,
                            seed=0, min_ess=10, max_share=0.5)
    d = {(x["a"], x["b"]): x for x in res["differences"]}
    assert d[("a", "b")]["ci"] == [0.0, 0.0] and d[("a", "b")]["wis_diff"] == 0.0   # same episodes in every resample
    assert d[("a", "clinician")]["ci"][0] < d[("a", "clinician")]["wis_diff"] < d[("a", "clinician")]["ci"][1]
    pa = res["policies"]["a"]
    assert pa["wis_ci"][0] < pa["wis"] < pa["wis_ci"][1] and pa["ess_ci"][0] < pa["ess"] < pa["ess_ci"][1]
    assert pa["agreement"] == pytest.approx(np.mean(g == data.actions))
    assert res["policies"]["c"]["agreement"] == 1.0
    assert res["policies"]["clinician"]["ess"] == data.n_episodes
