"""The same training sweep on the local executor and on a two-node Ray cluster on this machine (issue 18).

Both nodes run on this one machine (1 CPU each, as the local pool has 2 workers), so the ratio measures Ray's
overhead, not a speed-up. Measured in one run, one after the other:

- sweep: run_sweep over the same params and states, executor.kind local (train.workers 2) and ray (two nodes);
  the outputs are checked to be byte-identical;
- per unit: N no-op units (return their argument) through each executor, one at a time (round trip) and all at
  once (throughput), after a warm-up that starts the workers;
- connect: the Ray executor's start (ray.init to the running cluster, shipping adrl's source once);
- roll-outs: the evaluate stage's simulator roll-outs (adrl.groundtruth.Rollouts, the class the stage uses) in the
  shape of the default params (truth: clinician, no treatment and 3 selected policies on 1,000 patients; audit: 20
  candidates on 200), in this process (executor local) and as units on the two nodes; the numbers are checked to be
  identical. Policies: random linear greedy policies on an untrained 64-d GRU encoder (benchmarks/bench_rollout.py).

The sweeps run in the order local, ray, ray, local (drift in the shared machine's load falls on both alike). Wall time
is not a fair comparison on a loaded machine with the kernel's autogroup scheduling (each `ray start` session gets
its own CPU share against the other users' jobs, the local pool shares this process's): the CPU-seconds used by
the stage, its pool workers and every process of the cluster are the load-independent measure of overhead.

    python -m benchmarks.bench_ray [--quick]

--quick: 1,000 steps per run (default 3,000). Writes benchmarks/results/ray.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ray.cluster import local_cluster  # noqa: E402  (sets the loopback environment before ray is imported)
from adrl.executor import ExecutorParams, make_executor  # noqa: E402
from adrl.rl.params import TrainParams  # noqa: E402
from adrl.rl.train import expand_sweep, run_sweep  # noqa: E402
from tests.rl.factored_mdp import make_states  # noqa: E402

OUT = ROOT / "benchmarks" / "results"
# 3 algorithms x 2 thresholds x 2 seeds = 12 runs and 2 dynamics fits: 14 units
SWEEP = dict(algorithms=["bcq", "factored_bcq", "adbcq"], thresholds=[0.1, 0.3], seeds=[0, 1], hidden=64,
             checkpoint_every=500, batch_size=100, workers=2, threads=1, value_check_split="val",
             dynamics=dict(ensemble=5, hidden=64, layers=1, max_epochs=30, patience=10))
N_NOOP = 200
ORDER = ["local", "ray", "ray", "local"]


def noop(x):
    return x


def per_unit(params: ExecutorParams) -> dict:
    """Round trip of one no-op unit at a time, and throughput of N submitted at once (after a warm-up)."""
    import multiprocessing as mp

    t0 = time.perf_counter()
    with make_executor(params, 2, mp_context=mp.get_context("spawn")) as ex:
        start = time.perf_counter() - t0
        for i in range(4):   # warm-up: start the workers
            ex.submit(i, f"warm{i}", noop, i)
        while ex.pending:
            ex.wait_any()
        t = time.perf_counter()
        for i in range(N_NOOP):
            ex.submit(i, f"noop{i}", noop, i)
            assert ex.wait_any() == [(i, i)]
        serial = (time.perf_counter() - t) / N_NOOP
        t = time.perf_counter()
        for i in range(N_NOOP):
            ex.submit(i, f"noop{i}", noop, i)
        got = []
        while ex.pending:
            got += ex.wait_any()
        assert sorted(got) == [(i, i) for i in range(N_NOOP)]
        burst = (time.perf_counter() - t) / N_NOOP
    return {"start_s": start, "round_trip_ms": serial * 1e3, "per_unit_in_burst_ms": burst * 1e3}


def cpu_of(pid: int) -> float:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    f = raw[raw.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")   # utime + stime


class ClusterCPU:
    """CPU seconds used by every process of the cluster's sessions while running: sampled every 0.2 s (a process
    that ends loses at most its last 0.2 s), minus what each had used before."""

    def __init__(self, cluster):
        self.cluster, self.seen, self.base, self._stop = cluster, {}, {}, threading.Event()

    def _pids(self):
        return [p for node in self.cluster.groups for p in self.cluster.members(node)]

    def __enter__(self):
        self.base = {p: cpu_of(p) for p in self._pids()}
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        return self

    def _loop(self):
        while True:
            for p in self._pids():
                self.seen[p] = max(self.seen.get(p, 0.0), cpu_of(p))
            if self._stop.wait(0.2):
                return

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.cpu = sum(c - self.base.get(p, 0.0) for p, c in self.seen.items())


def sweep(df, p: TrainParams, out: Path, params: ExecutorParams, cluster) -> dict:
    """Wall seconds and CPU seconds (this process, its pool workers, and for Ray every process of the cluster)."""
    c0 = os.times()
    t0 = time.perf_counter()
    with ClusterCPU(cluster) as cc:
        man = run_sweep(df, p, out, executor=params)
    wall = time.perf_counter() - t0
    c1 = os.times()
    own = (c1.user - c0.user) + (c1.system - c0.system)
    children = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    # the local executor's cost is its own processes (the idle cluster beside it is not part of it: reported apart)
    used = own + children + (cc.cpu if params.kind == "ray" else 0.0)
    return {"wall_s": wall, "cpu_s": used, "driver_cpu_s": own, "pool_cpu_s": children,
            "cluster_cpu_s": cc.cpu, "placement": man["placement"], "runs": len(man["runs"])}


TRUTH, AUDIT = (1000, 3), (200, 20)   # (patients, learned policies) of the default evaluate.truth / evaluate.audit


def rollouts(params: ExecutorParams, cluster, setup) -> dict:
    """The evaluate stage's roll-outs (truth, then audit) through Rollouts: in this process (local) or as Ray units;
    wall s, CPU s (this process [+ every process of the cluster]) and the results."""
    from adrl.executor import make_executor
    from adrl.groundtruth import Rollouts
    from adrl.synth.params import SynthParams
    from benchmarks.bench_rollout import linear_policy

    d = setup[1].latent_dim
    c0, t0 = os.times(), time.perf_counter()
    with ClusterCPU(cluster) as cc:
        ex = make_executor(params, modules=(ROOT / "benchmarks",)) if params.kind == "ray" else None
        try:
            r = Rollouts(SynthParams(), setup, ex)
            truth = r.true_values({"clinician": "clinician", "no_treatment": "no_treatment",
                                   **{f"sel{i}": linear_policy(d, i) for i in range(TRUTH[1])}}, TRUTH[0], 12345)
            audit = r.true_values({f"cand{i}": linear_policy(d, 100 + i) for i in range(AUDIT[1])}, AUDIT[0], 12345)
            where = r.where()
        finally:
            if ex is not None:
                ex.close()
    wall = time.perf_counter() - t0
    c1 = os.times()
    own = (c1.user - c0.user) + (c1.system - c0.system)
    return {"wall_s": wall, "cpu_s": own + (cc.cpu if params.kind == "ray" else 0.0), "driver_cpu_s": own,
            "cluster_cpu_s": cc.cpu, "placement": where, "results": {"truth": truth, "audit": audit}}


def files(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-rollouts", action="store_true", help="skip the evaluate roll-outs part")
    a = ap.parse_args()
    steps = 1000 if a.quick else 3000
    p = TrainParams(**SWEEP, steps=steps)
    n_units = len(expand_sweep(p)) + len(p.seeds)
    df = make_states(2000, seed=3)
    tmp = Path(tempfile.mkdtemp(prefix="bench_ray"))
    load0 = os.getloadavg()
    res: dict = {"steps": steps, "runs": len(expand_sweep(p)), "units": n_units, "n_noop": N_NOOP}
    try:
        with local_cluster() as cl:
            kinds = {"local": ExecutorParams(), "ray": ExecutorParams(kind="ray", address=cl.address)}
            res["order"] = ORDER   # ABBA: drift in the machine's load falls on both alike
            res["sweeps"] = [dict(kind=k, **sweep(df, p, tmp / f"{k}{i}", kinds[k], cl)) for i, k in enumerate(ORDER)]
            res["unit"] = {k: per_unit(v) for k, v in kinds.items()}
            if not a.no_rollouts:
                import torch

                from benchmarks.bench_rollout import reference_setup

                torch.set_num_threads(1)
                setup = reference_setup(n_fit=300, latent=64, hidden=128)
                res["rollouts"] = [dict(kind=k, **rollouts(kinds[k], cl, setup)) for k in ORDER]
        if "rollouts" in res:
            got = [r.pop("results") for r in res["rollouts"]]
            res["rollouts_identical"] = all(g == got[0] for g in got)
            res["rollout_policies"] = {"truth": {"patients": TRUTH[0], "learned": TRUTH[1], "named": 2},
                                       "audit": {"patients": AUDIT[0], "learned": AUDIT[1]}}
            for m in ("wall_s", "cpu_s"):
                mean = {k: sum(s[m] for s in res["rollouts"] if s["kind"] == k) / ORDER.count(k)
                        for k in ("local", "ray")}
                res[f"rollouts_mean_{m}"] = mean
                res[f"rollouts_ratio_ray_over_local_{m}"] = mean["ray"] / mean["local"]
        outs = [files(tmp / f"{k}{i}") for i, k in enumerate(ORDER)]
        res["identical_outputs"] = all(o == outs[0] for o in outs)
        res["differing_files"] = {f"{k}{i}": sorted(n for n in set(o) | set(outs[0]) if o.get(n) != outs[0].get(n))
                                  for i, (k, o) in enumerate(zip(ORDER, outs)) if o != outs[0]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load1 = os.getloadavg()
    res["load_before"], res["load_after"] = load0, load1
    res["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    res["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    for m in ("wall_s", "cpu_s"):
        mean = {k: sum(s[m] for s in res["sweeps"] if s["kind"] == k) / ORDER.count(k) for k in ("local", "ray")}
        res[f"mean_{m}"] = mean
        res[f"ratio_ray_over_local_{m}"] = mean["ray"] / mean["local"]
    # CPU-seconds Ray adds per unit (its daemons, worker start, transfers), whatever the machine's load
    res["ray_extra_cpu_per_unit_s"] = (res["mean_cpu_s"]["ray"] - res["mean_cpu_s"]["local"]) / n_units
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ray.json").write_text(json.dumps(res, indent=1) + "\n")
    (OUT / "ray.md").write_text(report(res, " ".join(["python -m benchmarks.bench_ray", *sys.argv[1:]])))
    print(json.dumps(res, indent=1))


def report(r: dict, cmd: str) -> str:
    rows = "\n".join(f"| {i + 1} | {s['kind']} | {s['wall_s']:.1f} | {s['cpu_s']:.1f} | {s['cluster_cpu_s']:.1f} | "
                     f"{s['placement'].split(', ', 1)[1]} |" for i, s in enumerate(r["sweeps"]))
    u = r["unit"]
    return f"""# Ray executor: the same sweep on the local pool and on a two-node Ray cluster (one machine)

