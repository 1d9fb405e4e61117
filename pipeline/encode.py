"""Stage `encode`: fit the AIS encoder on train, write the states of every split (method.md section 2).

deps: data/processed/trajectories.parquet   outs: data/processed/states.parquet, models/ais/
metrics: reports/metrics/encode.json        plots: reports/plots/ais_loss.csv
"""
from __future__ import annotations

import logging

import pandas as pd
import pyarrow.parquet as pq

from adrl import paths
from adrl.ais.data import REQUIRED_COLUMNS
from adrl.ais.encoder import states_table
from adrl.ais.figures import loss_figure, vs_naive_figure
from adrl.ais.train import fit_encoder, torch_settings
from adrl.errors import InputError
from adrl.io import atomic_path, write_parquet
from adrl.schemas import SPLITS, require_columns
from pipeline._common import run_stage, write_metrics

log = logging.getLogger("adrl.ais")

LOSS_CSV = paths.PLOTS / "ais_loss.csv"
METRICS = paths.METRICS / "encode.json"
FIG_LOSS = paths.FIGURES / "ais_loss.png"
FIG_NAIVE = paths.FIGURES / "ais_vs_naive.png"


def read_trajectories(path=paths.TRAJECTORIES) -> pd.DataFrame:
    if not path.exists():
        raise InputError(f"{path}: trajectory table not found (run the cohort stage, or write one in the "
                         "contract of adrl/schemas.py TRAJECTORY_COLUMNS)")
    require_columns(pq.read_schema(path).names, REQUIRED_COLUMNS, str(path))
    return pd.read_parquet(path, columns=list(REQUIRED_COLUMNS))


def main(cfg, run) -> None:
    p = cfg.ais
    df = read_trajectories()
    fit = fit_encoder(df, p, where=str(paths.TRAJECTORIES), require_splits=SPLITS)
    with torch_settings(p.threads):
        states = fit.encoder.encode_trajectories(df, where=str(paths.TRAJECTORIES))
    fit.encoder.save(paths.AIS_MODEL, normalization=paths.COHORT_ARTIFACTS / "normalization.json")
    write_parquet(paths.STATES, states_table(states))
    log.info("wrote %s (%d rows, d=%d) and %s", paths.STATES, len(states), fit.encoder.latent_dim, paths.AIS_MODEL)

    with atomic_path(LOSS_CSV) as tmp:
        fit.history.to_csv(tmp, index=False, float_format="%.6g")
    m = fit.metrics
    write_metrics(METRICS, {k: m[k] for k in ("best_epoch", "epochs_run", "val_nll", "train_nll", "naive_val_nll",
                                           "val_nll_ratio_to_naive", "val_mse", "naive_val_mse", "beats_naive",
                                           "seconds", "seconds_per_epoch", "n_stays", "n_transitions", "converged",
                                           "max_epochs", "patience")})
    figs = {FIG_LOSS: loss_figure(fit.history, m), FIG_NAIVE: vs_naive_figure(fit.per_feature, m)}
    for path, fig in figs.items():
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")

    run.log_metric_series("ais_train_nll", fit.history["train_nll"], fit.history["epoch"])
    run.log_metric_series("ais_val_nll", fit.history["val_nll"], fit.history["epoch"])
    run.log_metrics({k: v for k, v in m.items() if not isinstance(v, (dict, bool))})
    run.log_metrics({"beats_naive": float(m["beats_naive"])})
    run.set_tags({"adrl.ais.best_epoch": m["best_epoch"], "adrl.ais.converged": m["converged"]})
    run.log_table(fit.per_feature, "ais/per_feature_val_mse.json")
    for path, fig in figs.items():
        run.log_figure(fig, f"figures/{path.name}")
    run.log_artifact(LOSS_CSV, "plots")
    run.log_artifact(METRICS, "metrics")
    for f in sorted(paths.AIS_MODEL.iterdir()):   # weights, config, training metadata (no patient rows)
        run.log_artifact(f, "models/ais")


if __name__ == "__main__":
    run_stage("encode", main, params_of=lambda cfg: {"ais": cfg.ais.model_dump()})
