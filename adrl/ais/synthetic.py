"""A small synthetic trajectory table in the exact cohort contract, for tests and benchmarks of `encode`.

Not a patient simulator (that is adrl/synth): a linear-Gaussian latent process whose observations depend
on the treatment history, so a history encoder has something to learn that carrying the last observation
forward misses. Columns, dtypes and order follow :data:`adrl.schemas.TRAJECTORY_COLUMNS`; o:/m: values are
already on the normalised scale.

Generative model, per stay (latent h_t in R^k, k = 4):
    h_0 ~ N(0, I);   h_{t+1} = rho * h_t + B_F[fluid_t] + B_V[vaso_t] + q * eps_t
    o_t = C h_t + D[action_t] + s * nu_t        (row t's own action shapes its window, cohort.md 5.4)
    fluid_t, vaso_t drawn from a softmax behaviour policy on h_t.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..actions import N_ACTIONS, N_FLUID, N_VASO, to_flat
from ..schemas import DEMOG_COLS, OBS_COLS, SPLITS, TRAJECTORY_COLUMNS


def fake_trajectories(n_stays: int = 200, max_len: int = 18, min_len: int = 2, seed: int = 0,
                      effect: float = 1.0, obs_noise: float = 0.3, latent_dim: int = 4,
                      fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> pd.DataFrame:
    """A trajectory table (cohort contract) of ``n_stays`` stays of lengths ``min_len..max_len``.

    ``effect`` scales how strongly treatments move the latent state (0: treatments do nothing).
    Every split gets at least one stay when ``n_stays >= 3``.
    """
    if n_stays < 1 or min_len < 1 or max_len < min_len:
        raise ValueError("fake_trajectories: need n_stays >= 1 and 1 <= min_len <= max_len")
    rng = np.random.default_rng(seed)
    k, n_obs = latent_dim, len(OBS_COLS)
    C = rng.normal(0, 1 / np.sqrt(k), (n_obs, k)).astype(np.float64)
    B_F = effect * rng.normal(0, 0.6, (N_FLUID, k))
    B_F[0] = 0.0
    B_V = effect * rng.normal(0, 0.6, (N_VASO, k))
    B_V[0] = 0.0
    D = 0.3 * effect * rng.normal(0, 1, (N_ACTIONS, n_obs))
    W_F = rng.normal(0, 1, (k, N_FLUID))
    W_V = rng.normal(0, 1, (k, N_VASO))
    rho, q = 0.85, 0.3

    lengths = rng.integers(min_len, max_len + 1, n_stays)
    T = int(lengths.max())
    h = rng.normal(0, 1, (n_stays, k))
    obs = np.zeros((n_stays, T, n_obs))
    fl = np.zeros((n_stays, T), np.int64)
    va = np.zeros((n_stays, T), np.int64)
    for t in range(T):
        fl[:, t] = _sample_softmax(rng, h @ W_F)
        va[:, t] = _sample_softmax(rng, h @ W_V)
        a = to_flat(fl[:, t], va[:, t])
        obs[:, t] = h @ C.T + D[a] + obs_noise * rng.normal(0, 1, (n_stays, n_obs))
        h = rho * h + B_F[fl[:, t]] + B_V[va[:, t]] + q * rng.normal(0, 1, (n_stays, k))
    survived = rng.random(n_stays) < 1 / (1 + np.exp(-(0.5 + h[:, 0])))

    demog = np.column_stack([
        rng.integers(0, 2, n_stays) - 0.5,                  # gender
        np.zeros(n_stays),                                  # mechvent (per row, set below)
        (rng.random(n_stays) < 0.1) - 0.5,                  # re_admission
        rng.normal(0, 1, n_stays),                          # age (z-scored)
        rng.normal(0, 1, n_stays),                          # Weight_kg (z-scored)
    ])
    split_of = _assign_splits(rng, n_stays, fractions)

    traj_idx = np.repeat(np.arange(n_stays), lengths)
    step = np.concatenate([np.arange(L) for L in lengths])
    o = obs[traj_idx, step].astype(np.float32)
    m = demog[traj_idx].astype(np.float32)
    m[:, 1] = (rng.random(len(step)) < 0.4) - 0.5
    f = fl[traj_idx, step].astype(np.int8)
    v = va[traj_idx, step].astype(np.int8)
    last = step == lengths[traj_idx] - 1
    edges_f = np.array([0.0, 250.0, 750.0, 1500.0, 3000.0], np.float32)
    edges_v = np.array([0.0, 0.05, 0.15, 0.3, 0.6], np.float32)
    t0 = pd.Timestamp("2130-01-01").to_datetime64().astype("datetime64[s]")

    cols: dict[str, object] = {
        "subject_id": (10_000 + traj_idx).astype(np.int64),
        "hadm_id": (100_000 + traj_idx).astype(np.int64),
        "icustay_id": (200_000 + traj_idx).astype(np.int64),
        "traj": traj_idx.astype(np.int32),
        "step": step.astype(np.int16),
        "bin_start": t0 + (traj_idx * 1000 + step * 4).astype("timedelta64[h]"),
        "t_onset_h": (-24 + 4 * step).astype(np.int16),
    }
    cols.update({c: o[:, i] for i, c in enumerate(OBS_COLS)})
    cols.update({c: m[:, i] for i, c in enumerate(DEMOG_COLS)})
    cols.update({
        "fluid_ml": edges_f[f],
        "vaso_dose": edges_v[v],
        "fluid_bin": f,
        "vaso_bin": v,
        "action": to_flat(f, v).astype(np.int8),
        "reward": np.where(last, 100.0 * survived[traj_idx], 0.0).astype(np.float32),
        "done": last,
        "split": pd.array(split_of[traj_idx], dtype="string"),
        "sofa": rng.integers(0, 15, len(step)).astype(np.int8),
        "has_data": np.ones(len(step), bool),
    })
    df = pd.DataFrame(cols)
    assert list(df.columns) == list(TRAJECTORY_COLUMNS)
    return df


def _sample_softmax(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    u = rng.random((len(p), 1))
    return np.minimum((p.cumsum(1) < u).sum(1), p.shape[1] - 1)


def _assign_splits(rng: np.random.Generator, n: int, fractions) -> np.ndarray:
    idx = rng.permutation(n)
    cuts = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    if n >= 3:
        cuts = np.clip(cuts, [1, 2], [n - 2, n - 1])
        cuts[1] = max(cuts[1], cuts[0] + 1)
    out = np.empty(n, object)
    for name, part in zip(SPLITS, np.split(idx, cuts)):
        out[part] = name
    return out