Command: `{cmd}` ({r['machine']}; `uptime` before: load {r['load_before'][0]:.2f} / {r['load_before'][1]:.2f} /
{r['load_before'][2]:.2f}, after: {r['uptime']}). The machine was shared with two other agents' jobs throughout.

Sweep: {r['runs']} runs (BCQ, factored BCQ, AD-BCQ with augmentation x 2 thresholds x 2 seeds, {r['steps']} steps
each) and 2 dynamics fits = {r['units']} units, on a synthetic states table (tests/rl/factored_mdp.py, 2,000 stays).
local: `executor.kind: local`, `train.workers: 2`; ray: `executor.kind: ray` on a head node and a second node on
127.0.0.1, 1 CPU each (tests/ray/cluster.py), so both run 2 units at a time. Outputs of all four sweeps
byte-identical: **{r['identical_outputs']}**{'' if r['identical_outputs'] else f" (differing from sweep 1: {r['differing_files']})"}.

| # | executor | wall s | CPU s (stage + workers [+ cluster]) | cluster CPU s | where the units ran |
|---|---|---|---|---|---|
{rows}

| | local | ray | ray / local |
|---|---|---|---|
| sweep wall s (mean) | {r['mean_wall_s']['local']:.1f} | {r['mean_wall_s']['ray']:.1f} | {r['ratio_ray_over_local_wall_s']:.2f} |
| sweep CPU s (mean) | {r['mean_cpu_s']['local']:.1f} | {r['mean_cpu_s']['ray']:.1f} | {r['ratio_ray_over_local_cpu_s']:.2f} |
| no-op unit, one at a time (ms) | {u['local']['round_trip_ms']:.2f} | {u['ray']['round_trip_ms']:.2f} | {u['ray']['round_trip_ms'] / u['local']['round_trip_ms']:.1f} |
| no-op unit, {r['n_noop']} at once (ms per unit) | {u['local']['per_unit_in_burst_ms']:.2f} | {u['ray']['per_unit_in_burst_ms']:.2f} | {u['ray']['per_unit_in_burst_ms'] / u['local']['per_unit_in_burst_ms']:.1f} |
| executor start (s) | {u['local']['start_s']:.3f} | {u['ray']['start_s']:.3f} | |
""" + (rollout_report(r) if "rollouts" in r else "")


def rollout_report(r: dict) -> str:
    rows = "\n".join(f"| {i + 1} | {s['kind']} | {s['wall_s']:.1f} | {s['cpu_s']:.1f} | {s['cluster_cpu_s']:.1f} | "
                     f"{s['placement']} |" for i, s in enumerate(r["rollouts"]))
    return f"""
