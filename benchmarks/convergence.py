"""Do the learners learn values? Before/after evidence for the value-learning profile (benchmarks/results/convergence.md).

Two measurements, each for `train.profile: tang` (method.md 3.1 as written) and `default`:
- tabular: the exact-answer cases of adrl/rl/tabular.py (tests/rl/test_exact_values.py) with a checkpoint every
  ``--every`` steps: the largest and mean relative error of Q on visited (state, allowed action) pairs and the share
  of visited states whose greedy action is the exact batch-constrained optimum, against steps; steps to converge =
  the first checkpoint with error <= 5% and greedy >= 95%;
- states: the default world's AIS states (data/processed/states.parquet, from `dvc repro encode`): BCQ, factored BCQ
  and AD-BCQ (linear, augmentation on, its dynamics ensemble fitted as the pipeline does) at tau 0.3, seed 0, with the
  per-checkpoint value check (adrl/rl/valuecheck.py): validation Q of the logged actions against their discounted
  Monte-Carlo return, Q spread across allowed actions, TD error; and steps per second.

    python -m benchmarks.convergence tabular --profile default --steps 12000 --every 1000
    python -m benchmarks.convergence states --profile tang --steps 10000 --every 500
    python -m benchmarks.convergence report          # writes benchmarks/results/convergence.md from the JSONs
Runs the cases of one call in parallel processes (``--workers``, default 2), one torch thread each.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RES = ROOT / "benchmarks" / "results"


def _load() -> str:
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load average unknown"


def _tabular_case(args) -> list[dict]:
    import torch

    from adrl.rl import tabular as T
    from adrl.rl.params import TrainParams

    mdp, learner, profile, steps, every, hidden, overrides, episodes, min_visits = args
    torch.set_num_threads(1)
    p = TrainParams(profile=profile, steps=steps, hidden=hidden, workers=1, **overrides)
    return [{**r, "mdp": mdp, "profile": profile}
            for r in T.train_on(mdp, learner, p, checkpoint_every=every, episodes=episodes, min_pair_visits=min_visits)]


def _states_case(args) -> dict:
    import numpy as np
    import pandas as pd
    import torch

    from adrl.rl.data import transitions
    from adrl.rl.dynamics import fit_dynamics
    from adrl.rl.params import TrainParams
    from adrl.rl.train import RunSpec, checkpoint_checks, dynamics_config, fit_loop, make_learner
    from adrl.rl.valuecheck import check_set

    algo, aug, profile, steps, every, states_path, overrides, tau = args
    torch.set_num_threads(1)
    df = pd.read_parquet(states_path)
    p = TrainParams(profile=profile, steps=steps, workers=1, **overrides)
    train, val = transitions(df, "train"), transitions(df, "val")
    spec = RunSpec(algo, tau, 0, "linear" if algo == "adbcq" else None, aug if algo == "adbcq" else None)
    dyn = None
    if spec.needs_dynamics:
        dyn, _, _ = fit_dynamics(train, val, dynamics_config(p), 0, progress=False)
    lrn = make_learner(spec, train, p, dyn)
    ck, states, _, secs = fit_loop(lrn, train, steps, p.batch_size, every, 0, progress=False,
                                   lr_schedule=p.lr_schedule, precision=p.precision)
    checks = checkpoint_checks(lrn, states, check_set(df, "val", p.gamma))
    return {"run": spec.run_id, "profile": profile, "steps": ck, "steps_per_s": steps / secs, **checks,
            "n_train": len(train), "n_val": int(np.isfinite(checks["ratio"]).sum())}


def cmd_tabular(a) -> None:
    from adrl.rl import tabular as T

    cases = [c for c in T.CASES if not a.cases or f"{c[0]}:{c[1]}" in a.cases.split(",")]
    ov = json.loads(a.overrides)
    jobs = [(m, l, a.profile, a.steps, a.every, a.hidden, ov, a.episodes, a.min_visits) for m, l in cases]
    t0 = time.time()
    with ProcessPoolExecutor(a.workers) as ex:
        rows = [r for res in ex.map(_tabular_case, jobs) for r in res]
    out = {"kind": "tabular", "profile": a.profile, "overrides": ov, "steps": a.steps, "every": a.every,
           "hidden": a.hidden, "episodes": a.episodes, "min_pair_visits": a.min_visits, "rows": rows, "wall_s": time.time() - t0, "load": _load(),
           "machine": f"{platform.machine()} {os.cpu_count()} cores", "command": " ".join(sys.argv)}
    path = RES / f"convergence_tabular_{a.tag or a.profile}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path} ({time.time() - t0:.0f} s)")


def cmd_states(a) -> None:
    ov = json.loads(a.overrides)
    jobs = [(al, aug, a.profile, a.steps, a.every, a.states, ov, tau)
            for tau in a.taus for al, aug in (("bcq", None), ("factored_bcq", None), ("adbcq", True))]
    t0 = time.time()
    with ProcessPoolExecutor(a.workers) as ex:
        rows = list(ex.map(_states_case, jobs))
    out = {"kind": "states", "profile": a.profile, "overrides": ov, "steps": a.steps, "every": a.every,
           "rows": rows, "wall_s": time.time() - t0, "load": _load(), "command": " ".join(sys.argv)}
    path = RES / f"convergence_states_{a.tag or a.profile}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path} ({time.time() - t0:.0f} s)")


def steps_to_converge(rows: list[dict], tol=0.05, greedy=0.95) -> int | None:
    for r in sorted(rows, key=lambda r: r["step"]):
        if r["max_rel_err"] <= tol and r["greedy_acc"] >= greedy:
            return r["step"]
    return None


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("tabular", "states"):
        s = sub.add_parser(name, help=f"the {name} measurement")
        s.add_argument("--profile", default="default", choices=["default", "tang"], help="train.profile")
        s.add_argument("--steps", type=int, default=12000, help="gradient steps per run")
        s.add_argument("--every", type=int, default=1000, help="checkpoint (and check) every this many steps")
        s.add_argument("--workers", type=int, default=2, help="parallel processes")
        s.add_argument("--overrides", default="{}", help="JSON of extra train keys, e.g. '{\"polyak\": 0.02}'")
        s.add_argument("--tag", default="", help="name of the results file (default: the profile)")
        if name == "tabular":
            s.add_argument("--hidden", type=int, default=128, help="hidden width (the tests use 128)")
            s.add_argument("--cases", default="", help="comma list of mdp:learner (default: all)")
            s.add_argument("--episodes", type=int, default=100_000, help="behaviour episodes per MDP")
            s.add_argument("--min-visits", type=int, default=1000,
                           help="pairs logged at least this many times are checked")
        else:
            s.add_argument("--states", default=str(ROOT / "data/processed/states.parquet"), help="states table")
            s.add_argument("--taus", type=float, nargs="+", default=[0.3], help="BCQ thresholds")
    r = sub.add_parser("report", help="write the tables of benchmarks/results/convergence_tables.md from the JSONs")
    r.add_argument("--out", default=str(RES / "convergence_tables.md"), help="markdown file to write")
    a = ap.parse_args(argv)
    {"tabular": cmd_tabular, "states": cmd_states, "report": cmd_report}[a.cmd](a)


def _f(v, fmt="{:.3f}"):
    return "-" if v is None else fmt.format(v)


def cmd_report(a) -> None:
    lines = ["# Convergence measurements (tables generated by `python -m benchmarks.convergence report`)", ""]
    for f in sorted(RES.glob("convergence_tabular_*.json")):
        d = json.loads(f.read_text())
        lines += [f"## Tabular, {f.stem.split('_', 2)[2]}: profile `{d['profile']}`, overrides {d['overrides']}, "
                  f"hidden {d['hidden']}, {d['steps']} steps", "",
                  f"`{d['command']}`; {d['machine'] if 'machine' in d else ''}, {d['load']} at the end, "
                  f"{d['wall_s']:.0f} s wall.", "",
                  "| MDP | learner | visited states / pairs | max rel. error | mean rel. error | greedy optimal | "
                  "Q mean / Q* mean | heads max rel. error | steps to converge | steps/s |", "|" + "---|" * 10]
        by = {}
        for r in d["rows"]:
            by.setdefault((r["mdp"], r["learner"]), []).append(r)
        for (m, l), rows in by.items():
            last = max(rows, key=lambda r: r["step"])
            stc = steps_to_converge(rows)
            lines.append(f"| {m} | {l} | {last['states']} / {last['pairs']} | {_f(last['max_rel_err'])} | "
                         f"{_f(last['mean_rel_err'])} | {_f(last['greedy_acc'], '{:.2f}')} | "
                         f"{last['q_mean']:.1f} / {last['q_star_mean']:.1f} | {_f(last.get('heads_max_rel_err'))} | "
                         f"{stc if stc is not None else 'not within ' + str(d['steps'])} | "
                         f"{last['steps_per_s']:.0f} |")
        lines.append("")
    for f in sorted(RES.glob("convergence_states_*.json")):
        d = json.loads(f.read_text())
        lines += [f"## Default world's AIS states, {f.stem.split('_', 2)[2]}: profile `{d['profile']}`, overrides "
                  f"{d['overrides']}, {d['steps']} steps", "", f"`{d['command']}`; {d['load']} at the end, "
                  f"{d['wall_s']:.0f} s wall.", "",
                  "| run | ratio Q(logged) / MC return, by checkpoint | last: Q(logged) | MC return | Q spread | "
                  "TD error | first checkpoint with ratio in [0.8, 1.25] | steps/s |", "|" + "---|" * 8]
        for r in d["rows"]:
            curve = ", ".join(f"{st}: {x:.2f}" for st, x in zip(r["steps"], r["ratio"]))
            first = next((st for st, x in zip(r["steps"], r["ratio"]) if 0.8 <= x <= 1.25), None)
            lines.append(f"| {r['run']} | {curve} | {r['q_logged'][-1]:.1f} | {r['mc_return'][-1]:.1f} | "
                         f"{r['q_spread'][-1]:.2f} | {r['td_error'][-1]:.2f} | {first} | {r['steps_per_s']:.0f} |")
        lines.append("")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
