"""A small tabular MDP with terminal-only 0/100 reward, an exact linear-solve value, and a vectorised
episode simulator (helpers for the OPE tests)."""
from __future__ import annotations

import numpy as np

ACTS = np.array([0, 1, 5, 6])   # (fluid, vaso) in {0,1} x {0,1}
S = 3
SURV, DIE = S, S + 1            # terminal outcomes


def make_mdp(seed: int = 0, cont: float = 0.65):
    """cont: probability of continuing (not terminating) per step."""
    rng = np.random.default_rng(seed)
    pb = np.zeros((S, 25))
    pb[:, ACTS] = 0.1 + 0.6 * rng.dirichlet(np.ones(len(ACTS)), size=S)
    pb /= pb.sum(axis=1, keepdims=True)
    P = np.zeros((S, 25, S + 2))
    for s in range(S):
        for a in ACTS:
            stay = rng.dirichlet(np.ones(S)) * cont
            surv = rng.uniform(0.05, 0.95) * (1 - cont)
            P[s, a, :S] = stay
            P[s, a, SURV] = surv
            P[s, a, DIE] = 1 - cont - surv
    mu0 = np.array([0.5, 0.3, 0.2])
    return {"pb": pb, "P": P, "mu0": mu0}


def soft_policy(mdp, greedy_by_state, eps):
    pe = eps * mdp["pb"].copy()
    pe[np.arange(S), greedy_by_state] += 1 - eps
    return pe


def variance_radius(mdp, pe):
    """Spectral radius of K(s'|s) = sum_a pe^2/pb P(s'|s,a); > 1 means infinite-variance IS weights."""
    pb = np.where(mdp["pb"] > 0, mdp["pb"], 1)
    K = np.einsum("sa,sat->st", pe ** 2 / pb, mdp["P"][:, :, :S])
    return float(max(abs(np.linalg.eigvals(K))))


def exact_value(mdp, pe):
    """mu0 . V with (I - M) V = c, M[s,s'] = sum_a pe(a|s) P(s,a,s'), c = 100 sum_a pe(a|s) P(s,a,SURV)."""
    M = np.einsum("sa,sat->st", pe, mdp["P"][:, :, :S])
    c = 100 * np.einsum("sa,sa->s", pe, mdp["P"][:, :, SURV])
    V = np.linalg.solve(np.eye(S) - M, c)
    return float(mdp["mu0"] @ V)


def simulate(mdp, n: int, rng, policy=None):
    """n episodes under `policy` (S, 25) probabilities (default: the behaviour policy).
    Returns rows sorted by episode then time: episode, state, action, reward (r_{t+1})."""
    policy = mdp["pb"] if policy is None else policy
    s = rng.choice(S, size=n, p=mdp["mu0"])
    alive = np.arange(n)
    eps_, sts, acts, rews, ts = [], [], [], [], []
    t = 0
    while len(alive):
        st = s[alive]
        cdf = np.cumsum(policy[st], axis=1)
        a = (rng.random(len(st))[:, None] > cdf).sum(axis=1)
        a = np.minimum(a, 24)
        cdf2 = np.cumsum(mdp["P"][st, a], axis=1)
        nxt = np.minimum((rng.random(len(st))[:, None] > cdf2).sum(axis=1), S + 1)
        eps_.append(alive); sts.append(st); acts.append(a); rews.append(np.where(nxt == SURV, 100.0, 0.0))
        ts.append(np.full(len(st), t))
        cont = nxt < S
        s[alive[cont]] = nxt[cont]
        alive = alive[cont]
        t += 1
    ep, st, a, r, tt = (np.concatenate(x) for x in (eps_, sts, acts, rews, ts))
    order = np.lexsort((tt, ep))
    return ep[order], st[order], a[order], r[order]