## The evaluate stage's roll-outs on the cluster and in the stage's process

The roll-outs of the default `evaluate` params through `adrl.groundtruth.Rollouts` (what the stage calls): truth =
clinician, no treatment and {TRUTH[1]} learned policies on {TRUTH[0]:,} simulated patients; audit = {AUDIT[1]} learned
policies on {AUDIT[0]} patients (random linear greedy policies on an untrained 64-d GRU encoder). local: in this process
(`executor.kind: local`), one pass after another; ray: units on the two nodes (1 CPU each). Same order local, ray, ray,
local. Results (value, SE, decisions, dose recovery of every policy) identical in all four: **{r['rollouts_identical']}**.

| # | executor | wall s | CPU s (this process [+ cluster]) | cluster CPU s | where the units ran |
|---|---|---|---|---|---|
{rows}

| | local | ray | ray / local |
|---|---|---|---|
| roll-outs wall s (mean) | {r['rollouts_mean_wall_s']['local']:.1f} | {r['rollouts_mean_wall_s']['ray']:.1f} | {r['rollouts_ratio_ray_over_local_wall_s']:.2f} |
| roll-outs CPU s (mean) | {r['rollouts_mean_cpu_s']['local']:.1f} | {r['rollouts_mean_cpu_s']['ray']:.1f} | {r['rollouts_ratio_ray_over_local_cpu_s']:.2f} |
"""


if __name__ == "__main__":
    main()
