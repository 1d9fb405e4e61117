"""The online sweep: task x n x agent x seed, as independent units of online.executor (a local process pool of
``workers`` processes, or Ray tasks).

Each (task, n, agent) cell is written as one JSON file under the runs directory as soon as its seeds are done,
with a hash of everything that determines its numbers (parameters and the source of the modules that compute
them); a later run with the same hash reuses the file, so an interrupted sweep resumes where it stopped. Results are identical whichever number of workers ran them.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from ..executor import make_executor
from ..io import write_json
from ..tracking import params_hash
from .params import Online

log = logging.getLogger("adrl.online")


def cell_key(task: str, n: int, agent: str) -> str:
    return f"{task}_n{n}_{agent}"


def code_hash() -> str:
    """A hash of the source that determines a run's numbers (the online room and the rl modules it uses), so a
    code change never reuses cells made by other code."""
    from ..rl import dynamics, nets
    from . import agents, env, train

    return params_hash([Path(m.__file__).read_text() for m in (agents, env, train, dynamics, nets)])


def cell_hash(cfg: Online, task: str, n: int, agent: str) -> str:
    return params_hash({"task": task, "agent": asdict(cfg.agent_config(agent, n)),
                        "run": asdict(cfg.run_config()), "seeds": cfg.active().seeds, "code": code_hash()})


def _job(args):
    task, n, agent_cfg, seed, run_cfg = args
    import torch

    torch.set_num_threads(1)
    from .train import run

    t0 = time.process_time()
    out = run(task, agent_cfg, seed, run_cfg)
    out["cpu_seconds"] = time.process_time() - t0
    return out


def run_sweep(cfg: Online, runs_dir: str | os.PathLike,
              on_cell: Callable[[dict], None] | None = None) -> list[dict]:
    """Run (or reuse) every cell of the active profile; returns the cell records in a fixed order."""
    p, rc = cfg.active(), cfg.run_config()
    runs_dir = Path(runs_dir)
    cells, todo = [], []
    for task in p.tasks:
        for n in p.levels:
            for agent in p.agents:
                key, h = cell_key(task, n, agent), cell_hash(cfg, task, n, agent)
                f = runs_dir / f"{key}.json"
                if f.exists():
                    rec = json.loads(f.read_text())
                    if rec.get("hash") == h:
                        log.info("%s: reused (same parameters)", key)
                        cells.append(rec)
                        continue
                cells.append(None)
                todo.append((len(cells) - 1, task, n, agent, h))
    jobs = [(task, n, cfg.agent_config(agent, n), seed, rc) for _, task, n, agent, _ in todo for seed in p.seeds]
    S = len(p.seeds)
    got: dict[int, dict[int, dict]] = {}   # cell (index in todo) -> seed index -> result
    t0, n_done = time.time(), 0

    def arrived(i: int, res: dict) -> None:
        nonlocal n_done
        got.setdefault(i // S, {})[i % S] = res
        if len(got[i // S]) < S:
            return
        seeds_done = got.pop(i // S)
        pending = [seeds_done[k] for k in range(S)]
        slot, task, n, agent, h = todo[i // S]
        rec = {"task": task, "n": n, "agent": agent, "hash": h, "seeds": list(p.seeds),
               "env_steps": pending[0]["env_steps"], "steps": pending[0]["curve"]["step"],
               "curves": [r["curve"]["return"] for r in pending],
               "q0": [r["curve"]["q0"] for r in pending], "mc0": [r["curve"]["mc0"] for r in pending],
               "final": [r["final_return"] for r in pending], "auc": [r["auc"] for r in pending],
               "updates": [r["updates"] for r in pending],
               "cpu_seconds": [r["cpu_seconds"] for r in pending],
               "seconds_env": [r["seconds_env"] for r in pending],
               "seconds_update": [r["seconds_update"] for r in pending],
               "seconds_model": [r["seconds_model"] for r in pending],
               "model_fits": [r["model_fits"] for r in pending]}
        write_json(runs_dir / f"{cell_key(task, n, agent)}.json", rec)
        cells[slot] = rec
        n_done += 1
        log.info("%s: final %s, AUC %.1f (%d/%d cells, %.0f s)", cell_key(task, n, agent),
                 [round(x) for x in rec["final"]], sum(rec["auc"]) / S, n_done, len(todo), time.time() - t0)
        if on_cell is not None:
            on_cell(rec)

    if cfg.executor.kind == "local" and (cfg.workers == 1 or len(jobs) <= 1):
        for i, job in enumerate(jobs):
            arrived(i, _job(job))
        where = f"{len(jobs)} unit(s) in this process"
    else:
        with make_executor(cfg.executor, cfg.workers, key="online.executor") as ex:
            for i, job in enumerate(jobs):
                ex.submit(i, f"{cell_key(*job[:2], todo[i // S][3])} seed {job[3]}", _job, job)
            while ex.pending:
                for i, res in ex.wait_any():
                    arrived(i, res)
            where = f"{ex.kind} executor, {ex.where()}"
    if jobs:
        log.info("online sweep: %s", where)
    return cells
