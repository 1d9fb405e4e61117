"""Behaviour policy estimators (method.md 5.1) and their calibration / accuracy.

:class:`KnnBehaviour` follows scikit-learn's ``fit`` / ``predict_proba``. It is Tang's
``KNeighborsClassifier(n_neighbors=K)`` (Euclidean, uniform weights) on AIS states, with two differences
that matter for OPE: ``predict_proba`` always returns all 25 action columns (an action absent from the
fit data gets probability 0 instead of a missing column), and one neighbour search gives both the joint
estimate and the factored one (a 5-class kNN per sub-action, probabilities multiplied), see
:meth:`KnnBehaviour.predict_proba_both`.

When fit on the split being evaluated, a query point is its own nearest neighbour, so the logged action
gets probability >= 1/K (barring more than K exact duplicates).
"""
from __future__ import annotations

import logging
from typing import Literal

import numpy as np

from ..actions import N_ACTIONS, N_FLUID, N_VASO
from ..errors import InputError

log = logging.getLogger("adrl.ope")

Kind = Literal["joint", "factored"]


def _check_X(X, where: str) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise InputError(f"{where}: states must be a 2-D array (rows, state dims); got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise InputError(f"{where}: states must be numeric; got dtype {X.dtype}")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise InputError(f"{where}: {int(bad.sum())} state row(s) hold NaN or inf "
                         f"(first row {int(np.flatnonzero(bad)[0])})")
    return X


