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

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..errors import EmptyResultError
from .data import Transitions, transitions

RATIO_OK = (0.8, 1.25)   # a run whose final ratio lies outside is reported as not converged
KEYS = ("q_logged", "mc_return", "ratio", "q_spread", "td_error")


@dataclass(frozen=True)
class CheckSet:
    """The transitions of one split with the discounted Monte-Carlo return of each row. ``next_row`` (filled in on
    construction): for each row whose next state is needed (not done) and is the state of a row of the set (in a
    stay, row i + 1), that row's index, else -1 (see :func:`next_rows`)."""
    data: Transitions
    mc: np.ndarray
    split: str
    next_row: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.next_row is None:
            object.__setattr__(self, "next_row", next_rows(self.data))


def next_rows(d: Transitions) -> np.ndarray:
    """Row i + 1 where row i is not done and z2[i] is bitwise z[i + 1] (in a stay, the next transition starts
    where this one ends), else -1. The check then evaluates each state once: net(z) of every row, and net(z2)
    only of the live rows whose next state is no row's z (none in a states table, where a live stay always goes
    on; transitions built otherwise), where it had run the network over z2 of every row (half its products;
    results equal up to the products' rounding by batch)."""
    n = len(d)
    out = np.full(n, -1, np.int64)
    if n > 1:
        same = (d.done[:-1] == 0) & np.all(d.z[1:] == d.z2[:-1], axis=1)
        out[:-1][same] = np.flatnonzero(same) + 1
    return out


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
def value_check(net, cfg, cs: CheckSet, chunk: int = 8192, imit=None) -> dict:
    """The check of one network (any learner's ``net``: ``net(z) -> (Q over 25 actions, allowed mask)``). Each state
    is evaluated once (``cs.next_row``): the next state's values come from its own row where it has one. ``imit``:
    a stand-in for ``net.imit`` (the imitation logits of the same states, e.g. remembered from a run that shares
    the network: :class:`SharedLogits`); the net then needs ``values`` and ``allowed`` (every learner's has)."""
    scale, gamma = float(cfg.value_scale), float(cfg.gamma)
    d = cs.data
    n = len(d)

    def values(z: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(max over allowed actions, min over allowed actions, Q) of the states ``z``, in chunks."""
        hi, lo, qs = [], [], []
        for s in range(0, len(z), chunk):
            zc = torch.from_numpy(z[s:s + chunk])
            q, m = net(zc) if imit is None else (net.values(zc), net.allowed(imit(zc)))
            hi.append(torch.where(m, q, torch.full_like(q, -torch.inf)).max(1).values)
            lo.append(torch.where(m, q, torch.full_like(q, torch.inf)).min(1).values)
            qs.append(q)
        return torch.cat(hi), torch.cat(lo), torch.cat(qs)

    hi, lo, q = values(d.z)
    nxt = torch.from_numpy(cs.next_row)
    own = torch.from_numpy(np.flatnonzero((cs.next_row < 0) & (d.done == 0)))   # next states no row starts from
    v2 = torch.zeros(n, dtype=hi.dtype)
    has = nxt >= 0
    v2[has] = hi[nxt[has]]
    if len(own):
        v2[own] = values(np.ascontiguousarray(d.z2[own.numpy()]))[0]
    qa = q.gather(1, torch.from_numpy(d.a)[:, None]).squeeze(1)
    done = torch.from_numpy(d.done)
    y = torch.from_numpy(d.r) / scale + gamma * (1.0 - done) * torch.where(done > 0, 0.0, v2)
    q_logged = float(qa.double().mean()) * scale
    mc = float(cs.mc.mean())
    return {"q_logged": q_logged, "mc_return": mc, "ratio": q_logged / mc if mc > 0 else float("nan"),
            "q_spread": float((hi - lo).double().mean()) * scale,
            "td_error": float((qa - y).abs().double().mean()) * scale}


class SharedLogits:
    """The imitation network of runs that share it (a batched group's runs that differ only in the threshold hold
    bitwise the same imitation parameters at every checkpoint): its logits of each checked batch of states are
    computed by the first run that asks and remembered for the others, keyed by the states' tensor (its memory,
    shape, strides and dtype; the tensor is kept, so no other states can take its memory while remembered). A run
    whose imitation parameters are not exactly the first's computes its own."""

    def __init__(self):
        self.params: dict[str, torch.Tensor] | None = None
        self.memo: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def of(self, net):
        """``net.imit`` for value_check's ``imit``, shared where ``net``'s imitation parameters are the remembered."""
        params = net.imit.state_dict()
        if self.params is None:
            self.params = {k: v.clone() for k, v in params.items()}
        elif not (self.params.keys() == params.keys()
                  and all(torch.equal(self.params[k], v) for k, v in params.items())):
            return net.imit

        def imit(z: torch.Tensor) -> torch.Tensor:
            key = (z.data_ptr(), tuple(z.shape), z.stride(), z.dtype)
            if key not in self.memo:   # the states are kept beside their logits: their memory is not reused meanwhile
                self.memo[key] = (z, net.imit(z))
            return self.memo[key][1]
        return imit


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
