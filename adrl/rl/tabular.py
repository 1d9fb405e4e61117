"""Tabular MDPs with exact batch-constrained optimal values, written as states tables (the encode -> train contract).

The learners' check against exact answers (method.md 3.1): states are small feature vectors (one-hot blocks), so a
learner that learns values must reproduce Q*_BC, the optimal action-value when every maximum ranges over the
actions that the *true* behaviour policy allows at the run's threshold tau (discrete BCQ: the joint filter
pi(a|s) / max_b pi(b|s) > tau; factored BCQ and AD-BCQ: the product A_F x A_V of the per-sub-action filters on the
marginals). Every episode ends in an outcome: a transition to DIE (reward 0) or to SURVIVE (reward r_max), the
sepsis reward shape. For AD-BCQ the projected Q-functions Q_k of method.md 1.3 (the other sub-action at no-op
forever, maxima over A_k) are exact too, and :class:`ExactProjectedModel` is the true projected model, with the
interface of :class:`adrl.rl.dynamics.DynamicsEnsemble` (``sample``), for augmentation without model error.

Builders: :func:`chain` (a long horizon: 16 decisions, terminal reward only, two contexts that look alike but need
different actions), :func:`factored` (5 x 5 actions on two components; separable effects and reward, or an
interaction), :func:`random_mdp` (random transitions and outcomes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..actions import N_ACTIONS, N_FLUID, N_VASO

DIE, SURVIVE = 0, 1  # offsets after the S live states in the last axis of P


@dataclass
class TabularMDP:
    name: str
    P: np.ndarray          # (S, 25, S + 2): next live state, then DIE, SURVIVE
    start: np.ndarray      # (S,) initial distribution
    behaviour: np.ndarray  # (S, 25) the true behaviour policy
    features: np.ndarray   # (S, d) the state each learner sees
    r_max: float = 100.0

    def __post_init__(self):
        S = self.S
        assert self.P.shape == (S, N_ACTIONS, S + 2) and np.allclose(self.P.sum(-1), 1.0)
        assert self.behaviour.shape == (S, N_ACTIONS) and np.allclose(self.behaviour.sum(-1), 1.0)
        assert np.isclose(self.start.sum(), 1.0) and self.features.shape[0] == S

    @property
    def S(self) -> int:
        return self.P.shape[0]

    # ---- behaviour filters -------------------------------------------------------------------------
    def marginals(self) -> np.ndarray:
        """(S, 2, 5) behaviour marginals pi_F(a_F | s), pi_V(a_V | s)."""
        b = self.behaviour.reshape(-1, N_FLUID, N_VASO)
        return np.stack([b.sum(2), b.sum(1)], 1)

    def sub_allowed(self, tau: float) -> np.ndarray:
        m = self.marginals()
        return m / m.max(-1, keepdims=True) > tau

    def allowed(self, tau: float, kind: str) -> np.ndarray:
        """(S, 25) allowed joint actions: kind "joint" (discrete BCQ) or "factored" (A_F x A_V)."""
        if kind == "joint":
            b = self.behaviour
            return b / b.max(-1, keepdims=True) > tau
        m = self.sub_allowed(tau)
        return (m[:, 0, :, None] & m[:, 1, None, :]).reshape(-1, N_ACTIONS)

    # ---- exact values ------------------------------------------------------------------------------
    def _solve(self, P: np.ndarray, allowed: np.ndarray, gamma: float, tol: float = 1e-12) -> np.ndarray:
        """Q(s, a) = P(SURVIVE) r_max + gamma sum_s' P(s') max_{a' in allowed(s')} Q(s', a')."""
        S = self.S
        Q = np.zeros(P.shape[:2])
        for _ in range(100_000):
            V = np.where(allowed, Q, -np.inf).max(1)
            Qn = P[:, :, S + SURVIVE] * self.r_max + gamma * P[:, :, :S] @ V
            if np.abs(Qn - Q).max() < tol:
                return Qn
            Q = Qn
        raise RuntimeError(f"{self.name}: value iteration did not converge")

    def q_star(self, tau: float, kind: str, gamma: float) -> np.ndarray:
        """(S, 25) batch-constrained optimal Q on the 0..r_max scale."""
        return self._solve(self.P, self.allowed(tau, kind), gamma)

    def projected_q(self, tau: float, gamma: float) -> np.ndarray:
        """(S, 2, 5) Q_k of the projected MDPs M_k (other sub-action at no-op at every step, maxima over A_k)."""
        sub = self.sub_allowed(tau)
        a = np.arange(N_FLUID)
        P_f, P_v = self.P[:, a * N_VASO], self.P[:, a]   # (a_F, no-op) and (no-op, a_V)
        return np.stack([self._solve(P_f, sub[:, 0], gamma), self._solve(P_v, sub[:, 1], gamma)], 1)

    # ---- data ---------------------------------------------------------------------------------------
    def sample_states(self, n_episodes: int, seed: int, val_frac: float = 0.2, max_len: int = 500) -> pd.DataFrame:
        """A states table of ``n_episodes`` behaviour episodes: rows 0..T-1 are decision states, row T the outcome
        row (z = 0, last = True); the reward sits on the row of the transition that ended the episode."""
        rng = np.random.default_rng(seed)
        S, d = self.S, self.features.shape[1]
        s = rng.choice(S, n_episodes, p=self.start)
        alive = np.ones(n_episodes, bool)
        states, acts, rews, dones, ids, steps = [], [], [], [], [], []
        t = 0
        while alive.any():
            if t >= max_len:
                raise RuntimeError(f"{self.name}: episodes longer than {max_len} steps")
            idx = np.flatnonzero(alive)
            cur = s[idx]
            a = _draw(rng, self.behaviour[cur])
            nxt = _draw(rng, self.P[cur, a])
            end = nxt >= S
            states.append(cur), acts.append(a), ids.append(idx), steps.append(np.full(len(idx), t))
            rews.append(np.where(nxt == S + SURVIVE, self.r_max, 0.0)), dones.append(end)
            s[idx[~end]] = nxt[~end]
            alive[idx[end]] = False
            t += 1
        ep = np.concatenate(ids)
        step = np.concatenate(steps)
        st = np.concatenate(states)
        z = self.features[st].astype(np.float32)
        a = np.concatenate(acts)
        r = np.concatenate(rews).astype(np.float32)
        done = np.concatenate(dones)
        # outcome rows: one per episode, after its last decision
        ends = np.flatnonzero(done)
        n_rows = len(ep) + len(ends)
        out = {
            "traj": np.concatenate([ep, ep[ends]]).astype(np.int32),
            "step": np.concatenate([step, step[ends] + 1]).astype(np.int16),
            "decision": np.concatenate([a, np.full(len(ends), -1)]).astype(np.int8),
            "reward": np.concatenate([r, np.zeros(len(ends), np.float32)]),
            "done": np.concatenate([done, np.zeros(len(ends), bool)]),
            "last": np.concatenate([np.zeros(len(ep), bool), np.ones(len(ends), bool)]),
        }
        zz = np.concatenate([z, np.zeros((len(ends), d), np.float32)])
        df = pd.DataFrame(out)
        df["decision_fluid"] = np.where(df["decision"] >= 0, df["decision"] // N_VASO, -1).astype(np.int8)
        df["decision_vaso"] = np.where(df["decision"] >= 0, df["decision"] % N_VASO, -1).astype(np.int8)
        df = pd.concat([df, pd.DataFrame(zz, columns=[f"z_{i}" for i in range(d)])], axis=1)
        df["subject_id"] = df["traj"].astype(np.int64) + 1
        df["icustay_id"] = df["traj"].astype(np.int64) + 1
        n_val = int(round(n_episodes * val_frac))
        df["split"] = np.where(df["traj"] >= n_episodes - n_val, "val", "train")
        df = df.sort_values(["traj", "step"], kind="stable").reset_index(drop=True)
        assert len(df) == n_rows
        return df

    def visits(self, df: pd.DataFrame, split: str = "train") -> np.ndarray:
        """(S, 25) number of logged decisions of each (state, action) pair in ``split`` (states identified by their
        features)."""
        part = df[(df["split"] == split) & ~df["last"]]
        z = part[[f"z_{i}" for i in range(self.features.shape[1])]].to_numpy(np.float32)
        flat = self.state_of(z) * N_ACTIONS + part["decision"].to_numpy(np.int64)
        return np.bincount(flat, minlength=self.S * N_ACTIONS).reshape(self.S, N_ACTIONS)

    def plugin_P(self, df: pd.DataFrame, split: str = "train") -> np.ndarray:
        """(S, 25, S + 2) the empirical transition model of ``split`` (the true model where a pair is never logged):
        the plug-in MDP whose solution is the best any learner can read from these data."""
        part = df[df["split"] == split]
        zc = [f"z_{i}" for i in range(self.features.shape[1])]
        dec = ~part["last"].to_numpy()
        s = self.state_of(part[zc].to_numpy(np.float32))
        a = part["decision"].to_numpy(np.int64)
        done = part["done"].to_numpy(bool)
        nxt = np.roll(s, -1)   # rows are sorted by (traj, step): a decision's next row is its next state
        nxt = np.where(done, np.where(part["reward"].to_numpy() > 0, self.S + SURVIVE, self.S + DIE), nxt)
        S2 = self.S + 2
        counts = np.bincount((s[dec] * N_ACTIONS + a[dec]) * S2 + nxt[dec],
                             minlength=self.S * N_ACTIONS * S2).reshape(self.S, N_ACTIONS, S2).astype(np.float64)
        n = counts.sum(-1, keepdims=True)
        return np.where(n > 0, counts / np.maximum(n, 1), self.P)

    def plugin_q(self, df: pd.DataFrame, tau: float, kind: str, gamma: float) -> np.ndarray:
        """(S, 25) the batch-constrained optimal Q of the plug-in MDP (same allowed sets as :meth:`q_star`)."""
        return self._solve(self.plugin_P(df), self.allowed(tau, kind), gamma)

    def state_of(self, z: np.ndarray) -> np.ndarray:
        """Rows of features -> state index (exact match; -1 where none). Features are 0/1 vectors, so each row is
        identified by its binary code."""
        f = self.features.astype(np.float64)
        w = 2.0 ** np.arange(f.shape[1])
        codes = f @ w
        order = np.argsort(codes)
        zc = np.asarray(z, np.float64) @ w
        pos = np.clip(np.searchsorted(codes[order], zc), 0, len(codes) - 1)
        idx = order[pos]
        ok = (codes[idx] == zc) & np.isin(np.asarray(z), (0, 1)).all(1)
        return np.where(ok, idx, -1)

    def exact_model(self) -> "ExactProjectedModel":
        return ExactProjectedModel(self)


def _draw(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (rows sum to 1)."""
    c = probs.cumsum(1)
    u = rng.random((len(probs), 1)) * c[:, -1:]
    return np.minimum((u >= c).sum(1), probs.shape[1] - 1)


