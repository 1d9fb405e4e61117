"""The convergence check of every training run (method.md 3.1, "measured since"): does the learner learn values?

On a held-out split, for one checkpoint:
- ``q_logged``: the mean learned Q of the logged (clinician) actions, Q(z_t, A_t), on the reward scale (AD-BCQ:
  the mixed value F);
- ``mc_return``: the mean discounted Monte-Carlo return of the same rows, sum_k gamma^k r_{t+k} within the stay;
- ``ratio`` = q_logged / mc_return: about 1 when Q has learned the value of the logged actions (both estimate the
  behaviour's value on those rows, up to the greedy improvement the targets build in);
- ``q_spread``: the mean over rows of max - min of Q across the allowed actions (the learned preference between
  allowed actions; 0 means the policy is the imitation filter's);
- ``td_error``: the mean absolute TD error |Q(z, a) - r - gamma (1 - d) max_{a' allowed} Q(z', a')| (reward scale).

It checks the logged actions' values; the greedy action's value may exceed them (that is what the learner is for),
so a ratio somewhat above 1 is expected when the learned policy improves on the clinicians, and the check cannot say
whether the greedy values are right (only the exact-answer tests and, on the synthetic world, roll-outs can).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..errors import EmptyResultError
from .data import Transitions, transitions

RATIO_OK = (0.8, 1.25)   # a run whose final ratio lies outside is reported as not converged
KEYS = ("q_logged", "mc_return", "ratio", "q_spread", "td_error")


@dataclass(frozen=True)
class CheckSet:
    """The transitions of one split with the discounted Monte-Carlo return of each row."""
    data: Transitions
    mc: np.ndarray
    split: str


def mc_returns(df: pd.DataFrame, split: str, gamma: float) -> np.ndarray:
    """Discounted return-to-go of every transition of ``split``, in the order of :func:`transitions`."""
    part = df[df["split"] == split].sort_values(["traj", "step"], kind="stable")
    live = ~part["last"].to_numpy(bool)
    traj = part["traj"].to_numpy(np.int64)[live]
    r = part["reward"].to_numpy(np.float64)[live]
    g = np.zeros(len(r))
    acc = 0.0
    for i in range(len(r) - 1, -1, -1):   # backwards; a new stay starts where the next row's traj differs
        if i == len(r) - 1 or traj[i + 1] != traj[i]:
            acc = 0.0
        acc = r[i] + gamma * acc
        g[i] = acc
    return g


def check_set(df: pd.DataFrame, split: str, gamma: float, where: str = "states table") -> CheckSet:
    """The check's data for ``split``; an EmptyResultError naming the split when it has no complete episode."""
    part = df[df["split"] == split]
    if not (len(part) and part["done"].to_numpy(bool).any()):
        raise EmptyResultError(f"{where}: the value check needs complete episodes, but split '{split}' has "
                               f"{part['traj'].nunique() if len(part) else 0} stay(s) and none ends with done=True")
    data = transitions(df, split, where)
    return CheckSet(data, mc_returns(df, split, gamma), split)


@torch.no_grad()
def value_check(net, cfg, cs: CheckSet, chunk: int = 8192) -> dict:
    """The check of one network (any learner's ``net``: ``net(z) -> (Q over 25 actions, allowed mask)``)."""
    scale, gamma = float(cfg.value_scale), float(cfg.gamma)
    d = cs.data
    q_sa, spread, td = [], [], []
    for s in range(0, len(d), chunk):
        sl = slice(s, s + chunk)
        z, a = torch.from_numpy(d.z[sl]), torch.from_numpy(d.a[sl])
        q, m = net(z)
        q2, m2 = net(torch.from_numpy(d.z2[sl]))
        qa = q.gather(1, a[:, None]).squeeze(1)
        hi = torch.where(m, q, torch.full_like(q, -torch.inf)).max(1).values
        lo = torch.where(m, q, torch.full_like(q, torch.inf)).min(1).values
        v2 = torch.where(m2, q2, torch.full_like(q2, -torch.inf)).max(1).values
        done = torch.from_numpy(d.done[sl])
        y = torch.from_numpy(d.r[sl]) / scale + gamma * (1.0 - done) * torch.where(done > 0, 0.0, v2)
        q_sa.append(qa), spread.append(hi - lo), td.append((qa - y).abs())
    q_logged = float(torch.cat(q_sa).double().mean()) * scale
    mc = float(cs.mc.mean())
    return {"q_logged": q_logged, "mc_return": mc, "ratio": q_logged / mc if mc > 0 else float("nan"),
            "q_spread": float(torch.cat(spread).double().mean()) * scale,
            "td_error": float(torch.cat(td).double().mean()) * scale}


def converged(check: dict | None) -> bool:
    """Whether a check's ratio lies in [0.8, 1.25]."""
    if not check:
        return False
    r = check.get("ratio")
    return r is not None and np.isfinite(r) and RATIO_OK[0] <= r <= RATIO_OK[1]


def checkpoint_check(run_dir, step: int) -> dict | None:
    """The value check of checkpoint ``step`` of a trained run (from its run.json), with ``converged``; None where
    the run was trained without the check."""
    import json
    from pathlib import Path

    f = Path(run_dir) / "run.json"
    if not f.exists():
        return None
    rec = json.loads(f.read_text())
    hist = rec.get("value_check_history")
    if not hist or step not in rec["steps"]:
        return None
    i = rec["steps"].index(step)
    out = {k: hist[k][i] for k in KEYS}
    out["converged"] = converged(out)
    return out


NOT_CONVERGED = "not converged: this policy reflects the imitation filter, not learned values"
