"""Figures of the `encode` stage: loss curves and the AIS against the carry-forward baseline."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter


def loss_figure(history: pd.DataFrame, metrics: dict) -> Figure:
    fig = Figure(figsize=(6.4, 4.0), dpi=110)
    ax = fig.add_subplot()
    ax.plot(history["epoch"], history["train_nll"], label="train NLL")
    ax.plot(history["epoch"], history["val_nll"], label="validation NLL")
    ax.axhline(metrics["naive_val_nll"], color="grey", ls="--", label="carry-forward (validation)")
    ax.axvline(metrics["best_epoch"], color="k", ls=":", lw=1, label=f"best epoch {metrics['best_epoch']}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(r"NLL per transition  $\frac{1}{2}\|o_{t+1} - \hat{o}_{t+1}\|^2$")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0, 7.0), numticks=12))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title("AIS encoder: next-observation NLL")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def vs_naive_figure(per_feature: pd.DataFrame, metrics: dict) -> Figure:
    # horizontal bars, one row per observation, so that the 33 names are readable at the report's width
    fig = Figure(figsize=(10, 0.24 * len(per_feature) + 1.6), dpi=110)
    gs = fig.add_gridspec(1, 3)
    ax0 = fig.add_subplot(gs[0, 0])
    vals = [metrics["val_nll"], metrics["naive_val_nll"]]
    ax0.bar(["AIS", "carry\nforward"], vals, color=["tab:blue", "tab:grey"])
    for i, v in enumerate(vals):
        ax0.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=10)
    ax0.set_ylabel("validation NLL per transition", fontsize=10)
    ax0.tick_params(labelsize=10)
    ax0.set_title("overall")
    ax1 = fig.add_subplot(gs[0, 1:])
    pos = np.arange(len(per_feature))[::-1]
    ax1.barh(pos + 0.2, per_feature["ais_val_mse"], 0.4, label="AIS", color="tab:blue")
    ax1.barh(pos - 0.2, per_feature["naive_val_mse"], 0.4, label="carry forward", color="tab:grey")
    ax1.set_yticks(pos, [f.removeprefix("o:") for f in per_feature["feature"]], fontsize=10)
    ax1.set_ylim(-0.7, len(per_feature) - 0.3)
    ax1.set_xlabel("validation MSE (normalised units)", fontsize=10)
    ax1.set_title("per observation")
    ax1.legend(fontsize=10, loc="lower right")
    fig.tight_layout()
    return fig