class ExactProjectedModel:
    """The true model queried like :meth:`DynamicsEnsemble.sample`: at (z, a_F, a_V) it returns a next live state
    drawn from P(. | s, a, not ended), the termination probability d_hat and the reward r_max * P(SURVIVE), i.e.
    method.md 4.5's soft-termination row with no model error."""

    def __init__(self, mdp: TabularMDP):
        self.mdp = mdp
        self.r_max = mdp.r_max
        self.E = 1

    def sample(self, z: torch.Tensor, a_f: torch.Tensor, a_v: torch.Tensor, gen: torch.Generator | None = None,
               next_state: str = "sample", termination: str = "soft", control: str = "none", noise_scale: float = 0.0):
        """A draw of the true projected model (DynamicsEnsemble.sample's interface): soft termination (logged: the
        learner keeps the real row's), next states drawn, no controls."""
        if next_state != "sample" or termination not in ("soft", "logged") or control != "none":
            raise ValueError("ExactProjectedModel: only next_state sample, termination soft or logged, control none")
        m = self.mdp
        s = m.state_of(z.numpy())
        if (s < 0).any():
            raise ValueError("ExactProjectedModel: a state outside the MDP")
        p = torch.from_numpy(m.P[s, (a_f * N_VASO + a_v).numpy()])  # (n, S + 2)
        S = m.S
        d_hat = (p[:, S + DIE] + p[:, S + SURVIVE]).float()
        live = p[:, :S].clone()
        live[live.sum(1) == 0, 0] = 1.0   # ends surely: any next state (never bootstrapped at d_hat = 1)
        nxt = torch.multinomial(live, 1, generator=gen).squeeze(1)
        z_hat = torch.from_numpy(m.features.astype(np.float32))[nxt]
        r_hat = (self.r_max * p[:, S + SURVIVE]).float()
        return z_hat, d_hat, r_hat