def check_actions(y, where: str, n_actions: int = N_ACTIONS) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise InputError(f"{where}: actions must be 1-D; got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise InputError(f"{where}: actions must be integers in [0, {n_actions}); got dtype {y.dtype}")
    bad = (y < 0) | (y >= n_actions)
    if bad.any():
        raise InputError(f"{where}: {int(bad.sum())} action(s) outside [0, {n_actions}) "
                         f"(e.g. {int(y[bad][0])} at position {int(np.flatnonzero(bad)[0])})")
    return y.astype(np.int64)


def label_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, k) integer labels -> (n, n_classes) counts, vectorised with one bincount."""
    n = labels.shape[0]
    flat = (np.arange(n, dtype=np.int64)[:, None] * n_classes + labels).ravel()
    return np.bincount(flat, minlength=n * n_classes).reshape(n, n_classes)


def joint_proba(labels: np.ndarray) -> np.ndarray:
    """Neighbour labels (n, k) -> joint kNN probabilities (n, 25)."""
    return label_counts(labels, N_ACTIONS) / labels.shape[1]


def factored_proba(labels: np.ndarray) -> np.ndarray:
    """Neighbour labels (n, k) -> product of per-sub-action kNN probabilities (n, 25), a = 5 f + v."""
    k = labels.shape[1]
    pf = label_counts(labels // N_VASO, N_FLUID) / k
    pv = label_counts(labels % N_VASO, N_VASO) / k
    return (pf[:, :, None] * pv[:, None, :]).reshape(len(labels), N_ACTIONS)


class KnnBehaviour:
    """kNN behaviour policy over the 25 joint actions (``kind="joint"``) or factored (``"factored"``).

    Parameters: ``n_neighbors`` (K), ``kind``, ``chunk_rows`` (queries per neighbour search block).
    After ``fit``: ``k_`` (the K used: min(K, rows)), ``n_fit_``, ``classes_seen_``.
    """

    def __init__(self, n_neighbors: int = 100, kind: Kind = "joint", chunk_rows: int = 8192,
                 progress: bool | None = None):
        if n_neighbors < 1:
            raise InputError(f"KnnBehaviour: n_neighbors must be >= 1, got {n_neighbors}")
        if kind not in ("joint", "factored"):
            raise InputError(f"KnnBehaviour: kind must be 'joint' or 'factored', got {kind!r}")
        self.n_neighbors = n_neighbors
        self.kind = kind
        self.chunk_rows = chunk_rows
        self.progress = progress

    def fit(self, X, y, where: str = "behaviour fit data") -> "KnnBehaviour":
        from sklearn.neighbors import NearestNeighbors

        X = _check_X(X, where)
        y = check_actions(y, where)
        if len(X) != len(y):
            raise InputError(f"{where}: {len(X)} state rows but {len(y)} actions")
        if len(X) == 0:
            raise InputError(f"{where}: no rows to fit the behaviour policy on")
        self.k_ = min(self.n_neighbors, len(X))
        if self.k_ < self.n_neighbors:
            log.warning("%s: only %d rows, kNN uses K=%d instead of %d", where, len(X), self.k_, self.n_neighbors)
        self.n_fit_ = len(X)
        self.dim_ = X.shape[1]
        self.y_ = y
        self.classes_seen_ = np.unique(y)
        self.classes_ = np.arange(N_ACTIONS)
        self._nn = NearestNeighbors(n_neighbors=self.k_, metric="euclidean").fit(X)
        return self

    def _check_fitted(self):
        if not hasattr(self, "_nn"):
            raise InputError("KnnBehaviour: call fit before predict_proba")

    def neighbour_labels(self, X) -> np.ndarray:
        """Logged actions of the K nearest fit rows of each query row: (n, K) int64."""
        from ..progress import Progress

        self._check_fitted()
        X = _check_X(X, "behaviour query states")
        if X.shape[1] != self.dim_:
            raise InputError(f"behaviour query states have {X.shape[1]} dims, the fit data had {self.dim_}")
        out = np.empty((len(X), self.k_), dtype=np.int64)
        starts = range(0, len(X), self.chunk_rows)
        quiet = self.progress is False or len(starts) < 2
        for s in Progress(starts, desc="evaluate: kNN behaviour", unit="blocks", logger="adrl.ope",
                          enabled=False if quiet else None, work=self.chunk_rows, work_unit="rows"):
            idx = self._nn.kneighbors(X[s:s + self.chunk_rows], return_distance=False)
            out[s:s + self.chunk_rows] = self.y_[idx]
        return out

    def predict_proba(self, X) -> np.ndarray:
        """(n, 25) action probabilities; every column present, rows sum to one."""
        labels = self.neighbour_labels(X)
        return joint_proba(labels) if self.kind == "joint" else factored_proba(labels)

    def predict_proba_both(self, X) -> dict[str, np.ndarray]:
        """Joint and factored probabilities from one neighbour search: {'joint': .., 'factored': ..}."""
        labels = self.neighbour_labels(X)
        return {"joint": joint_proba(labels), "factored": factored_proba(labels)}

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


def behaviour_metrics(proba: np.ndarray, y: np.ndarray, bins: int = 10) -> dict:
    """Accuracy and calibration of a behaviour model on logged actions ``y``.

    Returns top-1 / top-5 accuracy, mean probability of the logged action, the share of logged actions
    given probability 0 (outside the model's support), log loss (over rows with p > 0), top-label ECE
    with its reliability table, and the class-wise (all 25 columns) ECE with its reliability table.
    """
    proba = np.asarray(proba, dtype=np.float64)
    y = check_actions(y, "behaviour metrics labels")
    n = len(y)
    if proba.shape != (n, N_ACTIONS):
        raise InputError(f"behaviour metrics: probabilities of shape {proba.shape}, expected ({n}, {N_ACTIONS})")
    p_logged = proba[np.arange(n), y]
    # rank of the logged action (ties broken by the stable column order, as argsort does)
    top5 = np.argsort(-proba, axis=1, kind="stable")[:, :5]
    top1 = top5[:, 0]
    pos = p_logged > 0
    edges = np.linspace(0, 1, bins + 1)

    def reliability(conf, correct):
        b = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
        cnt = np.bincount(b, minlength=bins)
        sc = np.bincount(b, weights=conf, minlength=bins)
        sa = np.bincount(b, weights=correct.astype(float), minlength=bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            mc, ma = sc / cnt, sa / cnt
        ece = float(np.sum(np.abs(sa - sc)) / max(len(conf), 1))
        table = [{"lo": float(edges[i]), "hi": float(edges[i + 1]), "n": int(cnt[i]),
                  "confidence": float(mc[i]) if cnt[i] else None,
                  "accuracy": float(ma[i]) if cnt[i] else None} for i in range(bins)]
        return ece, table

    ece_top, rel_top = reliability(proba[np.arange(n), top1], top1 == y)
    onehot = np.zeros_like(proba, dtype=bool)
    onehot[np.arange(n), y] = True
    ece_cls, rel_cls = reliability(proba.ravel(), onehot.ravel())
    return {
        "n": int(n),
        "top1": float(np.mean(top1 == y)),
        "top5": float(np.mean((top5 == y[:, None]).any(axis=1))),
        "mean_p_logged": float(p_logged.mean()),
        "zero_p_logged_share": float(1 - pos.mean()),
        "log_loss_nonzero": float(-np.mean(np.log(p_logged[pos]))) if pos.any() else None,
        "ece_top1": ece_top,
        "ece_classwise": ece_cls,
        "reliability_top1": rel_top,
        "reliability_classwise": rel_cls,
    }
