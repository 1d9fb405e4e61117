"""Stage `evaluate`: behaviour policy, validation WIS / ESS of every checkpoint, selection, test (method.md 5).

deps: data/processed/states.parquet, models/train     params: evaluate
metrics: reports/metrics/evaluate.json, reports/metrics/test_table.json
plots: reports/plots/pareto_<algorithm>.csv, reports/plots/audit.csv   outs: reports/selected.json,
reports/figures/{pareto, behaviour_calibration}.png

Validation WIS / ESS of every checkpoint; FQE (fitted on train) and WDR of a subset (each run's final
checkpoint, the WIS rule's picks, evenly spaced others: evaluate.fqe.candidates); selection by
evaluate.select_by; test estimates with bootstrap CIs. On the synthetic source: the true value of each selected
policy and, for the audit, of evaluate.audit.candidates FQE'd checkpoints, and each estimator's Spearman
correlation, regret and top-5 precision against the truth. The selected policies are registered with their
flags; only an unflagged one becomes `champion`.
"""
from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from adrl import paths
from adrl.errors import InputError
from adrl.executor import make_executor
from adrl.groundtruth import Rollouts
from adrl.io import atomic_path, write_json
from adrl.ope import workflow as wf
from adrl.ope.plots import calibration_figure, pareto_figure
from adrl.rl.params import Algorithm
from adrl.rl.valuecheck import NOT_CONVERGED
from adrl.schemas import STATES_DECISION_COLUMNS, STATES_ID_COLUMNS
from pipeline._common import run_stage

log = logging.getLogger("adrl.ope")

MODELS_TRAIN = paths.MODELS / "train"
EVALUATE_JSON = paths.METRICS / "evaluate.json"
TEST_TABLE = paths.METRICS / "test_table.json"
MODEL_CHECK = paths.METRICS / "model_check.json"
SELECTED = paths.REPORTS / "selected.json"
AUDIT_CSV = paths.PLOTS / "audit.csv"
AUDIT_COLUMNS = ["run_id", "algorithm", "variant", "tau", "seed", "step", "wis", "ess", "pdwis", "fqe", "wdr",
                 "combined", "fqe_converged", "true_value", "true_value_se"]
FIG_PARETO = paths.FIGURES / "pareto.png"
FIG_CALIB = paths.FIGURES / "behaviour_calibration.png"


def read_states(path: Path = paths.STATES) -> pd.DataFrame:
    if not path.exists():
        raise InputError(f"{path}: states table not found (run the encode stage, or write one in the states "
                         "contract of adrl/schemas.py)")
    names = pq.read_schema(path).names
    cols = [*STATES_ID_COLUMNS, *STATES_DECISION_COLUMNS, *[c for c in names if c.startswith("z_")]]
    return pd.read_parquet(path, columns=[c for c in cols if c in names])


def rl_api():
    """(list_runs, greedy_matrix) of the trained runs; a seam the stage tests replace."""
    from adrl.rl.policy import greedy_matrix, list_runs

    return list_runs, greedy_matrix


def fqe_api(cfg, states: pd.DataFrame, runs, greedy_fn):
    """``fqe_fn(candidates, z)`` for :func:`adrl.ope.workflow.run_evaluation`: FQE fitted on the train split."""
    from adrl.rl.data import transitions
    from adrl.rl.fqe import FQEConfig, fqe_checkpoints

    f = cfg.evaluate.fqe
    fc = FQEConfig(steps=f.steps, batch_size=f.batch_size, lr=f.lr, hidden=f.hidden, layers=f.layers,
                   target_every=f.target_every, gamma=f.gamma, r_max=cfg.train.r_max, clip_values=f.clip_values,
                   tol=f.tol,
                   trend_window=f.trend_window, seed=f.seed)
    train = transitions(states, "train", where=str(paths.STATES))
    return lambda cands, z: fqe_checkpoints(cands, runs, greedy_fn, train, z, fc)


def metric_key(*parts: str) -> str:
    """MLflow metric names allow [A-Za-z0-9_-. /]: 'adbcq[linear,aug]' -> 'adbcq_linear_aug'."""
    return ".".join(parts).replace("[", "_").replace("]", "").replace(",", "_")


def write_outputs(out: dict, s: dict, run, audit_points: pd.DataFrame | None = None) -> None:
    from adrl.ope.plots import audit_figure

    write_json(EVALUATE_JSON, s)
    write_json(TEST_TABLE, out["table"])
    write_json(SELECTED, {n: {k: c.get(k) for k in ("run_id", "step", "algorithm", "variant", "mixer", "augment",
                                                     "tau", "seed", "flagged", "fqe_converged")}
                          for n, c in out["chosen"].items()})
    sc = out["scores"]
    cols = ["run_id", "algorithm", "variant", "mixer", "augment", "tau", "seed", "step", "wis", "ess", "is",
            "max_weight_share", "n_positive", "agreement", "frontier", "selected_variant", "selected"]
    cols += [c for c in ("pdwis", "fqe", "wdr", "combined", "fqe_converged", "fqe_drift", "fqe_td_rmse") if c in sc]
    points = audit_points if audit_points is not None else pd.DataFrame(columns=AUDIT_COLUMNS)
    with atomic_path(AUDIT_CSV) as tmp:  # header only when no audit ran (a real source, or the audit off)
        points.to_csv(tmp, index=False, float_format="%.6g")
    # one file per algorithm the project knows (a fixed set of DVC plot outputs); header only when that
    # algorithm was not trained in this sweep
    for alg in sorted(set(get_args(Algorithm)) | set(sc["algorithm"])):
        with atomic_path(paths.PLOTS / f"pareto_{alg}.csv") as tmp:
            sc.loc[sc["algorithm"] == alg, cols].to_csv(tmp, index=False, float_format="%.6g")
    figs = {FIG_PARETO: pareto_figure(sc, out["selection"]["cutoff"]),
            FIG_CALIB: calibration_figure(out["behaviour"])}
    extra_figs = {}
    if len(points):
        extra_figs["audit.png"] = audit_figure(points, s.get("audit"))
    for path, fig in figs.items():
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)

    for name, sel in s["selected"].items():
        for split in ("validation", "test"):
            r = sel[split]
            # one key scheme with the split names of the data: val.<policy>.wis, test.<policy>.wis
            run.log_metrics({metric_key(split.replace("validation", "val"), name, k): r[k]
                             for k in ("wis", "ess", "pdwis", "fqe", "wdr", "agreement")
                             if isinstance(r.get(k), (int, float))})
    run.log_metrics(table_metrics(out["table"]))
    run.log_parent_metrics(table_metrics(out["table"]))   # pipeline executions compare at the top level
    for e, r in (s.get("audit") or {}).items():
        run.log_metrics({f"audit.{e}.{k}": r[k] for k in ("spearman", "regret", "top5_precision")})
    fq = out.get("fqe")
    if fq is not None:
        run.log_metrics({"fqe.n_candidates": float(len(out["fqe_candidates"])),
                         "fqe.n_converged": float(np.sum(fq["convergence"]["converged"]))})
        for j, step in enumerate(fq["history"]["steps"]):  # the fit's trend: mean over candidates
            run.log_metrics({"fqe.start_value_mean": float(np.mean(fq["history"]["value"][j])),
                             "fqe.td_rmse_mean": float(np.mean(fq["history"]["td_rmse"][j]))}, step=step)
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
    for name, fig in extra_figs.items():
        run.log_figure(fig, f"figures/{name}")
    for f in [*sorted(paths.PLOTS.glob("pareto_*.csv")), AUDIT_CSV]:
        run.log_artifact(f, "plots")
    import matplotlib.pyplot as plt

    for fig in [*figs.values(), *extra_figs.values()]:
        plt.close(fig)


def truth_tools(cfg):
    """(featuriser, AIS encoder, action edges) for simulator roll-outs of learned policies."""
    import json

    from adrl.ais.encoder import AisEncoder
    from adrl.cohort.featurize import Featurizer

    return (Featurizer.load(cfg.cohort, paths.COHORT_ARTIFACTS), AisEncoder.load(paths.AIS_MODEL),
            json.loads((paths.COHORT_ARTIFACTS / "action_edges.json").read_text()))


def checkpoint_policies(keys) -> dict:
    """{"<run_id>@<step>": greedy policy} of checkpoints (run_id, step)."""
    from adrl.rl.policy import Policy

    return {f"{rid}@{int(step)}": Policy.load(MODELS_TRAIN / "runs" / rid, step=int(step)).greedy
            for rid, step in dict.fromkeys((str(r), int(s)) for r, s in keys)}


def rollouts_of(cfg, tools=None, rollouts=None):
    """The roll-outs' runner (adrl/groundtruth.py Rollouts): ``rollouts`` if given, else one in this process."""
    return rollouts if rollouts is not None else Rollouts(cfg.synth, tools or truth_tools(cfg))


def ground_truth(cfg, chosen: dict, tools=None, rollouts=None) -> dict:
    """True values (simulator roll-outs, common random numbers) of the clinician, of no treatment and of every
    selected policy, acting through the cohort featuriser and the AIS encoder. Synthetic source only. ``rollouts``
    (adrl.groundtruth.Rollouts): where the roll-outs run (default: in this process)."""
    t = cfg.evaluate.truth
    pols = checkpoint_policies((c["run_id"], c["step"]) for c in chosen.values())
    done = rollouts_of(cfg, tools, rollouts).true_values({"clinician": "clinician", "no_treatment": "no_treatment",
                                                          **pols}, t.n_patients, t.seed)  # each checkpoint once
    truths: dict = {}
    for name in ("clinician", "no_treatment"):
        truths[name] = done[name]
        log.info("true value %-22s %6.2f +- %.2f", name, truths[name]["value"], truths[name]["se"])
    for name, c in chosen.items():
        truths[name] = {**done[f"{c['run_id']}@{c['step']}"], "run_id": c["run_id"], "step": c["step"]}
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


def audit(cfg, out: dict, tools=None, rollouts=None) -> tuple[dict | None, dict, pd.DataFrame]:
    """The selection audit (synthetic source only): (audit {estimator: metrics} or None, audit_info, the
    candidates' points). On another source, or with the audit off, a clear message and nothing else."""
    a, t = cfg.evaluate.audit, cfg.evaluate.truth
    empty = pd.DataFrame(columns=AUDIT_COLUMNS)
    if a.candidates == 0 or a.n_patients == 0:
        return None, {"skipped": "evaluate.audit.candidates or n_patients is 0"}, empty
    if cfg.source.kind != "synthetic":
        msg = (f"evaluate.audit: source.kind is {cfg.source.kind}, which has no simulator truth: the audit is "
               "skipped and everything else runs (set evaluate.audit.candidates: 0 to silence this)")
        log.warning(msg)
        return None, {"skipped": msg}, empty
    sc = out["scores"]
    idx = wf.audit_candidates(sc, a.candidates)
    if len(idx) < 2:
        msg = "evaluate.audit: fewer than 2 FQE'd candidates (evaluate.fqe.candidates); the audit is skipped"
        log.warning(msg)
        return None, {"skipped": msg}, empty
    keys = list(zip(sc.loc[idx, "run_id"], sc.loc[idx, "step"]))
    log.info("audit: rolling out %d candidates on %d simulated patients each", len(idx), a.n_patients)
    tv = rollouts_of(cfg, tools, rollouts).true_values(checkpoint_policies(keys), a.n_patients, t.seed)
    truth = np.array([tv[f"{r}@{int(s)}"]["value"] for r, s in keys])
    se = np.array([tv[f"{r}@{int(s)}"]["se"] for r, s in keys])
    res = wf.run_audit(sc, idx, truth, out["selection"]["cutoff"])
    points = sc.loc[idx].assign(true_value=truth, true_value_se=se)[AUDIT_COLUMNS].reset_index(drop=True)
    info = {k: v for k, v in res.items() if k != "estimators"} | {"n_patients": a.n_patients, "seed": t.seed}
    for e, r in res["estimators"].items():
        log.info("audit %-9s Spearman %5.2f  regret %5.1f  top-5 precision %.1f", e, r["spearman"], r["regret"],
                 r["top5_precision"])
    log.info("audit winner on this world: %s (evaluate.select_by is %s)", res["winner"], cfg.evaluate.select_by)
    return res["estimators"], info, points


def model_checks(cfg, tools=None, rollouts: Rollouts | None = None) -> dict:
    """AD-BCQ's dynamics ensembles (models/train/dynamics/seed<k>) against the simulator's true sub-action
    effects (adrl/modelcheck.py): {"seed<k>": table} or {"skipped": why}. Synthetic source only. The simulated
    patients are the same for every ensemble: simulated once, as a unit of ``rollouts`` (default: this process)."""
    mc = cfg.evaluate.model_check
    if cfg.source.kind != "synthetic":
        return {"skipped": f"source.kind is {cfg.source.kind}, which has no simulator truth"}
    if mc.n_patients == 0:
        return {"skipped": "evaluate.model_check.n_patients is 0"}
    ensembles = sorted((MODELS_TRAIN / "dynamics").glob("seed*/ensemble.pt"))
    if not ensembles:
        return {"skipped": "no dynamics model in models/train (no AD-BCQ run with augmentation)"}
    import json

    from adrl.modelcheck import check_against, fit_readout, simulate_check
    from adrl.rl.train import load_dynamics

    if not paths.TRAJECTORIES.exists():
        raise InputError(f"{paths.TRAJECTORIES}: the model check reads the trajectory table (run the cohort stage)")
    readout = fit_readout(read_states_with_ids(), pd.read_parquet(paths.TRAJECTORIES),
                          json.loads((paths.COHORT_ARTIFACTS / "normalization.json").read_text()))
    runner = rollouts if rollouts is not None else Rollouts(cfg.synth, tools or truth_tools(cfg))
    simulated = runner.call(f"model check roll-out ({mc.n_patients} patients)", simulate_check, mc.n_patients,
                            cfg.evaluate.truth.seed, cfg.synth, mc.decision_bin)
    out = {}
    for path in ensembles:
        name = path.parent.name
        out[name] = check_against(load_dynamics(path).expected, readout, simulated)
        for flag in out[name]["flags"]:
            log.info("model check %s: sign disagreement: %s", name, flag)
    return out


def read_states_with_ids() -> pd.DataFrame:
    """The states table's ids, split and z columns (the model check's readout joins the trajectory table)."""
    names = pq.read_schema(paths.STATES).names
    return pd.read_parquet(paths.STATES, columns=["icustay_id", "step", "split", *[c for c in names
                                                                                  if c.startswith("z_")]])


def model_check_metrics(checks: dict) -> dict:
    """The model check as flat MLflow metrics: model_check.<seed>.<arm>.<model|sim|effect_model|effect_sim>.<key>."""
    m = {}
    for name, c in checks.items():
        if not isinstance(c, dict) or "arms" not in c:
            continue
        m[f"model_check.{name}.sign_disagreements"] = c["sign_disagreements"]
        m[f"model_check.{name}.sign_disagreements_clear"] = c["sign_disagreements_clear"]
        for row in c["arms"]:
            parts = {"model": row["model"], "sim": row["sim"]}
            if "effect_vs_noop" in row:
                parts |= {"effect_model": row["effect_vs_noop"]["model"], "effect_sim": row["effect_vs_noop"]["sim"]}
            for part, vals in parts.items():
                for k, v in vals.items():
                    if isinstance(v, (int, float)) and v is not None:
                        m[f"model_check.{name}.{row['arm']}.{part}.{k}"] = v
    return m


def promote(out: dict, s: dict, truths: dict | None, ess_cutoff: float) -> None:
    """Promotion flags of every row of the test table (in place): row["flags"], row["flagged"]."""
    clin = (truths or {}).get("clinician", {}).get("value")
    for r in out["table"]["rows"]:
        if r["policy"] == "clinician":
            continue
        r["flags"] = wf.promotion_flags(r, out["chosen"].get(r["policy"]), ess_cutoff, clin)
        r["flagged"] = bool(r["flags"])
        for f in r["flags"]:
            log.warning("%s: not promoted: %s", r["policy"], f)
        if r["policy"] in s["selected"]:
            s["selected"][r["policy"]]["flags"] = r["flags"]


def export_models(chosen: dict, table: dict, run) -> None:
    """The selected policies as MLflow models, registered as adrl-<algorithm> with tags ess, wis, fqe,
    converged, flagged (and true_value where the truth exists); alias `champion` only when unflagged."""
    from adrl.tracking import log_policy_model

    rows = {r["policy"]: r for r in table["rows"]}
    for name in ("bcq", "factored_bcq", "adbcq"):
        c = chosen.get(name)
        if c is None:
            continue
        r = rows.get(name, {})
        tags = {"ess": r.get("ess"), "wis": r.get("wis"), "fqe": r.get("fqe"), "wdr": r.get("wdr"),
                "converged": c.get("fqe_converged"), "flagged": bool(r.get("flagged", True)),
                "flags": "; ".join(r.get("flags", [])), "variant": c["variant"], "run_id": c["run_id"],
                "step": c["step"]}
        if r.get("true_value") is not None:
            tags["true_value"] = r["true_value"]
        log_policy_model(run, MODELS_TRAIN / "runs" / c["run_id"], c["step"], name=f"policy-{name}",
                         registered_name=f"adrl-{name}", description=f"{c['variant']} tau={c['tau']} "
                         f"seed={c['seed']} step={c['step']}" + (f"; flagged: {tags['flags']}" if tags["flagged"]
                                                                 else ""),
                         version_tags=tags, alias=None if tags["flagged"] else "champion")


def table_metrics(table: dict) -> dict:
    """The test table as flat metrics (test.<policy>.<estimate>) for the stage and the parent run."""
    out = {}
    for r in table["rows"]:
        for k in ("wis", "ess", "pdwis", "fqe", "wdr", "agreement", "true_value"):
            if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool):
                out[metric_key("test", r["policy"], k)] = r[k]
        if r["policy"] != "clinician":
            out[metric_key("test", r["policy"], "flagged")] = float(bool(r.get("flagged")))
    return out


def main(cfg, run) -> None:
    p = cfg.evaluate
    states = read_states()
    list_runs, greedy_matrix = rl_api()
    runs = list_runs(MODELS_TRAIN)
    log.info("evaluating %d run(s) from %s", len(runs), MODELS_TRAIN)
    fqe_fn = fqe_api(cfg, states, runs, greedy_matrix) if p.fqe.candidates > 0 else None
    out = wf.run_evaluation(p, states, runs, greedy_matrix, where=str(paths.STATES), fqe_fn=fqe_fn)
    carry_value_checks(out["chosen"])   # the learners' convergence check (issue 11); promotion_flags reads it
    s = wf.stage_summary(out, p)
    s["warnings"] += [f"{n}: value check ratio {c['value_check']['ratio']:.2f} outside [0.8, 1.25]: {NOT_CONVERGED}"
                      for n, c in out["chosen"].items() if c.get("value_check") and not c["value_check"]["converged"]]
    synthetic = cfg.source.kind == "synthetic"
    truths, tools = None, None
    if synthetic and (p.truth.n_patients > 0 or (p.audit.candidates > 0 and p.audit.n_patients > 0)):
        tools = truth_tools(cfg)
    with ExitStack() as stack:
        # the simulator roll-outs as units of params.yaml `executor` (ray: Ray tasks; local: in this process)
        ex = stack.enter_context(make_executor(cfg.executor)) if tools is not None and cfg.executor.kind != "local" \
            else None
        rollouts = Rollouts(cfg.synth, tools, ex) if tools is not None else None
        if synthetic and p.truth.n_patients > 0:
            truths = ground_truth(cfg, out["chosen"], tools, rollouts)
            out["table"] = wf.with_true_values(out["table"], {r["policy"]: truths[r["policy"]]
                                                              for r in out["table"]["rows"] if r["policy"] in truths})
            s["truth"] = truths
            run.log_metrics({metric_key("truth", k, "value"): v["value"] for k, v in truths.items()})
        else:
            s["truth"] = None
            log.info("no simulator truth: source.kind is %s", cfg.source.kind)
        s["audit"], s["audit_info"], points = audit(cfg, out, tools, rollouts)
        checks = model_checks(cfg, tools, rollouts)
        placement = rollouts.where() if rollouts is not None else "no roll-outs"
    write_json(MODEL_CHECK, checks)
    run.log_metrics(model_check_metrics(checks))
    promote(out, s, truths, p.ess_cutoff_c * out["n_test"])
    write_outputs(out, s, run, points)
    export_models(out["chosen"], out["table"], run)
    for name, c in out["chosen"].items():
        if c["flagged"]:
            log.warning("%s: selection flagged (%s)", name, "no frontier point reaches the ESS cutoff"
                        if p.select_by == "wis_ess_pareto" else "no candidate's FQE converged")
    for r in out["table"]["rows"]:
        lo, hi = (v if v is not None else float("nan") for v in (r["wis_ci"] or [None, None]))
        log.info("test %-13s WIS %6.2f (%.2f, %.2f)  ESS %7.1f  FQE %6.2f  WDR %6.2f  agreement %.3f", r["policy"],
                 r["wis"] if r["wis"] is not None else float("nan"), lo, hi, r["ess"],
                 r.get("fqe") if r.get("fqe") is not None else float("nan"),
                 r.get("wdr") if r.get("wdr") is not None else float("nan"), r["agreement"])
    log.info("evaluate: %d checkpoints scored; roll-outs: %s", len(out["scores"]), placement)   # units ran where
    run.set_tags({"adrl.placement": placement})


if __name__ == "__main__":
    run_stage("evaluate", main, params_of=lambda cfg: {"evaluate": cfg.evaluate.model_dump()})