# ---- builders ----------------------------------------------------------------------------------------
def _onehot(i, n):
    out = np.zeros(n, np.float32)
    out[i] = 1
    return out


def _weights_to_probs(w: np.ndarray) -> np.ndarray:
    return w / w.sum(-1, keepdims=True)


def chain(length: int = 16) -> TabularMDP:
    """A chain of ``length`` decisions in one of two contexts c (drawn at the start, kept): each decision survives
    the step with probability 1 - risk_F(a_F | c) - risk_V(a_V | c) (additive in the two sub-actions), else the
    patient dies; surviving the last step gives r_max. z = [onehot(t), onehot(c)]: states of the same t look alike
    but need different actions. The behaviour is a product of per-sub-action policies whose ratios are 1, 0.7
    (allowed at tau < 0.49) or 0.1; one allowed level of each sub-action carries no risk, the others 5-12% a step,
    so the batch-constrained optimum is unique with a gap of at least 5% of its value."""
    S = 2 * length
    P = np.zeros((S, N_ACTIONS, S + 2))
    beh = np.zeros((S, N_ACTIONS))
    # per context: risk of each fluid and vaso level, behaviour weights per level (0.1: not allowed at tau 0.3)
    risk_f = np.array([[0.06, 0.12, 0.02, 0.00, 0.20], [0.12, 0.06, 0.00, 0.02, 0.20]])
    risk_v = np.array([[0.05, 0.02, 0.10, 0.00, 0.20], [0.00, 0.05, 0.10, 0.15, 0.02]])
    w_f = np.array([[1.0, 0.7, 0.1, 0.7, 0.1], [0.7, 1.0, 0.7, 0.1, 0.1]])
    w_v = np.array([[1.0, 0.1, 0.7, 0.7, 0.1], [1.0, 0.7, 0.7, 0.1, 0.1]])
    feats = np.zeros((S, length + 2), np.float32)
    for c in range(2):
        ok = (1.0 - risk_f[c][:, None] - risk_v[c][None, :]).reshape(-1)   # survival of the step per joint action
        b = (w_f[c][:, None] * w_v[c][None, :]).reshape(-1)
        for t in range(length):
            s = c * length + t
            feats[s] = np.concatenate([_onehot(t, length), _onehot(c, 2)])
            beh[s] = b / b.sum()
            if t + 1 < length:
                P[s, :, c * length + t + 1] = ok
            else:
                P[s, :, S + SURVIVE] = ok
            P[s, :, S + DIE] = 1.0 - ok
    start = np.zeros(S)
    start[0] = start[length] = 0.5
    return TabularMDP(f"chain{length}", P, start, beh, feats)


