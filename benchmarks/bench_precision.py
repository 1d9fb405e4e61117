"""train.precision: float32 against bfloat16 (benchmarks/results/precision.md).

    python -m benchmarks.bench_precision scan [--states data/processed/states.parquet]
        one process, one thread: updates per CPU-second of each learner alone (R = 1) and in a batched group of
        2 seeds x 8 thresholds (R = 16, one imitation network per seed), float32 and bfloat16, best of 2 interleaved
        rounds -> benchmarks/results/precision_scan.json
    python -m benchmarks.bench_precision compare FLOAT32_DIR BFLOAT16_DIR
        two checkouts that each ran `dvc repro` (the second with train.precision: bfloat16): the value checks of every
        run, the true value of each selected policy and of the audit's candidates, the train stage's time
        -> benchmarks/results/precision_compare.json

The exact-answer MDPs: `python -m benchmarks.convergence tabular --steps 10000 --every 2000 --overrides
'{"precision": "bfloat16"}' --tag precision_bfloat16` (and float32), compared in precision.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RES = ROOT / "benchmarks" / "results"
TAUS = [0, 0.01, 0.05, 0.1, 0.3, 0.5, 0.75, 0.9999]
LEARNERS = ("bcq", "factored_bcq", "adbcq")


def scan(states: str, steps: int = 40, rounds: int = 2) -> dict:
    import numpy as np
    import torch

    from adrl.rl.batched import BatchedLearners
    from adrl.rl.data import read_states, transitions
    from adrl.rl.params import TrainParams
    from adrl.rl.train import TR_KEYS, RunSpec, dynamics_config, fit_dynamics, make_learner
    torch.set_num_threads(1)
    df = read_states(states)
    tr, va, p = transitions(df, "train"), transitions(df, "val"), TrainParams()
    data = [torch.from_numpy(getattr(tr, k)) for k in TR_KEYS]
    dyn = {s: fit_dynamics(tr, va, dynamics_config(p), s, progress=False)[0] for s in (0, 1)}
    idx = {s: torch.from_numpy(np.random.default_rng(s).integers(0, len(tr), size=(steps, p.batch_size)))
           for s in (0, 1)}

    def spec(alg, tau, seed):
        return RunSpec(alg, tau, seed, "linear" if alg == "adbcq" else None, True if alg == "adbcq" else None)

    out: dict[str, float] = {}
    for _ in range(rounds):
        for alg in LEARNERS:
            for R in (1, 16):
                specs = [spec(alg, 0.3, 0)] if R == 1 else [spec(alg, t, s) for s in (0, 1) for t in TAUS]
                for prec in ("float32", "bfloat16"):
                    ls = [make_learner(s, tr, p, dyn[s.seed] if s.needs_dynamics else None) for s in specs]
                    lrn = ls[0] if R == 1 else BatchedLearners(ls)

                    def step(i):
                        b = ([t[idx[0][i]] for t in data] if R == 1 else
                             [torch.stack([t[idx[s.seed][i]] for s in specs]) for t in data])
                        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bfloat16"):
                            lrn.update(*b)
                    for i in range(3):
                        step(i)
                    c0 = time.process_time()
                    for i in range(3, steps):
                        step(i)
                    key = f"{alg} R={R} {prec}"
                    out[key] = max(out.get(key, 0.0), (steps - 3) * R / (time.process_time() - c0))
    return {"run_steps_per_cpu_s": out, "steps": steps, "rounds": rounds,
            "native_bfloat16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def compare(a: Path, b: Path) -> dict:
    import statistics as st

    import pandas as pd

    def one(d: Path) -> dict:
        m = d / "reports" / "metrics"
        tr = json.loads((m / "train.json").read_text())
        vc: dict[str, list] = {}
        for rid, v in tr["value_check"].items():
            vc.setdefault(rid.split("-")[0], []).append(v)
        table = json.loads((m / "test_table.json").read_text())
        audit = pd.read_csv(d / "reports" / "plots" / "audit.csv")
        audit["learner"] = audit["run_id"].str.split("-").str[0]
        timing = json.loads((d / "reports" / "timings" / "train.json").read_text())
        return {
            "runs": tr["runs"], "not_converged": len(tr["not_converged"]),
            "value_check": {k: {"ratio_median": st.median(x["ratio"] for x in v), "ratio_min": min(x["ratio"] for x in v),
                                "ratio_max": max(x["ratio"] for x in v),
                                "td_error_median": st.median(x["td_error"] for x in v)} for k, v in vc.items()},
            "selected_true_value": {r["policy"]: [r.get("true_value"), r.get("true_value_se")] for r in table["rows"]},
            "audit_true_value": {k: {"n": int(len(g)), "mean": float(g.mean()), "median": float(g.median()),
                                     "max": float(g.max())} for k, g in audit.groupby("learner")["true_value"]},
            "train_seconds": timing.get("train_seconds"),
        }
    return {"float32": one(a), "bfloat16": one(b), "dirs": [str(a), str(b)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scan")
    s.add_argument("--states", default=str(ROOT / "data" / "processed" / "states.parquet"))
    c = sub.add_parser("compare")
    c.add_argument("float32_dir", type=Path)
    c.add_argument("bfloat16_dir", type=Path)
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    before = os.getloadavg()
    if a.cmd == "scan":
        res, name = scan(a.states), "precision_scan.json"
        res["command"] = "python -m benchmarks.bench_precision scan"
    else:
        res, name = compare(a.float32_dir, a.bfloat16_dir), "precision_compare.json"
        res["command"] = "python -m benchmarks.bench_precision compare FLOAT32_DIR BFLOAT16_DIR"
    res |= {"load_before": before, "load_after": os.getloadavg(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                          time.gmtime())}
    (RES / name).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
