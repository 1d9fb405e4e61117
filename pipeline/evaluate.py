"""Stage `evaluate`: behaviour policy, validation WIS / ESS of every checkpoint, selection, test (method.md 5).

deps: data/processed/states.parquet, models/train     params: evaluate
metrics: reports/metrics/evaluate.json, reports/metrics/test_table.json
plots: reports/plots/pareto_<algorithm>.csv           outs: reports/selected.json, reports/figures/{pareto,
behaviour_calibration}.png
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import get_args

import pandas as pd
import pyarrow.parquet as pq

from adrl import paths
from adrl.errors import InputError
from adrl.io import atomic_path, write_json
from adrl.ope import workflow as wf
from adrl.ope.plots import calibration_figure, pareto_figure
from adrl.rl.params import Algorithm
from adrl.rl.valuecheck import NOT_CONVERGED
from adrl.schemas import STATES_DECISION_COLUMNS
from pipeline._common import run_stage

log = logging.getLogger("adrl.ope")

MODELS_TRAIN = paths.MODELS / "train"
EVALUATE_JSON = paths.METRICS / "evaluate.json"
TEST_TABLE = paths.METRICS / "test_table.json"
SELECTED = paths.REPORTS / "selected.json"
FIG_PARETO = paths.FIGURES / "pareto.png"
FIG_CALIB = paths.FIGURES / "behaviour_calibration.png"


def read_states(path: Path = paths.STATES) -> pd.DataFrame:
    if not path.exists():
        raise InputError(f"{path}: states table not found (run the encode stage, or write one in the states "
                         "contract of adrl/schemas.py)")
    names = pq.read_schema(path).names
    cols = ["icustay_id", "step", "split", *STATES_DECISION_COLUMNS, *[c for c in names if c.startswith("z_")]]
    return pd.read_parquet(path, columns=[c for c in cols if c in names])


def rl_api():
    """(list_runs, greedy_matrix) of the trained runs; a seam the stage tests replace."""
    from adrl.rl.policy import greedy_matrix, list_runs

    return list_runs, greedy_matrix


def metric_key(*parts: str) -> str:
    """MLflow metric names allow [A-Za-z0-9_-. /]: 'adbcq[linear,aug]' -> 'adbcq_linear_aug'."""
    return ".".join(parts).replace("[", "_").replace("]", "").replace(",", "_")


def write_outputs(out: dict, s: dict, run) -> None:
    write_json(EVALUATE_JSON, s)
    write_json(TEST_TABLE, out["table"])
    write_json(SELECTED, {n: {k: c[k] for k in ("run_id", "step", "algorithm", "variant", "mixer", "augment", "tau",
                                                 "seed", "flagged")} for n, c in out["chosen"].items()})
    sc = out["scores"]
    cols = ["run_id", "algorithm", "variant", "mixer", "augment", "tau", "seed", "step", "wis", "ess", "is",
            "max_weight_share", "n_positive", "agreement", "frontier", "selected_variant", "selected"]
    # one file per algorithm the project knows (a fixed set of DVC plot outputs); header only when that
    # algorithm was not trained in this sweep
    for alg in sorted(set(get_args(Algorithm)) | set(sc["algorithm"])):
        with atomic_path(paths.PLOTS / f"pareto_{alg}.csv") as tmp:
            sc.loc[sc["algorithm"] == alg, cols].to_csv(tmp, index=False, float_format="%.6g")
    figs = {FIG_PARETO: pareto_figure(sc, out["selection"]["cutoff"]),
            FIG_CALIB: calibration_figure(out["behaviour"])}
    for path, fig in figs.items():
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)

    for name, sel in s["selected"].items():
        for split in ("validation", "test"):
            r = sel[split]
            # one key scheme with the split names of the data: val.<policy>.wis, test.<policy>.wis
            run.log_metrics({metric_key(split.replace("validation", "val"), name, k): r[k]
                             for k in ("wis", "ess", "pdwis", "agreement")
                             if isinstance(r.get(k), (int, float))})
    for split in ("val", "test"):
        run.log_metrics({f"{split}.clinician.wis": s["clinician"][split]["wis"]})
    for split, fits in s["behaviour"].items():
        for fit, kinds in fits.items():
            for kind, m in kinds.items():
                run.log_metrics({f"behaviour.{split}.{fit}.{kind}.{k}": m[k] for k in ("top1", "top5", "ece_top1")})
    n_flagged = sum(c["flagged"] for c in out["chosen"].values())
    run.log_metrics({"n_candidates": float(len(sc)), "n_flagged": float(n_flagged)})
    run.log_table(wf.table_frame(out["table"]), "ope/test_table.json")
    run.log_dict(out["table"], "ope/test_table_full.json")
    for path in (EVALUATE_JSON, SELECTED):
        run.log_artifact(path, "ope")
    for path, fig in figs.items():
        run.log_figure(fig, f"figures/{path.name}")
    for f in sorted(paths.PLOTS.glob("pareto_*.csv")):
        run.log_artifact(f, "plots")
    import matplotlib.pyplot as plt

    for fig in figs.values():
        plt.close(fig)


def ground_truth(cfg, chosen: dict) -> dict:
    """True values (simulator roll-outs, common random numbers) of the clinician, of no treatment and of every
    selected policy, acting through the cohort featuriser and the AIS encoder. Synthetic source only."""
    import json

    from adrl.ais.encoder import AisEncoder
    from adrl.cohort.featurize import Featurizer
    from adrl.groundtruth import true_value
    from adrl.rl.policy import Policy

    t = cfg.evaluate.truth
    fz = Featurizer.load(cfg.cohort, paths.COHORT_ARTIFACTS)
    enc = AisEncoder.load(paths.AIS_MODEL)
    edges = json.loads((paths.COHORT_ARTIFACTS / "action_edges.json").read_text())
    truths: dict = {}
    for name in ("clinician", "no_treatment"):
        truths[name] = true_value(name, t.n_patients, t.seed, cfg.synth)
        log.info("true value %-22s %6.2f +- %.2f", name, truths[name]["value"], truths[name]["se"])
    done: dict = {}
    for name, c in chosen.items():
        key = (c["run_id"], c["step"])
        if key not in done:
            pol = Policy.load(MODELS_TRAIN / "runs" / c["run_id"], step=c["step"])
            done[key] = true_value(pol.greedy, t.n_patients, t.seed, cfg.synth, fz, enc, edges)
        truths[name] = {**done[key], "run_id": c["run_id"], "step": c["step"]}
        log.info("true value %-22s %6.2f +- %.2f (dose recovery %.3f)", name, truths[name]["value"],
                 truths[name]["se"], truths[name]["dose_recovery"] or float("nan"))
    return truths


def carry_value_checks(chosen: dict) -> None:
    """Each selected checkpoint's convergence check (train stage, adrl/rl/valuecheck.py) as chosen[name]["value_check"]."""
    from adrl.rl.valuecheck import checkpoint_check

    for name, c in chosen.items():
        c["value_check"] = checkpoint_check(MODELS_TRAIN / "runs" / c["run_id"], c["step"])
        if c["value_check"] and not c["value_check"]["converged"]:
            log.warning("%s (%s step %d): value check ratio %.2f: %s", name, c["run_id"], c["step"],
                        c["value_check"]["ratio"], NOT_CONVERGED)