def factored(interaction: bool = False, horizon: int = 4, levels: int = 3, seed: int = 0) -> TabularMDP:
    """Two components s_F, s_V in 0..levels-1 and time t in 0..horizon-1; z = [onehot(s_F), onehot(s_V), onehot(t)].

    Fluid moves s_F up or down with probabilities that depend on (s_F, a_F) only, vasopressor s_V on (s_V, a_V)
    only; after the last decision the patient survives with probability 0.1 + 0.9 (s_F' + s_V') / (2 (levels-1)):
    separable effects and an additive expected reward (assumption SE, method.md 1.4), so Q* is additive over the
    sub-actions and equation (1) holds exactly. In every (s_k, t) one allowed level improves the component (up with
    probability 0.8, never down), the others rarely do (up 0-0.15, down 0.2-0.4), so the optimum is unique with a
    clear gap, also where a component is already at its top level.
    ``interaction``: high fluid (>= 3) with high vasopressor (>= 3) pushes both components down instead (the break
    condition). The behaviour is a product of per-component policies pi_F(a_F | t, s_F) pi_V(a_V | t, s_V) with
    ratios 1, 0.7 or 0.1, so the product filter depends on (t, s_k) only."""
    rng = np.random.default_rng(seed)
    L, H = levels, horizon
    S = L * L * H
    up = rng.uniform(0.0, 0.15, size=(2, H, L, 5))
    down = rng.uniform(0.2, 0.4, size=(2, H, L, 5))
    wts = np.full((2, H, L, 5), 0.1)
    for k in range(2):
        for t in range(H):
            for s in range(L):
                lv = rng.permutation(5)[:3]            # three allowed levels: one top choice, two at 0.7
                wts[k, t, s, lv] = [1.0, 0.7, 0.7]
                good = lv[rng.integers(0, 3)]          # the improving level is one of them
                up[k, t, s, good], down[k, t, s, good] = 0.8, 0.0
    P = np.zeros((S, N_ACTIONS, S + 2))
    beh = np.zeros((S, N_ACTIONS))
    feats = np.zeros((S, 2 * L + H), np.float32)

    def idx(sf, sv, t):
        return (t * L + sf) * L + sv

    def moves(k, t, s, a):  # (P(-1), P(0), P(+1)) of component k
        return np.array([down[k, t, s, a], 1 - up[k, t, s, a] - down[k, t, s, a], up[k, t, s, a]])

    for t in range(H):
        for sf in range(L):
            for sv in range(L):
                s = idx(sf, sv, t)
                feats[s] = np.concatenate([_onehot(sf, L), _onehot(sv, L), _onehot(t, H)])
                b = (wts[0, t, sf][:, None] * wts[1, t, sv][None, :]).reshape(-1)
                beh[s] = b / b.sum()
                for af in range(5):
                    for av in range(5):
                        a = af * N_VASO + av
                        mf, mv = moves(0, t, sf, af), moves(1, t, sv, av)
                        if interaction and af >= 3 and av >= 3:
                            mf = mv = np.array([0.8, 0.2, 0.0])
                        for i, df in enumerate((-1, 0, 1)):
                            for j, dv in enumerate((-1, 0, 1)):
                                pr = mf[i] * mv[j]
                                if pr == 0:
                                    continue
                                nf, nv = min(max(sf + df, 0), L - 1), min(max(sv + dv, 0), L - 1)
                                if t + 1 < H:
                                    P[s, a, idx(nf, nv, t + 1)] += pr
                                else:
                                    surv = 0.1 + 0.9 * (nf + nv) / (2 * (L - 1))
                                    P[s, a, S + SURVIVE] += pr * surv
                                    P[s, a, S + DIE] += pr * (1 - surv)
    start = np.zeros(S)
    for sf in range(L - 1):
        for sv in range(L - 1):
            start[idx(sf, sv, 0)] = 1.0
    start /= start.sum()
    return TabularMDP(f"factored{'-interacting' if interaction else '-separable'}", P, start, beh, feats)


