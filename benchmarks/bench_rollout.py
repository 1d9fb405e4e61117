"""Benchmark: true values of many learned policies by simulator roll-out, before and after issue 15.

    .venv/bin/python -m benchmarks.bench_rollout                          # 20 policies x 1,000 patients
    .venv/bin/python -m benchmarks.bench_rollout --patients 200 --policies 4 --reference 1   # quick

Before: :func:`adrl.groundtruth.true_value_reference`, one policy at a time, the batch featuriser re-reading
every event of each stay at every 4-hour decision. After: :func:`adrl.groundtruth.true_values`, all policies
together on copies of the same patients, through the incremental featuriser. The reference runs only the first
``--reference`` policies (it is the slow one); their results must be identical to the new path's (checked here,
and on a small case in tests/test_groundtruth.py). Both run in the same process, alternately, so the ratio is
measured under the same machine load.

Setup (no trained pipeline needed): a featuriser fitted (normalisation, action edges) on a clinician roll-out of
300 patients, an untrained AIS encoder of the default size (GRU, 64-d, hidden 128) and random linear greedy
policies on its states (argmax of z W), which choose varied actions so each policy's patients diverge.
Writes benchmarks/results/rollout.md and rollout.json. ``--pinned COMMIT`` (default: the commit before issue 15)
also rolls the reference policies out with that commit's code, in a temporary ``git worktree``.
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent / "results" / "rollout.md"


@functools.lru_cache(maxsize=4)
def reference_setup(n_fit: int = 300, seed: int = 5, latent: int = 64, hidden: int = 128):
    """(featuriser, encoder, action_edges) for roll-outs without a trained pipeline: the cohort featuriser with
    normalisation and action edges fitted on a clinician roll-out of ``n_fit`` patients, and an untrained GRU
    AIS encoder (weights seeded)."""
    import torch

    from adrl.ais.encoder import AisEncoder
    from adrl.ais.model import AisNet
    from adrl.cohort.build import fit_action_edges
    from adrl.cohort.featurize import Featurizer, fit_normalization
    from adrl.cohort.mimic_adapter import build_spec
    from adrl.cohort.params import CohortParams
    from adrl.groundtruth import EVENT_TABLES, STATIC_TABLES
    from adrl.synth.params import SynthParams
    from adrl.synth.rollout import rollout

    p = CohortParams()
    fz = Featurizer(p, build_spec(p))
    hist: dict = {}

    def clinician(h, w):
        hist.update(h)
        return w.clinician_doses()

    rollout(clinician, n_fit, seed, SynthParams(), progress=False)
    static = {t: hist[t][0] for t in STATIC_TABLES}
    events = {t: pd.concat(hist[t], ignore_index=True) for t in EVENT_TABLES if t in hist}
    rows = fz.trajectory_rows(fz.bins(static, hist["onset"][0], events))
    fz.normalization = fit_normalization(rows)
    fz.action_edges = fit_action_edges(rows, p)
    torch.manual_seed(seed)
    enc = AisEncoder.from_net(AisNet("gru", latent, hidden), hidden)
    return fz, enc, fz.action_edges


class LinearPolicy:
    """A greedy policy on AIS states: argmax of z W, W standard normal (d x 25); picklable (a unit of an executor)."""

    def __init__(self, d: int, seed: int):
        self.W = np.random.default_rng(seed).normal(size=(d, 25))

    def __call__(self, z):
        return np.argmax(z @ self.W, axis=1)


def linear_policy(d: int, seed: int) -> LinearPolicy:
    return LinearPolicy(d, seed)


def simulator_cpu_per_copy(n: int, copies: int, seed: int) -> float:
    """CPU s per copy of the simulator alone on ``copies`` copies of ``n`` patients (clinician doses, the roll-out's
    charting, the hours after the episode that decide the outcome): the part of a roll-out that neither the
    featuriser nor the policies touch."""
    from adrl.synth.params import SynthParams
    from adrl.synth.rollout import N_BINS, RolloutWorld

    c = time.process_time()
    w = RolloutWorld(n, seed, SynthParams(), cohort_only=True)
    w.reset()
    w.replicate(copies)
    while not w.done.all() and w.step_i < N_BINS:
        w.step(*w.clinician_doses())
    w.outcome()
    return (time.process_time() - c) / copies


PRE_ISSUE = "c7a1c05"  # the last commit before issue 15's roll-out work (true_value one policy at a time)

_PINNED_CHILD = """
import importlib.util, json, sys, time
import torch
torch.set_num_threads(1)
spec = importlib.util.spec_from_file_location("bench_rollout_setup", sys.argv[1])
b = importlib.util.module_from_spec(spec)
spec.loader.exec_module(b)
import adrl
from adrl.groundtruth import true_value
from adrl.synth.params import SynthParams
assert adrl.__file__.startswith(sys.argv[2]), adrl.__file__
n, seed, ks = int(sys.argv[3]), int(sys.argv[4]), [int(k) for k in sys.argv[5].split(",")]
fz, enc, edges = b.reference_setup()
out = {}
for k in ks:
    t, c = time.time(), time.process_time()
    r = true_value(b.linear_policy(enc.latent_dim, k), n, seed, SynthParams(), fz, enc, edges, progress=False)
    out[f"linear{k}"] = {"result": r, "cpu_s": time.process_time() - c, "wall_s": time.time() - t}
