"""Model selection on validation (WIS, ESS) (method.md 5.6).

every candidate -> Pareto frontier (non-dominated in (WIS, ESS)) -> highest WIS among frontier points
with ESS >= cutoff -> else highest ESS, flagged. Candidates whose WIS is undefined (all weights zero)
take no part and are counted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import EmptyResultError, InputError


def pareto_front(wis, ess) -> np.ndarray:
    """Boolean mask of the non-dominated candidates: no other candidate is at least as good on both
    metrics and strictly better on one. Exact duplicates are all kept. NaN WIS is never on the front."""
    wis = np.asarray(wis, dtype=np.float64)
    ess = np.asarray(ess, dtype=np.float64)
    if wis.shape != ess.shape or wis.ndim != 1:
        raise InputError(f"pareto_front: wis {wis.shape} and ess {ess.shape} must be 1-D and equal in length")
    ok = np.isfinite(wis) & np.isfinite(ess)
    front = np.zeros(len(wis), dtype=bool)
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        return front
    w, e = wis[idx], ess[idx]
    u, inv = np.unique(-e, return_inverse=True)       # groups by ESS, largest ESS first
    gmax = np.full(len(u), -np.inf)
    np.maximum.at(gmax, inv, w)
    # best WIS among candidates with strictly larger ESS than the group
    prev_best = np.concatenate([[-np.inf], np.maximum.accumulate(gmax)[:-1]])
    dominated = (prev_best[inv] >= w) | (w < gmax[inv])
    front[idx[~dominated]] = True
    return front


@dataclass(frozen=True)
class Selection:
    index: int            # position in the candidate arrays
    flagged: bool         # True: no frontier point met the ESS cutoff; highest-ESS point taken
    cutoff: float
    n_frontier: int
    n_undefined: int      # candidates without a WIS (all weights zero)


def select(wis, ess, cutoff: float) -> Selection:
    """Highest-WIS frontier point with ESS >= cutoff (ties: higher ESS, then lower index); else the
    highest-ESS frontier point (ties: higher WIS), flagged."""
    wis = np.asarray(wis, dtype=np.float64)
    ess = np.asarray(ess, dtype=np.float64)
    front = pareto_front(wis, ess)
    n_undef = int((~np.isfinite(wis)).sum())
    if not front.any():
        raise EmptyResultError(f"model selection: none of {len(wis)} candidates has a defined WIS "
                               "(every candidate leaves the behaviour support in every episode)")
    cand = np.flatnonzero(front)
    ok = cand[ess[cand] >= cutoff]
    if len(ok):
        order = np.lexsort((ok, -ess[ok], -wis[ok]))
        return Selection(int(ok[order[0]]), False, float(cutoff), int(front.sum()), n_undef)
    order = np.lexsort((cand, -wis[cand], -ess[cand]))
    return Selection(int(cand[order[0]]), True, float(cutoff), int(front.sum()), n_undef)


def cutoff_sensitivity(wis, ess, n_val: int, c: float, points: int = 51) -> list[dict]:
    """The selection at each cutoff in [0, 1.25 c N_val]: which candidate, its WIS / ESS, flagged."""
    wis = np.asarray(wis, dtype=np.float64)
    ess = np.asarray(ess, dtype=np.float64)
    out = []
    for cut in np.linspace(0.0, 1.25 * c * n_val, points):
        s = select(wis, ess, float(cut))
        out.append({"cutoff": float(cut), "index": s.index, "wis": float(wis[s.index]),
                    "ess": float(ess[s.index]), "flagged": s.flagged})
    return out
