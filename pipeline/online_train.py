"""Stage `train` of online/dvc.yaml: every (task, n, agent, seed) run of the active profile (method.md 4.11).

params: online/params.yaml    outs: reports/online/runs/<task>_n<n>_<agent>.json (per-seed curves)
MLflow: one parent run per execution (``online-<profile>``), one child run per (task, n, agent) with the
evaluation return of every seed against environment steps.
"""
from __future__ import annotations

import logging
from dataclasses import asdict

import numpy as np

from adrl import paths, tracking
from adrl.online.sweep import run_sweep
from pipeline._online import run_online_stage

log = logging.getLogger("adrl.online")
RUNS = paths.REPORTS / "online" / "runs"


def main(cfg) -> None:
    p = cfg.active()
    # the parent run (the execution's run tree) is created by the first cell that finishes, with these parameters;
    # nothing is opened when every cell is reused
    config = {"profile": cfg.profile, "tasks": p.tasks, "levels": p.levels, "seeds": p.seeds, "agents": p.agents,
              "env_steps": p.steps * cfg.action_repeat}
    with tracking.pipeline_run(f"online-{cfg.profile}", tags={"adrl.online.profile": cfg.profile}):

        def log_cell(rec: dict) -> None:
            name = f"{rec['task']}/n={rec['n']}/{rec['agent']}"
            params = {"task": rec["task"], "n": rec["n"], "agent": rec["agent"],
                      **{f"agent.{k}": v for k, v in asdict(cfg.agent_config(rec["agent"], rec["n"])).items()},
                      **{f"run.{k}": v for k, v in asdict(cfg.run_config()).items() if k != "dynamics"}}
            with tracking.stage_run(name, params=params, config=config,
                                    tags={"adrl.online.profile": cfg.profile}) as run:
                for s, curve in zip(rec["seeds"], rec["curves"]):
                    run.log_metric_series(f"return/seed{s}", curve, rec["steps"])
                run.log_metric_series("return/mean", np.mean(rec["curves"], 0).tolist(), rec["steps"])
                run.log_metric_series("q0/mean", np.mean(rec["q0"], 0).tolist(), rec["steps"])
                run.log_metric_series("mc0/mean", np.mean(rec["mc0"], 0).tolist(), rec["steps"])
                run.log_metrics({"final_return": float(np.mean(rec["final"])), "auc": float(np.mean(rec["auc"])),
                                 "cpu_seconds": float(np.sum(rec["cpu_seconds"]))})

        run_sweep(cfg, RUNS, on_cell=log_cell)


if __name__ == "__main__":
    run_online_stage("online_train", main)
