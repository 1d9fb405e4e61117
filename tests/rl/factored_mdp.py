"""A small factored MDP with one-hot states and a known optimal policy, written as a states table.

Latent state (s_F, s_V), each in 0..4, starts in 0..2. Two decisions per stay (rows t = 0, 1, 2; row 2 is
last). Fluid moves s_F: the improving fluid level is 2 when s_F is even and 1 when odd (+1), level 4 harms
(-1, floored at 0), the rest do nothing. Vasopressor moves s_V likewise: improving level 3 when s_V is even,
2 when odd; level 1 harms. Terminal-only reward 100 * (s_F + s_V) / 8 after the second decision, so effects
and reward are additive (assumption SE) and the optimal joint action is unique in every state:
a* = 5 * improve_F(s_F) + improve_V(s_V).
z = [onehot5(s_F), onehot5(s_V), onehot3(t)] (d = 13).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

D = 13


def improve_f(sf):
    return np.where(sf % 2 == 0, 2, 1)


def improve_v(sv):
    return np.where(sv % 2 == 0, 3, 2)


def step(sf, sv, af, av):
    sf2 = np.where(af == improve_f(sf), sf + 1, np.where(af == 4, np.maximum(sf - 1, 0), sf))
    sv2 = np.where(av == improve_v(sv), sv + 1, np.where(av == 1, np.maximum(sv - 1, 0), sv))
    return sf2, sv2


def optimal_action(sf, sv):
    return 5 * improve_f(np.asarray(sf)) + improve_v(np.asarray(sv))


def encode(sf, sv, t):
    sf, sv, t = np.broadcast_arrays(np.asarray(sf), np.asarray(sv), np.asarray(t))
    z = np.zeros((sf.size, D), np.float32)
    z[np.arange(sf.size), sf.ravel()] = 1
    z[np.arange(sf.size), 5 + sv.ravel()] = 1
    z[np.arange(sf.size), 10 + t.ravel()] = 1
    return z


def make_states(n_stays=600, seed=0, behaviour=None, val_frac=0.25):
    """States table (contract of adrl/schemas.py). behaviour(sf, sv, t, rng) -> (af, av); default uniform."""
    rng = np.random.default_rng(seed)
    if behaviour is None:
        behaviour = lambda sf, sv, t, rng: (rng.integers(0, 5, sf.size), rng.integers(0, 5, sf.size))  # noqa
    sf = [rng.integers(0, 3, n_stays)]
    sv = [rng.integers(0, 3, n_stays)]
    acts = []
    for t in range(2):
        af, av = behaviour(sf[-1], sv[-1], t, rng)
        acts.append((np.asarray(af), np.asarray(av)))
        a, b = step(sf[-1], sv[-1], *acts[-1])
        sf.append(a)
        sv.append(b)
    rows = []
    n_val = int(n_stays * val_frac)
    split = np.where(np.arange(n_stays) < n_stays - n_val, "train", "val")
    for t in range(3):
        z = encode(sf[t], sv[t], t)
        last = t == 2
        df = pd.DataFrame(z, columns=[f"z_{i}" for i in range(D)])
        df.insert(0, "subject_id", np.arange(n_stays, dtype=np.int64) + 1000)
        df.insert(1, "icustay_id", np.arange(n_stays, dtype=np.int64) + 5000)
        df.insert(2, "traj", np.arange(n_stays, dtype=np.int32))
        df.insert(3, "step", np.full(n_stays, t, np.int16))
        df.insert(4, "split", split)
        af, av = acts[t] if not last else (np.full(n_stays, -1), np.full(n_stays, -1))
        df["decision_fluid"] = af.astype(np.int8)
        df["decision_vaso"] = av.astype(np.int8)
        df["decision"] = np.where(last, -1, 5 * af + av).astype(np.int8)
        reward = 100.0 * (sf[2] + sv[2]) / 8.0 if t == 1 else np.zeros(n_stays)
        df["reward"] = reward.astype(np.float32)
        df["done"] = np.full(n_stays, t == 1)
        df["last"] = np.full(n_stays, last)
        rows.append(df)
    out = pd.concat(rows, ignore_index=True).sort_values(["traj", "step"], kind="stable")
    return out.reset_index(drop=True)
