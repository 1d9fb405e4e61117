"""Stage `report` of online/dvc.yaml: reports/online/results.json (per-seed final return and AUC for every
task, n and agent; paired AD-DQN minus DecQN with 95% CIs; the gap's trend with n; augmentation on minus off)
its markdown twin results.md and reports/online/learning_curves.png.

deps: reports/online/runs    outs: reports/online/results.json, reports/online/learning_curves.png

Outside DVC, ``--profile full --allow-missing --out reports/online/full_partial`` summarises the cells of an
unfinished sweep (results.json then lists the missing cells).
"""
from __future__ import annotations

import argparse
import json
import logging

import numpy as np

from adrl import paths
from adrl.errors import InputError
from adrl.io import atomic_path, write_json
from adrl.online.results import figure, markdown, summarise
from adrl.online.sweep import cell_hash, cell_key
from pipeline._online import run_online_stage

log = logging.getLogger("adrl.online")
OUT = paths.REPORTS / "online"


def _args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m pipeline.online_report")
    ap.add_argument("--profile", choices=("quick", "full"), help="default: online.profile")
    ap.add_argument("--allow-missing", action="store_true", help="summarise the finished cells only")
    ap.add_argument("--out", default=str(OUT), help="output directory (default reports/online)")
    return ap.parse_args(argv)


def main(cfg, args=None) -> None:
    args = args or _args([])
    out = type(OUT)(args.out)
    p = cfg.active()
    cells, missing = [], []
    for task in p.tasks:
        for n in p.levels:
            for agent in p.agents:
                f = OUT / "runs" / f"{cell_key(task, n, agent)}.json"
                rec = json.loads(f.read_text()) if f.exists() else None
                if rec is None or rec.get("hash") != cell_hash(cfg, task, n, agent):
                    if not args.allow_missing:
                        raise InputError(f"{f}: missing or made with other parameters (run the online train stage)")
                    missing.append(cell_key(task, n, agent))
                    continue
                cells.append(rec)
    if not cells:
        raise InputError(f"{OUT / 'runs'}: no finished cells of profile {cfg.profile!r}")
    agents = [a.model_dump() for a in cfg.agents]
    summary = summarise(cells, agents)
    cpu = float(sum(sum(c["cpu_seconds"]) for c in cells))
    res = {
        "profile": cfg.profile, "missing_cells": missing, "env_steps_per_run": cells[0]["env_steps"],
        "action_repeat": cfg.action_repeat,
        "tasks": p.tasks, "levels": p.levels, "seeds": p.seeds, "agents": p.agents,
        "cpu_seconds_total": cpu,
        "cpu_seconds_per_cell": {cell_key(c["task"], c["n"], c["agent"]): float(np.sum(c["cpu_seconds"]))
                                 for c in cells},
        "q_vs_mc_final": {cell_key(c["task"], c["n"], c["agent"]):
                          {"q0": float(np.mean([q[-1] for q in c["q0"]])),
                           "mc0": float(np.mean([m[-1] for m in c["mc0"]]))} for c in cells},
        "dynamics_last_fit": {cell_key(c["task"], c["n"], c["agent"]): {  # median over seeds, last refit
            k: float(np.nanmedian([f[-1][k] for f in c["model_fits"] if f])) for k in ("dz_r2", "reward_r2")}
            for c in cells if any(c["model_fits"])},
        **summary}
    write_json(out / "results.json", res)
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(markdown(res))
    with atomic_path(out / "learning_curves.png") as tmp:
        figure(cells, agents, tmp)
    log.info("wrote %s and the learning-curve figure (%d cells, %.0f CPU s in training)",
             out / "results.json", len(cells), cpu)


if __name__ == "__main__":
    a = _args()
    run_online_stage("online_report", lambda cfg: main(cfg, a), profile=a.profile)
