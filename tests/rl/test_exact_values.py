"""Learners against exact answers (issue "Learners that learn values"): small tabular MDPs fed as feature states
through the states contract, where the batch-constrained optimal Q is computed exactly (adrl/rl/tabular.py).

Each learner trains with the default profile's value-learning settings for a fixed budget: 10,000 steps of batches
of 400 (the pipeline trains with batches of 100; 128 hidden units instead of the pipeline's 256, to keep the suite
fast), on 400,000 behaviour episodes, and is compared with the exact Q* on the (state, allowed action) pairs logged
at least 4,000 times:
- a chain of 16 decisions with a terminal-only reward of 100 and two contexts that look alike (every learner that
  can represent it);
- a 5 x 5 factored MDP with separable effects and an additive expected reward (every learner; AD-BCQ with
  augmentation gets the exact projected model, and its heads must match the exact projected Q_k);
- the same MDP with interacting effects, and a random MDP (random transitions and outcomes): discrete BCQ only,
  because an additive Q (factored BCQ) or a mixer of two heads cannot represent their Q*.

What is asserted (the issue's bar; measured in benchmarks/results/convergence.md, `convergence_tabular_b400.json`):
every visited pair's Q within 5% of the exact value (largest measured 3.3-4.6%), and the greedy action the exact
optimum in >= 95% of the visited states, also in >= 95% of the decidable ones (exact best allowed action >= 2 points
ahead of the runner-up), never losing more than 2 points where it differs. Near-ties remain: BCQ on the random MDP
picks the runner-up in 1 of 21 states, whose two best actions differ by 0.9 points (95% of all states, 100% of the
decidable ones). The data determine the values they are held to: the plug-in solution (the exact solution of the
data's own empirical MDP) is within 3% on the same pairs (measured 1.8-2.8%).

Why this budget: at 100,000 episodes and 1,000 visits the plug-in solution itself was off by up to 6.7% (sampling
noise), so the episodes and the visit threshold were raised; at batches of 100 factored BCQ and AD-BCQ drifted on
the chain (largest error 7.7% and 9.4% after 10,000 steps, 4.9% / 13.5% after 20,000): gradient noise on the slowly
relaxing value level of the 16-step chain; four times the batch removes the drift (3.3% / 4.5%), a lower learning
rate, a cosine schedule, Adam beta1 0.95 or a slower target do not. With method.md 3.1's settings
(`train.profile: tang`, what main did before) the same budget leaves errors of tens of percent and these tests fail
(measured: factored BCQ on the chain 27.9%, Q over-estimated; BCQ on the random MDP 90.4%, Q near zero).
AD-BCQ with augmentation passes with the default profile's mixer initialisation w = (1, 1) (equation (1)); from
method.md's w = 1/K its heads were right but its mixed value stayed ~11% low.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from adrl.rl import tabular as T
from adrl.rl.params import TrainParams

STEPS, BATCH = 10_000, 400   # the budget of every exact-answer run
EPISODES, MIN_VISITS = 400_000, 4_000
HIDDEN = 128
MAX_TOL, GREEDY, PLUGIN_TOL = 0.05, 0.95, 0.03


def train_exact(mdp_name: str, learner: str, profile: str = "default", steps: int = STEPS) -> dict:
    torch.set_num_threads(1)
    p = TrainParams(profile=profile, steps=steps, batch_size=BATCH, hidden=HIDDEN, workers=1)
    return T.train_on(mdp_name, learner, p, episodes=EPISODES, min_pair_visits=MIN_VISITS)[-1]


@pytest.mark.parametrize("mdp_name,learner", T.CASES)
def test_learner_reaches_the_exact_batch_constrained_values(mdp_name, learner):
    r = train_exact(mdp_name, learner)
    # the data support the comparison: enough visited and decidable states, values the data determine
    assert r["states"] >= 10 and r["decidable_states"] >= 10 and r["mask_agree"] >= 0.95, r
    assert r["plugin_max_rel_err"] <= PLUGIN_TOL, r
    assert r["max_rel_err"] <= MAX_TOL, f"{mdp_name}/{learner}: Q off by up to {r['max_rel_err']:.1%}: {r}"
    assert r["greedy_acc"] >= GREEDY, f"{mdp_name}/{learner}: greedy optimal in {r['greedy_acc']:.0%}: {r}"
    assert r["greedy_acc_decidable"] >= GREEDY, \
        f"{mdp_name}/{learner}: greedy optimal in {r['greedy_acc_decidable']:.0%} of the decidable states: {r}"
    assert r["greedy_regret_max"] <= 2.0, f"{mdp_name}/{learner}: greedy action loses {r['greedy_regret_max']:.1f}: {r}"
    if learner == "adbcq-aug":
        assert r["heads_max_rel_err"] <= MAX_TOL, f"projected heads off by {r['heads_max_rel_err']:.1%}: {r}"


def test_exact_values_are_right_on_hand_checked_cases():
    """The solver itself: in the chain Q*(t = 15, a) = 100 p(a | c) and Q*(14, a) = p(a | c) gamma V*(15); in the
    random MDP the behaviour constraint binds (the unconstrained optimum is better somewhere)."""
    mdp = T.chain(16)
    q = mdp.q_star(0.3, "joint", 0.99)
    p_surv = mdp.P[:, :, mdp.S + T.SURVIVE]
    np.testing.assert_allclose(q[15], 100 * p_surv[15])
    allowed = mdp.allowed(0.3, "joint")
    v15 = np.where(allowed[15], q[15], -np.inf).max()
    np.testing.assert_allclose(q[14], mdp.P[14, :, 15] * 0.99 * v15)
    rnd = T.random_mdp(24)
    bc = np.where(rnd.allowed(0.3, "joint"), rnd.q_star(0.3, "joint", 0.99), -np.inf).max(1)
    free = rnd.q_star(0.0, "joint", 0.99).max(1)   # tau 0: every action the behaviour ever takes
    assert (free >= bc - 1e-9).all() and (free > bc + 1).any()


def test_plugin_solution_is_the_empirical_mdp_and_converges_to_the_exact_values():
    """The reference the exact-answer checks report beside each learner: value iteration on the data's own
    transition frequencies (its error is the data's sampling noise, not a learner's)."""
    mdp = T.chain(16)
    small, large = mdp.sample_states(2_000, seed=0), mdp.sample_states(40_000, seed=0)
    P = mdp.plugin_P(large)
    np.testing.assert_allclose(P.sum(-1), 1.0)
    vis = mdp.visits(large)
    allowed = mdp.allowed(0.3, "joint")
    q = mdp.q_star(0.3, "joint", 0.99)
    err = {n: np.abs(mdp.plugin_q(df, 0.3, "joint", 0.99) - q)[allowed & (vis >= 500)].max()
           for n, df in (("small", small), ("large", large))}
    assert err["large"] < err["small"] and err["large"] < 5.0, err
