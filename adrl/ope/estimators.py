"""Importance-sampling estimators (method.md 5.3-5.5), vectorised over many candidate policies.

Everything works on arrays of logged decisions, one row per decision, episodes in contiguous blocks:
episode ids (N,), logged actions (N,), rewards r_{t+1} (N,), behaviour probabilities (N, 25) from the
model fit on the evaluated split, and train-fit probabilities (N, 25) used only to soften greedy
policies: pi_e = (1 - eps) onehot(greedy) + eps * pi_b_train.

For a greedy candidate the step ratio takes one of two values per decision: agree (greedy = logged)
-> ((1-eps) + eps pt) / pb, disagree -> eps pt / pb. So the ratios of C candidates are one ``np.where``
on a (C, N) agreement matrix, the episode log-weights one ``np.add.reduceat``, and the bootstrap one
matrix product of a (B, E) resample-count matrix with the (E, C) weights.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..actions import N_ACTIONS
from ..errors import InputError
from .behaviour import check_actions

log = logging.getLogger("adrl.ope")

PROB_ATOL = 1e-6


def check_proba(P, n: int, where: str) -> np.ndarray:
    """(n, 25) finite, non-negative rows summing to one, else InputError naming the rows."""
    P = np.asarray(P, dtype=np.float64)
    if P.shape != (n, N_ACTIONS):
        raise InputError(f"{where}: probabilities of shape {P.shape}, expected ({n}, {N_ACTIONS}) "
                         "(one row per logged decision, one column per joint action)")
    bad = ~np.isfinite(P).all(axis=1)
    if bad.any():
        raise InputError(f"{where}: {int(bad.sum())} row(s) hold NaN or inf (first row {int(np.flatnonzero(bad)[0])})")
    neg = (P < 0).any(axis=1)
    if neg.any():
        raise InputError(f"{where}: {int(neg.sum())} row(s) hold negative probabilities "
                         f"(first row {int(np.flatnonzero(neg)[0])})")
    s = P.sum(axis=1)
    off = np.abs(s - 1) > PROB_ATOL
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise InputError(f"{where}: {int(off.sum())} row(s) do not sum to one (row {i} sums to {s[i]:.6g})")
    return P


@dataclass(frozen=True)
class LoggedData:
    """Validated logged decisions of one split. Build it with :func:`make_logged`."""

    episode_ids: np.ndarray      # (N,) id of each decision's episode, contiguous blocks
    actions: np.ndarray          # (N,) logged joint action A_t
    rewards: np.ndarray          # (N,) r_{t+1}
    pb: np.ndarray               # (N,) pi_b(A_t | z_t), fit on this split
    pb_train: np.ndarray | None  # (N,) pi_b_train(A_t | z_t), for softening
    starts: np.ndarray           # (E,) first decision of each episode
    lengths: np.ndarray          # (E,)
    returns: np.ndarray          # (E,) G_i = sum_t r_{i,t}
    episode_index: np.ndarray    # (N,) episode number 0..E-1 of each decision
    position: np.ndarray         # (N,) decision number t within its episode
    corrections: dict = field(default_factory=dict)

    @property
    def n_decisions(self) -> int:
        return len(self.actions)

    @property
    def n_episodes(self) -> int:
        return len(self.starts)

    @property
    def horizon(self) -> int:
        return int(self.lengths.max())


def make_logged(episode_ids, actions, rewards, behaviour_proba, train_proba=None, *,
                zero_behaviour: str = "error", floor: float | None = None,
                where: str = "logged data") -> LoggedData:
    """Validate and index the logged decisions of one split.

    ``behaviour_proba`` / ``train_proba``: (N, 25) probability rows (checked: finite, >= 0, sum to 1).
    A logged action with behaviour probability 0 raises InputError (``zero_behaviour="error"``) or is
    set to ``floor`` and counted in ``corrections`` (``"floor"``).
    """
    ep = np.asarray(episode_ids)
    n = len(ep)
    if ep.ndim != 1 or n == 0:
        raise InputError(f"{where}: episode ids must be a non-empty 1-D array; got shape {ep.shape}")
    a = check_actions(actions, f"{where}: logged actions")
    r = np.asarray(rewards, dtype=np.float64)
    if len(a) != n or r.shape != (n,):
        raise InputError(f"{where}: {n} episode ids, {len(a)} actions and {r.shape} rewards disagree in length")
    if not np.isfinite(r).all():
        raise InputError(f"{where}: {int((~np.isfinite(r)).sum())} reward(s) are NaN or inf")
    change = np.flatnonzero(ep[1:] != ep[:-1]) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    if len(np.unique(ep[starts])) != len(starts):
        raise InputError(f"{where}: decisions of an episode are not contiguous (sort by episode id, then step)")
    lengths = np.diff(np.append(starts, n))
    episode_index = np.repeat(np.arange(len(starts)), lengths)
    position = np.arange(n) - starts[episode_index]
    P = check_proba(behaviour_proba, n, f"{where}: behaviour probabilities")
    pb = P[np.arange(n), a].copy()
    corrections = {"zero_behaviour_prob": 0}
    zero = pb <= 0
    if zero.any():
        if zero_behaviour == "error":
            i = int(np.flatnonzero(zero)[0])
            raise InputError(f"{where}: the behaviour model gives probability 0 to {int(zero.sum())} logged "
                             f"action(s) (first at decision {i}, episode {ep[i]!r}, action {int(a[i])}); fit it "
                             "on the split being evaluated, or set evaluate.zero_behaviour: floor")
        if floor is None or not (0 < floor <= 1):
            raise InputError(f"{where}: zero_behaviour='floor' needs a floor in (0, 1], got {floor}")
        pb[zero] = floor
        corrections["zero_behaviour_prob"] = int(zero.sum())
        log.warning("%s: %d logged action(s) had behaviour probability 0; set to %g", where, int(zero.sum()), floor)
    pt = None
    if train_proba is not None:
        T = check_proba(train_proba, n, f"{where}: train-fit behaviour probabilities")
        pt = T[np.arange(n), a].copy()
    returns = np.add.reduceat(r, starts)
    return LoggedData(ep, a, r, pb, pt, starts, lengths, returns, episode_index, position, corrections)


def check_candidates(data: LoggedData, greedy, where: str = "candidate policies", episode_ids=None) -> np.ndarray:
    """(C, N) greedy actions on the logged decisions; a 1-D array is one candidate."""
    g = np.asarray(greedy)
    if g.ndim == 1:
        g = g[None, :]
    if g.ndim != 2 or g.shape[1] != data.n_decisions:
        raise InputError(f"{where}: greedy actions of shape {np.asarray(greedy).shape}; expected "
                         f"(candidates, {data.n_decisions}) - one action per logged decision of the split")
    if episode_ids is not None:
        ids = np.asarray(episode_ids)
        if ids.shape != data.episode_ids.shape or not np.array_equal(ids, data.episode_ids):
            raise InputError(f"{where}: the policies' episode ids do not match the logged decisions' ids "
                             "(states and policies come from different rows or orders)")
    if not np.issubdtype(g.dtype, np.integer):
        raise InputError(f"{where}: greedy actions must be integers; got dtype {g.dtype}")
    if g.size and (g.min() < 0 or g.max() >= N_ACTIONS):
        raise InputError(f"{where}: greedy actions outside [0, {N_ACTIONS})")
    return g


def greedy_log_ratios(data: LoggedData, greedy: np.ndarray, epsilon: float) -> np.ndarray:
    """(C, N) log rho for greedy candidates softened with the train-fit behaviour model."""
    if data.pb_train is None and epsilon > 0:
        raise InputError("softening a greedy policy needs the train-fit behaviour probabilities (train_proba)")
    pt = data.pb_train if data.pb_train is not None else np.zeros_like(data.pb)
    with np.errstate(divide="ignore"):
        log_agree = np.log((1 - epsilon) + epsilon * pt) - np.log(data.pb)
        log_disagree = np.log(epsilon * pt) - np.log(data.pb)  # -inf where eps * pt == 0: weight 0
    return np.where(greedy == data.actions[None, :], log_agree[None, :], log_disagree[None, :])


def proba_log_ratios(data: LoggedData, pi_e_proba, where: str = "evaluation policy") -> np.ndarray:
    """(1, N) log rho for a stochastic evaluation policy given as (N, 25) probabilities."""
    P = check_proba(pi_e_proba, data.n_decisions, where)
    pe = P[np.arange(data.n_decisions), data.actions]
    with np.errstate(divide="ignore"):
        return (np.log(pe) - np.log(data.pb))[None, :]


def episode_weights(data: LoggedData, log_rho: np.ndarray, clip: float) -> np.ndarray:
    """(C, E) clipped episode weights w_i = min(prod_t rho_{i,t}, clip)."""
    lw = np.add.reduceat(log_rho, data.starts, axis=1)
    return np.exp(np.minimum(lw, np.log(clip)))


def weight_stats(w: np.ndarray, returns: np.ndarray) -> dict[str, np.ndarray]:
    """WIS, ESS, unnormalised IS, max weight share and positive-weight count per candidate row of w.

    A candidate whose weights are all zero has no WIS (reported as NaN, counted by ``defined``=False).
    """
    sw = w.sum(axis=1)
    sw2 = np.einsum("ce,ce->c", w, w)
    swg = w @ returns
    defined = sw > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        wis = np.where(defined, swg / sw, np.nan)
        ess = np.where(defined, sw * sw / sw2, 0.0)
        share = np.where(defined, w.max(axis=1) / sw, np.nan)
    return {"wis": wis, "ess": ess, "is": swg / w.shape[1], "max_weight_share": share,
            "n_positive": (w > 0).sum(axis=1), "sum_w": sw, "defined": defined}


def evaluate_greedy(data: LoggedData, greedy, epsilon: float, clip: float, chunk: int = 256,
                    progress: bool | None = None) -> dict[str, np.ndarray]:
    """Validation statistics of many greedy candidates (C, N), in blocks of ``chunk`` candidates."""
    from ..progress import Progress

    g = check_candidates(data, greedy)
    parts = []
    blocks = range(0, len(g), chunk)
    quiet = progress is False or len(blocks) < 4
    for s in Progress(blocks, desc="evaluate: OPE", unit="blocks", logger="adrl.ope", enabled=False if quiet else None,
                      work=chunk, work_unit="candidates"):
        gb = g[s:s + chunk]
        w = episode_weights(data, greedy_log_ratios(data, gb, epsilon), clip)
        st = weight_stats(w, data.returns)
        st["agreement"] = (gb == data.actions[None, :]).mean(axis=1)
        parts.append(st)
    if not parts:
        return {k: np.empty(0) for k in ("wis", "ess", "is", "max_weight_share", "n_positive", "sum_w",
                                         "defined", "agreement")}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def step_weights(data: LoggedData, log_rho: np.ndarray, clip: float) -> np.ndarray:
    """(C, E, T) per-decision weights w_{i,t} = min(prod_{t'<=t} rho, clip), frozen after the episode ends."""
    C = log_rho.shape[0]
    pad = np.zeros((C, data.n_episodes, data.horizon))
    pad[:, data.episode_index, data.position] = log_rho
    return np.exp(np.minimum(np.cumsum(pad, axis=2), np.log(clip)))


def padded_rewards(data: LoggedData) -> np.ndarray:
    R = np.zeros((data.n_episodes, data.horizon))
    R[data.episode_index, data.position] = data.rewards
    return R


def padded(data: LoggedData, x: np.ndarray) -> np.ndarray:
    """(C, N) per-decision values -> (C, E, T), zero after each episode's end."""
    out = np.zeros((x.shape[0], data.n_episodes, data.horizon))
    out[:, data.episode_index, data.position] = x
    return out


def _per_step_normalised(W: np.ndarray, X: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """sum_t sum_i c_i W_{i,t} X_{i,t} / sum_i c_i W_{i,t} for (C, E, T) W and X (a step with zero total
    weight contributes 0); ``counts`` (B, E) resample counts give (B, C), else (C,)."""
    if counts is None:
        num, den = np.einsum("cet,cet->ct", W, X), W.sum(axis=1)
    else:
        C, E, T = W.shape
        num = (counts @ (W * X).transpose(1, 0, 2).reshape(E, C * T)).reshape(-1, C, T)
        den = (counts @ W.transpose(1, 0, 2).reshape(E, C * T)).reshape(-1, C, T)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0).sum(axis=-1)


def pdwis(data: LoggedData, log_rho: np.ndarray, clip: float) -> np.ndarray:
    """Per-decision WIS per candidate (method 5.3); a time step with zero total weight contributes 0."""
    W = step_weights(data, log_rho, clip)
    return _per_step_normalised(W, np.broadcast_to(padded_rewards(data)[None], W.shape))


def check_model_values(data: LoggedData, q_logged, v_e, where: str = "model values") -> tuple[np.ndarray, np.ndarray]:
    """(C, N) model values Q(z_t, A_t) of the logged action and V_e(z_t) = sum_a pi_e(a|z_t) Q(z_t, a)."""
    q = np.atleast_2d(np.asarray(q_logged, dtype=np.float64))
    v = np.atleast_2d(np.asarray(v_e, dtype=np.float64))
    if q.shape != v.shape or q.shape[1] != data.n_decisions:
        raise InputError(f"{where}: Q of logged actions {q.shape} and V {v.shape} must both be "
                         f"(candidates, {data.n_decisions})")
    if not (np.isfinite(q).all() and np.isfinite(v).all()):
        raise InputError(f"{where}: non-finite model values (the FQE fit diverged?)")
    return q, v


def wdr_terms(data: LoggedData, log_rho: np.ndarray, clip: float, q_logged, v_e):
    """(W, X, Wprev, V) of weighted per-decision doubly robust (Thomas & Brunskill 2016), undiscounted:

        WDR = sum_t sum_i wbar_{i,t} (r_{i,t} - Q(z_{i,t}, A_{i,t})) + wbar_{i,t-1} V(z_{i,t}),

    wbar_{i,t} = w_{i,t} / sum_j w_{j,t} with the (clipped, frozen after the end) step weights of PDWIS and
    wbar_{i,-1} = 1 / E. With Q and V of the evaluation policy exact, every term r + V(z') - Q(z, a) has
    mean zero given the past, so WDR is unbiased; with a wrong model it stays consistent (the PDWIS part)."""
    q, v = check_model_values(data, q_logged, v_e)
    W = step_weights(data, log_rho, clip)
    R = padded_rewards(data)[None]
    X = R - padded(data, q)
    Wprev = np.concatenate([np.ones_like(W[:, :, :1]), W[:, :, :-1]], axis=2)
    return W, X, Wprev, padded(data, v)


def wdr(data: LoggedData, log_rho: np.ndarray, clip: float, q_logged, v_e) -> np.ndarray:
    """Weighted doubly robust estimate per candidate (:func:`wdr_terms`)."""
    W, X, Wp, V = wdr_terms(data, log_rho, clip, q_logged, v_e)
    return _per_step_normalised(W, X) + _per_step_normalised(Wp, V)


def fqe_start_values(data: LoggedData, v) -> np.ndarray:
    """(C, E) model value of each episode's first state; the FQE estimate is its mean over episodes."""
    v = np.atleast_2d(np.asarray(v, dtype=np.float64))
    if v.shape[1] != data.n_decisions:
        raise InputError(f"FQE values of shape {v.shape}; expected (candidates, {data.n_decisions})")
    return v[:, data.starts]


def resample_counts(n_episodes: int, n_boot: int, seed: int) -> np.ndarray:
    """(B, E) how often each episode is drawn in each bootstrap resample (paired across policies)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_episodes, size=(n_boot, n_episodes))
    flat = (idx + (np.arange(n_boot) * n_episodes)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n_episodes).reshape(n_boot, n_episodes).astype(np.float64)


@dataclass
class Bootstrap:
    """Bootstrap replicates of WIS / ESS / PDWIS for k policies, from one paired count matrix."""

    wis: np.ndarray      # (B, k), NaN where a resample has zero total weight
    ess: np.ndarray      # (B, k)
    pdwis: np.ndarray | None  # (B, k)
    wdr: np.ndarray | None = None  # (B, k)
    fqe: np.ndarray | None = None  # (B, k)


def bootstrap(data: LoggedData, w: np.ndarray, counts: np.ndarray,
              W_steps: np.ndarray | None = None, wdr_parts=None, v0: np.ndarray | None = None) -> Bootstrap:
    """Resample episodes (rows of ``counts``) for the (k, E) weights ``w`` (and (k, E, T) step weights,
    the :func:`wdr_terms` of the same k policies, their (k, E) model start values)."""
    sw = counts @ w.T
    sw2 = counts @ (w * w).T
    swg = counts @ (w * data.returns[None, :]).T
    ok = sw > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        wis = np.where(ok, swg / sw, np.nan)
        ess = np.where(ok, sw * sw / sw2, 0.0)
    pd = None
    if W_steps is not None:
        pd = _per_step_normalised(W_steps, np.broadcast_to(padded_rewards(data)[None], W_steps.shape), counts)
    dr = None
    if wdr_parts is not None:
        W, X, Wp, V = wdr_parts
        dr = _per_step_normalised(W, X, counts) + _per_step_normalised(Wp, V, counts)
    fq = None if v0 is None else (counts @ v0.T) / counts.sum(axis=1, keepdims=True)
    return Bootstrap(wis, ess, pd, dr, fq)


def summarize_replicates(x: np.ndarray, level: float = 0.95) -> dict:
    """Percentile CI and SD over the defined (non-NaN) replicates, with their count."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    if not ok.any():
        return {"ci": [None, None], "sd": None, "n_defined": 0}
    a = (1 - level) / 2
    lo, hi = np.percentile(x[ok], [100 * a, 100 * (1 - a)])
    return {"ci": [float(lo), float(hi)], "sd": float(np.std(x[ok], ddof=1)) if ok.sum() > 1 else 0.0,
            "n_defined": int(ok.sum())}


def clinician_value(data: LoggedData, counts: np.ndarray | None = None) -> dict:
    """The observed mean return, ESS = N episodes, with a bootstrap CI from the same resamples."""
    out = {"wis": float(data.returns.mean()), "ess": float(data.n_episodes), "pdwis": float(data.returns.mean()),
           "is": float(data.returns.mean()), "agreement": 1.0, "n_episodes": data.n_episodes}
    if counts is not None:
        reps = counts @ data.returns / counts.sum(axis=1)
        s = summarize_replicates(reps)
        out.update({"wis_ci": s["ci"], "wis_sd": s["sd"], "ess_ci": [float(data.n_episodes)] * 2, "ess_sd": 0.0})
    return out


def diagnose(stats: dict, n_episodes: int, min_ess: float, max_share: float) -> list[str]:
    """Human-readable warnings for one policy's statistics (scalars)."""
    out = []
    if not stats.get("defined", True) or not np.isfinite(stats.get("wis", np.nan)):
        return ["all episode weights are zero: the policy never stays inside the logged support; WIS undefined"]
    if stats["ess"] < min_ess:
        out.append(f"small ESS: {stats['ess']:.1f} of {n_episodes} episodes (below {min_ess:.1f})")
    if stats["max_weight_share"] > max_share:
        out.append(f"degenerate weights: one episode holds {100 * stats['max_weight_share']:.1f}% of the total weight")
    if stats["n_positive"] < 0.01 * n_episodes:
        out.append(f"only {int(stats['n_positive'])} of {n_episodes} episodes have positive weight")
    return out