def random_mdp(n_states: int = 24, seed: int = 0, min_gap: float = 0.05) -> TabularMDP:
    """Random transitions and outcomes: from each (s, a), 3 random next states, a random chance to end (10-40%)
    and, on ending, a random chance to survive; z = onehot(s). Behaviour ratios 1, 0.7, 0.1 or 0. Where the best
    allowed action's value (tau 0.3, joint filter) leads the second by less than ``min_gap`` of its value, its
    chance to survive on ending is raised (repeatedly), so the optimum is identifiable."""
    rng = np.random.default_rng(seed)
    S = n_states
    P = np.zeros((S, N_ACTIONS, S + 2))
    for s in range(S):
        for a in range(N_ACTIONS):
            end = rng.uniform(0.1, 0.4)
            surv = rng.uniform(0.0, 1.0)
            nxt = rng.choice(S, 3, replace=False)
            P[s, a, nxt] = (1 - end) * rng.dirichlet(np.ones(3))
            P[s, a, S + SURVIVE] = end * surv
            P[s, a, S + DIE] = end * (1 - surv)
    w = rng.choice([1.0, 0.7, 0.1, 0.0, 0.0], size=(S, N_ACTIONS))
    w[np.arange(S), rng.integers(0, N_ACTIONS, S)] = 1.0
    start = np.full(S, 1.0 / S)
    mdp = TabularMDP(f"random{S}", P, start, _weights_to_probs(w), np.eye(S, dtype=np.float32))
    allowed = mdp.allowed(0.3, "joint")
    for _ in range(200):
        q = np.where(allowed, mdp.q_star(0.3, "joint", 0.99), -np.inf)
        top = np.sort(q, 1)[:, -2:]
        small = np.flatnonzero((top[:, 1] - top[:, 0]) < min_gap * top[:, 1])
        if not len(small):
            break
        best = q[small].argmax(1)
        shift = np.minimum(0.03, mdp.P[small, best, S + DIE])
        mdp.P[small, best, S + DIE] -= shift
        mdp.P[small, best, S + SURVIVE] += shift
    return mdp


