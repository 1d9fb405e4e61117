"""The selection audit: how well does each estimator rank candidate policies whose true values are known?

For each estimator (a value per candidate) against the candidates' true values (simulator roll-outs):
- ``spearman``: rank correlation with the truth (ties averaged; a candidate without an estimate, e.g. a WIS
  with all weights zero, ranks below every candidate with one);
- ``regret``: the best true value among the candidates minus the true value of the candidate the
  estimator's selection rule picks (0 = it picked the truly best);
- ``top5_precision``: the share of the 5 truly best candidates among the estimator's top 5.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (1 = lowest); NaN ranks lowest (all NaNs tie)."""
    x = np.where(np.isfinite(x), x, -np.inf)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    ranks = np.empty(len(x))
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1
        i = j + 1
    return ranks


def spearman(est, truth) -> float:
    a, b = _ranks(np.asarray(est, float)), _ranks(np.asarray(truth, float))
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def top_k(x, k: int) -> np.ndarray:
    """Indices of the k largest values (NaN last, ties to the lower index)."""
    x = np.where(np.isfinite(x), x, -np.inf)
    return np.lexsort((np.arange(len(x)), -x))[:k]


def audit(estimates: dict[str, np.ndarray], truth, selected: dict[str, int] | None = None, k: int = 5) -> dict:
    """{estimator: {spearman, regret, top5_precision, selected, selected_true, best_true, n}}.

    ``selected``: the index each estimator's selection rule picks (default: its highest estimate)."""
    truth = np.asarray(truth, dtype=np.float64)
    if truth.ndim != 1 or len(truth) < 2 or not np.isfinite(truth).all():
        raise InputError(f"audit: need finite true values of at least 2 candidates; got {truth.shape}")
    out = {}
    best = float(truth.max())
    for name, e in estimates.items():
        e = np.asarray(e, dtype=np.float64)
        if e.shape != truth.shape:
            raise InputError(f"audit: estimator {name} has {e.shape} values for {truth.shape} candidates")
        sel = (selected or {}).get(name)
        if sel is None:
            sel = int(top_k(e, 1)[0])
        kk = min(k, len(truth))
        out[name] = {"spearman": spearman(e, truth), "regret": best - float(truth[sel]),
                     f"top{k}_precision": len(set(top_k(e, kk)) & set(top_k(truth, kk))) / kk,
                     "selected": int(sel), "selected_true": float(truth[sel]), "best_true": best,
                     "n": int(len(truth)), "n_estimated": int(np.isfinite(e).sum())}
    return out


def winner(result: dict) -> str:
    """The estimator with the lowest regret (ties: higher Spearman, then higher top-5 precision)."""
    if not result:
        raise InputError("audit: no estimators")
    return min(result, key=lambda n: (result[n]["regret"], -np.nan_to_num(result[n]["spearman"], nan=-2),
                                      -result[n]["top5_precision"]))
