"""Figures of the `encode` stage: loss curves and the AIS against the carry-forward baseline."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def loss_figure(history: pd.DataFrame, metrics: dict) -> Figure:
    fig = Figure(figsize=(6.4, 4.0), dpi=110)
    ax = fig.add_subplot()
    ax.plot(history["epoch"], history["train_nll"], label="train NLL")
    ax.plot(history["epoch"], history["val_nll"], label="validation NLL")
    ax.axhline(metrics["naive_val_nll"], color="grey", ls="--", label="carry-forward (validation)")
    ax.axvline(metrics["best_epoch"], color="k", ls=":", lw=1, label=f"best epoch {metrics['best_epoch']}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("NLL per transition  (½‖o_{t+1} − ô_{t+1}‖²)")
    ax.set_yscale("log")
    ax.set_title("AIS encoder: next-observation NLL")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def vs_naive_figure(per_feature: pd.DataFrame, metrics: dict) -> Figure:
    fig = Figure(figsize=(10, 4.2), dpi=110)
    gs = fig.add_gridspec(1, 4)
    ax0 = fig.add_subplot(gs[0, 0])
    vals = [metrics["val_nll"], metrics["naive_val_nll"]]
    ax0.bar(["AIS", "carry\nforward"], vals, color=["tab:blue", "tab:grey"])
    for i, v in enumerate(vals):
        ax0.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax0.set_ylabel("validation NLL per transition")
    ax0.set_title("overall")
    ax1 = fig.add_subplot(gs[0, 1:])
    pos = np.arange(len(per_feature))
    ax1.bar(pos - 0.2, per_feature["ais_val_mse"], 0.4, label="AIS", color="tab:blue")
    ax1.bar(pos + 0.2, per_feature["naive_val_mse"], 0.4, label="carry forward", color="tab:grey")
    ax1.set_xticks(pos, [f.removeprefix("o:") for f in per_feature["feature"]], rotation=90, fontsize=7)
    ax1.set_ylabel("validation MSE (normalised units)")
    ax1.set_title("per observation")
    ax1.legend(fontsize=8)
    fig.tight_layout()
    return fig