# ---- checking a learner against the exact answer ----------------------------------------------------------
def learned_values(learner, z: np.ndarray) -> dict[str, np.ndarray]:
    """The learner's values at states ``z`` on the reward scale: ``q`` (N, 25) (AD-BCQ: the mixed value), its
    allowed mask ``mask`` (N, 25), and for AD-BCQ the projected heads ``heads`` (N, 2, 5)."""
    from .nets import joint_q_pairs

    net, scale = learner.net, learner.cfg.value_scale
    zt = torch.from_numpy(np.asarray(z, np.float32))
    with torch.no_grad():
        q, mask = net(zt)
        out = {"q": q.numpy() * scale, "mask": mask.numpy()}
        if learner.algorithm == "factored_bcq":
            out["q"] = joint_q_pairs(net.heads(zt)).sum(-1).numpy() * scale
        if learner.algorithm == "adbcq":
            out["heads"] = net.heads(zt).numpy() * scale
    return out


def filter_kind(learner) -> str:
    """The learner's behaviour filter: "joint" (discrete BCQ, AD-BCQ's 25-way filter) or "factored" (A_F x A_V)."""
    return "joint" if learner.algorithm == "bcq" or getattr(learner.cfg, "bc_filter", "") == "joint" else "factored"


def exact_check(learner, mdp: TabularMDP, df: pd.DataFrame, gamma: float, min_pair_visits: int = 1000,
                decide_gap: float = 0.02, plugin: np.ndarray | None = None) -> dict:
    """Compare a trained learner with the exact batch-constrained answer. Visited pairs: (state, allowed action)
    pairs (allowed by the true behaviour at the learner's tau) logged at least ``min_pair_visits`` times in the
    training data, so that the data determine their value; visited states: the states of those pairs. Reported: the
    largest and mean relative error of Q on visited pairs (denominator max(|Q*|, r_max / 2): below half the reward
    scale the tolerance is absolute), and the share of visited states where the learner's greedy action (its own
    filter) is the exact optimal allowed action. AD-BCQ also reports its projected heads against the exact projected
    Q_k (on the visited states' allowed levels).

    Beside them, what the data themselves allow: the plug-in solution (the exact solution of the empirical MDP of
    the same data, :meth:`TabularMDP.plugin_q`) on the same pairs (``plugin_*``), and the greedy accuracy on the
    *decidable* states, those whose exact best allowed action beats the runner-up by at least ``decide_gap`` x r_max
    (2 points on the 0-100 scale, about the sampling error of a pair logged 1,000 times): where the two best actions
    are closer than that, no learner can order them from these data, and the greedy action's loss there is bounded
    by the gap (``greedy_regret_max``). ``plugin``: the plug-in Q of these data, where the caller already solved it
    (it does not change between a run's checkpoints)."""
    tau = learner.cfg.tau
    kind = filter_kind(learner)
    allowed_all = mdp.allowed(tau, kind)
    pairs = allowed_all & (mdp.visits(df) >= min_pair_visits)
    vis = np.flatnonzero(pairs.any(1))
    qs = mdp.q_star(tau, kind, gamma)[vis]
    allowed = allowed_all[vis]
    got = learned_values(learner, mdp.features[vis])
    floor = 0.5 * mdp.r_max
    rel = np.abs(got["q"] - qs) / np.maximum(np.abs(qs), floor)
    qa = np.where(allowed, qs, -np.inf)
    best = qa.argmax(1)
    srt = np.sort(qa, 1)
    gap = srt[:, -1] - srt[:, -2]   # exact best minus runner-up allowed action (-inf - x: one allowed action)
    decidable = ~(gap < decide_gap * mdp.r_max)
    greedy = np.where(got["mask"], got["q"], -np.inf).argmax(1)
    pv = pairs[vis]
    qp = (mdp.plugin_q(df, tau, kind, gamma) if plugin is None else plugin)[vis]
    rel_p = np.abs(qp - qs) / np.maximum(np.abs(qs), floor)
    right = greedy == best
    out = {"mdp": mdp.name, "algorithm": learner.algorithm, "tau": tau, "states": int(len(vis)),
           "pairs": int(pv.sum()), "max_rel_err": float(rel[pv].max()),
           "mean_rel_err": float(rel[pv].mean()), "greedy_acc": float(right.mean()),
           "decidable_states": int(decidable.sum()),
           "greedy_acc_decidable": float(right[decidable].mean()) if decidable.any() else float("nan"),
           "greedy_regret_max": float((srt[:, -1] - qs[np.arange(len(vis)), greedy]).max()),
           "plugin_max_rel_err": float(rel_p[pv].max()), "plugin_mean_rel_err": float(rel_p[pv].mean()),
           "plugin_greedy_acc": float((np.where(allowed, qp, -np.inf).argmax(1) == best).mean()),
           "mask_agree": float((got["mask"] == allowed).all(1).mean()),
           "q_mean": float(got["q"][pv].mean()), "q_star_mean": float(qs[pv].mean())}
    if "heads" in got:
        pq = mdp.projected_q(tau, gamma)[vis]
        sub = mdp.sub_allowed(tau)[vis]
        rel_h = np.abs(got["heads"] - pq) / np.maximum(np.abs(pq), floor)
        out["heads_max_rel_err"] = float(rel_h[sub].max())
        out["heads_mean_rel_err"] = float(rel_h[sub].mean())
    return out