def export_models(chosen: dict, run) -> None:
    """The selected policies as MLflow models, registered as adrl-<algorithm>."""
    from adrl.tracking import log_policy_model

    for name in ("bcq", "factored_bcq", "adbcq"):
        c = chosen.get(name)
        if c is not None:
            log_policy_model(run, MODELS_TRAIN / "runs" / c["run_id"], c["step"], name=f"policy-{name}",
                             registered_name=f"adrl-{name}", description=f"{c['variant']} tau={c['tau']} "
                             f"seed={c['seed']} step={c['step']}")


def main(cfg, run) -> None:
    p = cfg.evaluate
    states = read_states()
    list_runs, greedy_matrix = rl_api()
    runs = list_runs(MODELS_TRAIN)
    log.info("evaluating %d run(s) from %s", len(runs), MODELS_TRAIN)
    out = wf.run_evaluation(p, states, runs, greedy_matrix, where=str(paths.STATES))
    carry_value_checks(out["chosen"])
    s = wf.stage_summary(out, p)
    s["warnings"] += [f"{n}: value check ratio {c['value_check']['ratio']:.2f} outside [0.8, 1.25]: {NOT_CONVERGED}"
                      for n, c in out["chosen"].items() if c.get("value_check") and not c["value_check"]["converged"]]
    if cfg.source.kind == "synthetic" and p.truth.n_patients > 0:
        truths = ground_truth(cfg, out["chosen"])
        out["table"] = wf.with_true_values(out["table"], {r["policy"]: truths[r["policy"]]
                                                          for r in out["table"]["rows"] if r["policy"] in truths})
        s["truth"] = truths
        run.log_metrics({metric_key("truth", k, "value"): v["value"] for k, v in truths.items()})
    else:
        s["truth"] = None
        log.info("no simulator truth: source.kind is %s", cfg.source.kind)
    write_outputs(out, s, run)
    export_models(out["chosen"], run)
    for name, c in out["chosen"].items():
        if c["flagged"]:
            log.warning("%s: selection flagged (no frontier point reaches the ESS cutoff)", name)
    for r in out["table"]["rows"]:
        lo, hi = (v if v is not None else float("nan") for v in (r["wis_ci"] or [None, None]))
        log.info("test %-13s WIS %6.2f (%.2f, %.2f)  ESS %7.1f  agreement %.3f", r["policy"],
                 r["wis"] if r["wis"] is not None else float("nan"), lo, hi, r["ess"], r["agreement"])


if __name__ == "__main__":
    run_stage("evaluate", main, params_of=lambda cfg: {"evaluate": cfg.evaluate.model_dump()})
