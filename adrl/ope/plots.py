"""Figures of the evaluate stage: Pareto fronts and behaviour-model calibration (matplotlib, Agg)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pareto_figure(scores: pd.DataFrame, cutoff: float):
    """One panel per selection group: every candidate's validation (ESS, WIS), the frontier, the cutoff
    and the selected point (star; red when flagged)."""
    plt = _plt()
    groups = sorted(scores["variant"].unique())
    n = len(groups)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False)
    for ax, g in zip(axes.ravel(), groups):
        d = scores[scores["variant"] == g]
        ok = np.isfinite(d["wis"].to_numpy())
        ax.scatter(d["ess"][ok], d["wis"][ok], s=6, c="0.7", label=f"candidates ({ok.sum()})")
        f = d[d["frontier"]].sort_values("ess")
        ax.plot(f["ess"], f["wis"], "-o", ms=3, c="C0", label=f"frontier ({len(f)})")
        ax.axvline(cutoff, ls="--", c="C3", lw=1, label=f"ESS cutoff {cutoff:.0f}")
        s = d[d["selected_variant"]]
        if len(s):
            ax.scatter(s["ess"], s["wis"], marker="*", s=160, c="C1", zorder=5, edgecolors="k",
                       label=f"selected: step {int(s['step'].iloc[0])}")
        ax.set_title(g, fontsize=10)
        ax.set_xlabel("validation ESS")
        ax.set_ylabel("validation WIS")
        ax.legend(fontsize=7, loc="lower left")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def calibration_figure(metrics: dict):
    """Top-label reliability diagrams of the kNN behaviour models, one panel per (split, fit);
    joint and factored in each panel, top-1 / top-5 accuracy and ECE in the legend."""
    plt = _plt()
    panels = [(split, fit) for split, fits in metrics.items() for fit in fits]
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.0 * rows), squeeze=False)
    for ax, (split, fit) in zip(axes.ravel(), panels):
        ax.plot([0, 1], [0, 1], c="0.6", lw=1)
        for kind, m in metrics[split][fit].items():
            rel = [b for b in m["reliability_top1"] if b["n"]]
            ax.plot([b["confidence"] for b in rel], [b["accuracy"] for b in rel], "-o", ms=3,
                    label=f"{kind}: top-1 {m['top1']:.2f}, top-5 {m['top5']:.2f}, ECE {m['ece_top1']:.3f}")
        ax.set_title(f"{split} split, {fit.replace('_', '-')} kNN (n={next(iter(metrics[split][fit].values()))['n']})",
                     fontsize=9)
        ax.set_xlabel("predicted probability of top action")
        ax.set_ylabel("observed frequency")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


AUDIT_ESTIMATORS = ("wis", "pdwis", "fqe", "wdr")


def audit_figure(points: pd.DataFrame, audit: dict | None = None):
    """The selection audit: one panel per estimator, each candidate's validation estimate against its true
    value (simulator roll-out), coloured by algorithm, with the identity line and the Spearman correlation."""
    plt = _plt()
    est = [e for e in AUDIT_ESTIMATORS if e in points]
    fig, axes = plt.subplots(1, len(est), figsize=(3.8 * len(est), 3.6), squeeze=False)
    algs = sorted(points["algorithm"].unique())
    colours = dict(zip(algs, plt.cm.tab10.colors))
    lo = np.nanmin(points[["true_value", *est]].to_numpy(np.float64))
    hi = np.nanmax(points[["true_value", *est]].to_numpy(np.float64))
    for ax, e in zip(axes[0], est):
        for alg in algs:
            d = points[points["algorithm"] == alg]
            ax.scatter(d["true_value"], d[e], s=14, alpha=0.75, color=colours[alg], label=alg)
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, ls="--")
        r = (audit or {}).get(e, {})
        title = e.upper()
        if r:
            title += f"  (Spearman {r['spearman']:.2f}, regret {r['regret']:.1f})"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("true value (simulator)")
        ax.set_ylabel(f"validation {e}")
    axes[0][0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig
