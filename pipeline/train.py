"""train stage: BCQ, factored BCQ and AD-BCQ over the sweep of params.yaml `train` (method.md 3-4).

deps: data/processed/states.parquet; outs: models/train (runs + runs.json); metrics: reports/metrics/train.json.
Narrow or widen the sweep with e.g. `dvc exp run -S 'train.seeds=[0,1]'`.
"""
from __future__ import annotations

import hashlib
import logging
from collections import defaultdict

import numpy as np

from adrl.paths import METRICS, MODELS, STATES
from adrl.rl.data import read_states
from adrl.rl.train import expand_sweep, run_sweep
from adrl.rl.valuecheck import KEYS as VC_KEYS
from adrl.tracking import params_hash
from pipeline._common import run_stage, write_metrics

OUT = MODELS / "train"
METRICS_FILE = METRICS / "train.json"
log = logging.getLogger("adrl")
DYN_KEYS = ("ensemble/", "noop_other_F/", "noop_other_V/", "interaction_index", "epochs", "best_epoch", "fit_seconds",
            "linear_baseline/")


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def main(cfg, run) -> None:
    p = cfg.train
    specs = expand_sweep(p)
    df = read_states(STATES)
    states_hash = _sha256(STATES)
    run.set_tags({"adrl.states_sha256": states_hash, "adrl.train_config_hash": params_hash(p.model_dump()),
                  "adrl.train_runs": len(specs)})

    def on_dynamics(seed: int, report: dict, hist: dict) -> None:
        run.log_metrics({f"dynamics/seed{seed}/{k}": v for k, v in report.items()})
        for key, values in hist.items():
            run.log_metric_series(f"dynamics/seed{seed}/{key}", values)

    def on_run(rec: dict) -> None:
        h = rec["history"]
        for key, values in h.items():
            if key != "step":
                run.log_metric_series(f"{rec['run_id']}/{key}", values, h["step"])
        if rec.get("steps_per_s") is not None:   # a run resumed from disk has no timing (run.json holds none)
            run.log_metrics({f"{rec['run_id']}/steps_per_s": rec["steps_per_s"]})
        for key, values in (rec.get("value_check_history") or {}).items():   # the convergence check per checkpoint
            run.log_metric_series(f"{rec['run_id']}/value_check/{key}", values, rec["steps"])

    man = run_sweep(df, p, OUT, where=str(STATES), on_dynamics=on_dynamics, on_run=on_run, executor=cfg.executor)

    sps = defaultdict(list)
    for r in man["runs"]:
        key = r["algorithm"] if r["algorithm"] != "adbcq" else f"adbcq_{'aug' if r['augment'] else 'noaug'}"
        if r.get("steps_per_s") is not None:
            sps[key].append(r["steps_per_s"])
    metrics = {
        "runs": len(man["runs"]),
        "checkpoints": int(sum(len(r["steps"]) for r in man["runs"])),
        "n_train_transitions": man["n_train_transitions"],
        "counts": man["counts"],
        "latent_dim": man["d"],
        "states_sha256": states_hash,
        "train_seconds": man.get("sweep_seconds"),   # wall time of the sweep (batched groups share their loop)
        "steps_per_s": {k: float(np.mean(v)) for k, v in sps.items()},
        # the convergence check of each run's last checkpoint (adrl/rl/valuecheck.py): ratio = q_logged / mc_return
        "value_check": {r["run_id"]: {k: r["value_check"][k] for k in VC_KEYS}
                        for r in man["runs"] if r.get("value_check")},
        "not_converged": sorted(r["run_id"] for r in man["runs"] if r.get("value_check")
                                and not r["value_check"]["converged"]),
        "dynamics": {name: {k: v for k, v in d["report"].items() if k.startswith(DYN_KEYS)}
                     for name, d in man["dynamics"].items()},
    }
    write_metrics(METRICS_FILE, metrics)
    run.log_metrics({k: v for k, v in metrics.items()
                     if k not in ("dynamics", "states_sha256", "counts", "value_check", "not_converged")})
    log.info("train: %d runs; %s", len(man["runs"]), man["placement"])   # how many units ran where
    run.set_tags({"adrl.placement": man["placement"]})
    run.log_metrics({"runs_not_converged": len(metrics["not_converged"]),
                     "trained_runs": man["trained_runs"]})   # runs trained by this call (not in the metrics file:
    # after a crash the rerun trains fewer, and the outputs must not differ)
    run.log_dict({"runs": man["runs"], "dynamics": metrics["dynamics"]}, "train/manifest.json")


if __name__ == "__main__":
    run_stage("train", main, params_of=lambda cfg: {"train": cfg.train.model_dump()})