print("PINNED " + json.dumps(out))
"""


def pinned_old_path(commit: str, n: int, seed: int, ks: list[int]) -> dict:
    """The roll-out of the policies ``linear{k}`` by ``true_value`` as it was at ``commit`` (the code before issue
    15), in a child process on a temporary ``git worktree`` of that commit (removed afterwards), with the same
    setup code (this file's :func:`reference_setup` run on that commit's package). CPU and wall seconds per policy
    are measured in the child around each roll-out only."""
    import json
    import subprocess
    import sys
    import tempfile

    repo = Path(__file__).resolve().parents[1]
    tmp = Path(tempfile.mkdtemp(prefix="bench_rollout_pinned_"))
    tree = tmp / "tree"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), commit], check=True,
                   capture_output=True)
    try:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        proc = subprocess.run([sys.executable, "-c", _PINNED_CHILD, str(Path(__file__).resolve()), str(tree), str(n),
                               str(seed), ",".join(map(str, ks))], cwd=tree, env=env, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"pinned old path at {commit} failed:\n{proc.stderr[-2000:]}")
        line = [x for x in proc.stdout.splitlines() if x.startswith("PINNED ")][-1]
        return json.loads(line[len("PINNED "):])
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], capture_output=True)
        subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--policies", type=int, default=20)
    ap.add_argument("--reference", type=int, default=2, help="policies also rolled out by the old path")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--pinned", default=PRE_ISSUE,
                    help="also roll the reference policies out with the code of this commit (a temporary git "
                         "worktree; '' to skip): the old path as the issue measured it")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import json

    import torch

    from adrl.groundtruth import true_value_reference, true_values
    from adrl.io import write_text
    from adrl.synth.params import SynthParams

    torch.set_num_threads(1)
    load0 = os.getloadavg()
    fz, enc, edges = reference_setup()
    pols = {f"linear{k}": linear_policy(enc.latent_dim, k) for k in range(a.policies)}
    sp = SynthParams()
    ref_names = list(pols)[:a.reference]
    old_s, old_cpu, old = [], [], {}

    def reference(name):
        t, c = time.time(), time.process_time()
        old[name] = true_value_reference(pols[name], a.patients, a.seed, sp, fz, enc, edges, progress=False)
        old_s.append(time.time() - t)
        old_cpu.append(time.process_time() - c)

    reference(ref_names[0])
    t, c = time.time(), time.process_time()
    new = true_values(pols, a.patients, a.seed, sp, fz, enc, edges)
    new_s, new_cpu = time.time() - t, time.process_time() - c
    for name in ref_names[1:]:
        reference(name)
    pinned = pinned_old_path(a.pinned, a.patients, a.seed, list(range(a.reference))) if a.pinned else None
    sim_cpu = simulator_cpu_per_copy(a.patients, 7, a.seed)
    load1 = os.getloadavg()
    same = all(old[k] == new[k] for k in ref_names)
    if not same:
        raise SystemExit(f"results differ: {[(k, old[k], new[k]) for k in ref_names if old[k] != new[k]]}")
    per_old, per_new = float(np.mean(old_s)), new_s / a.policies
    cpu_old, cpu_new = float(np.mean(old_cpu)), new_cpu / a.policies
    k = 1000 / a.patients
    cmd = "python -m benchmarks.bench_rollout" + "".join(
        f" --{k} {v}" for k, v in (("patients", a.patients), ("policies", a.policies), ("reference", a.reference),
                                   ("seed", a.seed)))
    vals = [new[k]["value"] for k in pols]
    lines = [
        "# Roll-out benchmark: true values of learned policies", "",
        f"Produced by `{cmd}` ({platform.machine()}, {os.cpu_count()} cores shared with other jobs; load "
        f"average {load0[0]:.1f} / {load0[1]:.1f} before, {load1[0]:.1f} / {load1[1]:.1f} after; "
        "OMP_NUM_THREADS=1, torch 1 thread).", "",
        f"{a.policies} random linear greedy policies on the states of an untrained 64-d GRU AIS encoder, "
        f"{a.patients:,} simulated septic patients (seed {a.seed}); featuriser fitted on a 300-patient clinician "
        "roll-out. Old path: `true_value_reference` (one policy at a time, the batch featuriser on every event so "
        "far at each decision). New path: `true_values` (the policies together on copies of the same patients, "
        "charted in one pass, the incremental featuriser). The old path ran before and after the new one (first "
        "and last reference policies) so both see the same machine state.", "",
        "| path | policies | CPU s | CPU s per policy per 1,000 patients | wall s | wall s per policy per 1,000 "
        "patients |",
        "|---|---|---|---|---|---|",
        f"| old (`true_value_reference`) | {len(ref_names)} | {sum(old_cpu):.1f} | {cpu_old * k:.2f} | "
        f"{sum(old_s):.1f} | {per_old * k:.2f} |",
        f"| new (`true_values`) | {a.policies} | {new_cpu:.1f} | {cpu_new * k:.2f} | {new_s:.1f} | {per_new * k:.2f} |",
        "", f"**Speed-up per policy: {cpu_old / cpu_new:.1f}x in CPU time, {per_old / per_new:.1f}x in wall time** "
        "(old per policy / new per policy, same run; both paths run on one thread, so CPU time is the measure "
        "that the other jobs on the machine disturb least).", "",
    ]
    report = {"command": cmd, "machine": platform.machine(), "cores": os.cpu_count(),
              "load_before": list(load0), "load_after": list(load1), "patients": a.patients,
              "policies": a.policies, "seed": a.seed,
              "old": {"policies": len(ref_names), "cpu_s": sum(old_cpu), "wall_s": sum(old_s),
                      "cpu_s_per_policy_per_1000": cpu_old * k, "wall_s_per_policy_per_1000": per_old * k},
              "new": {"policies": a.policies, "cpu_s": new_cpu, "wall_s": new_s,
                      "cpu_s_per_policy_per_1000": cpu_new * k, "wall_s_per_policy_per_1000": per_new * k},
              "speedup_cpu": cpu_old / cpu_new, "speedup_wall": per_old / per_new,
              "simulator_cpu_s_per_policy_per_1000": sim_cpu * k, "identical_results": same}
    if pinned is not None:
        p_cpu = float(np.mean([v["cpu_s"] for v in pinned.values()]))
        p_wall = float(np.mean([v["wall_s"] for v in pinned.values()]))
        p_same = all(pinned[n]["result"] == new[n] for n in ref_names)
        lines += [
            f"**Second comparison, the old path as the issue measured it (commit `{a.pinned}`, the code before issue "
            f"15, same run):** the same {len(ref_names)} reference policies rolled out by that commit's "
            "`true_value` in a child process on a temporary `git worktree` of the commit (same setup code, same "
            f"patients and seed): {p_cpu * k:.2f} CPU s ({p_wall * k:.2f} wall s) per policy per 1,000 patients, "
            f"**{p_cpu / cpu_new:.1f}x in CPU time** against the new path (the same-run ratio above stays the "
            "headline: the old path of this checkout shares the simulator and the record cleaning, which got "
            "faster during the issue, with the new path). Results identical to the new path's (value, SE, "
            f"decisions, dose_recovery): {'yes' if p_same else 'no'}.", ""]
        report["pinned"] = {"commit": a.pinned, "policies": len(pinned), "cpu_s_per_policy_per_1000": p_cpu * k,
                            "wall_s_per_policy_per_1000": p_wall * k, "speedup_cpu": p_cpu / cpu_new,
                            "identical_results": p_same}
    lines += [
        f"Where the new path's time goes: the simulator alone (physiology, the roll-out's charting and the hours "
        f"after the episode that decide the outcome; clinician doses on 7 copies of the patients, same run) takes "
        f"{sim_cpu * k:.2f} CPU s per policy per 1,000 patients of the {cpu_new * k:.2f}; every policy needs its "
        "own (its patients' courses, and so the charting's random draws, depend on its doses). The rest is the "
        "incremental featuriser (record cleaning through the cohort code, aggregation, holds), the AIS encoder "
        "and the policies.", "",
        f"Identical results on the {len(ref_names)} policies rolled out both ways (value, SE, decisions, "
        f"dose_recovery): yes. Values of the {a.policies} policies: "
        f"{min(vals):.1f} to {max(vals):.1f} (mean {np.mean(vals):.1f}); dose recovery "
        f"{min(new[k]['dose_recovery'] for k in pols):.3f} to {max(new[k]['dose_recovery'] for k in pols):.3f}.",
    ]
    write_text(a.out, "\n".join(lines) + "\n")
    write_text(a.out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
