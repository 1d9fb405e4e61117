"""Stage `report` of online/dvc.yaml: reports/online/results.json (per-seed final return and AUC for every
task, n and agent; paired AD-DQN minus DecQN with 95% CIs; the gap's trend with n; augmentation on minus off)
and reports/online/learning_curves.png.

deps: reports/online/runs    outs: reports/online/results.json, reports/online/learning_curves.png
"""
from __future__ import annotations

import json
import logging

import numpy as np

from adrl import paths
from adrl.errors import InputError
from adrl.io import atomic_path, write_json
from adrl.online.results import figure, summarise
from adrl.online.sweep import cell_hash, cell_key
from pipeline._online import run_online_stage

log = logging.getLogger("adrl.online")
OUT = paths.REPORTS / "online"


def main(cfg) -> None:
    p = cfg.active()
    cells = []
    for task in p.tasks:
        for n in p.levels:
            for agent in p.agents:
                f = OUT / "runs" / f"{cell_key(task, n, agent)}.json"
                rec = json.loads(f.read_text()) if f.exists() else None
                if rec is None or rec.get("hash") != cell_hash(cfg, task, n, agent):
                    raise InputError(f"{f}: missing or made with other parameters (run the online train stage)")
                cells.append(rec)
    agents = [a.model_dump() for a in cfg.agents]
    summary = summarise(cells, agents)
    cpu = float(sum(sum(c["cpu_seconds"]) for c in cells))
    write_json(OUT / "results.json", {
        "profile": cfg.profile, "env_steps_per_run": cells[0]["env_steps"], "action_repeat": cfg.action_repeat,
        "tasks": p.tasks, "levels": p.levels, "seeds": p.seeds, "agents": p.agents,
        "cpu_seconds_total": cpu,
        "cpu_seconds_per_cell": {cell_key(c["task"], c["n"], c["agent"]): float(np.sum(c["cpu_seconds"]))
                                 for c in cells},
        "q_vs_mc_final": {cell_key(c["task"], c["n"], c["agent"]):
                          {"q0": float(np.mean([q[-1] for q in c["q0"]])),
                           "mc0": float(np.mean([m[-1] for m in c["mc0"]]))} for c in cells},
        **summary})
    with atomic_path(OUT / "learning_curves.png") as tmp:
        figure(cells, agents, tmp)
    log.info("wrote %s and the learning-curve figure (%d cells, %.0f CPU s in training)",
             OUT / "results.json", len(cells), cpu)


if __name__ == "__main__":
    run_online_stage("online_report", main)