BUILDERS = {"chain": lambda: chain(16), "separable": lambda: factored(False), "interacting": lambda: factored(True),
            "random": lambda: random_mdp(24)}
# (MDP, learner) pairs where the learner's function class can represent the exact Q*: an additive Q (factored BCQ)
# or a mixer of two heads (AD-BCQ) cannot represent the interacting or the random MDP's
CASES = [("chain", "bcq"), ("chain", "factored_bcq"), ("chain", "adbcq-noaug"),
         ("separable", "bcq"), ("separable", "factored_bcq"), ("separable", "adbcq-noaug"),
         ("separable", "adbcq-aug"), ("interacting", "bcq"), ("random", "bcq")]


def train_on(mdp_name: str, learner: str, params, tau: float = 0.3, episodes: int = 100_000, seed: int = 0,
             checkpoint_every: int | None = None, min_pair_visits: int = 1000) -> list[dict]:
    """Train ``learner`` ("bcq", "factored_bcq", "adbcq-noaug", "adbcq-aug": linear mixer, the exact projected
    model) on ``episodes`` behaviour episodes of a builder's MDP with ``params`` (a TrainParams: its profile's
    value-learning settings, ``steps`` and ``batch_size``); return :func:`exact_check` (pairs logged at least
    ``min_pair_visits`` times) at every checkpoint (with ``step``, ``steps_per_s`` and ``cpu_s``, the process CPU
    seconds of the training loop)."""
    import copy
    import time

    from .data import transitions
    from .train import RunSpec, fit_loop, make_learner

    mdp = BUILDERS[mdp_name]()
    df = mdp.sample_states(episodes, seed=seed)
    data = transitions(df, "train")
    algo, _, arm = learner.partition("-")
    spec = RunSpec(algo, tau, seed, "linear" if algo == "adbcq" else None, arm == "aug" if algo == "adbcq" else None)
    lrn = make_learner(spec, data, params, mdp.exact_model() if spec.needs_dynamics else None)
    t0, c0 = time.perf_counter(), time.process_time()
    steps, states, _, secs = fit_loop(lrn, data, params.steps, params.batch_size,
                                      checkpoint_every or params.steps, seed, progress=False,
                                      lr_schedule=params.lr_schedule, precision=params.precision)
    cpu = time.process_time() - c0
    out = []
    plugin = mdp.plugin_q(df, tau, filter_kind(lrn), params.gamma)   # the same for every checkpoint
    probe = copy.copy(lrn)
    probe.net = copy.deepcopy(lrn.net)
    for st, sd in zip(steps, states):
        probe.net.load_state_dict(sd)
        out.append({**exact_check(probe, mdp, df, params.gamma, min_pair_visits=min_pair_visits, plugin=plugin),
                    "step": st, "learner": learner, "episodes": episodes, "min_pair_visits": min_pair_visits,
                    "batch_size": params.batch_size, "steps_per_s": params.steps / secs, "cpu_s": cpu,
                    "wall_s": time.perf_counter() - t0})
    return out
