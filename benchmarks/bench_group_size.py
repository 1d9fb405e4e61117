"""The method's whole grid batched at two group sizes, alternated on one machine (train.group_size; issue 13).

BCQ, factored BCQ and AD-BCQ (linear mixer, augmentation) x 8 thresholds x 5 seeds, as benchmarks/bench_sweep.py's
full grid, through adrl.rl.train.run_sweep on `train.workers` processes, once per group size per round, the order
reversed every other round (A B, then B A) so that a drift of the host's speed slows both sizes alike. Each sweep's
wall time and CPU time (this process and its workers) and its groups are recorded.

    python -m benchmarks.bench_group_size [--sizes 20,40] [--steps 10000] [--precision bfloat16] [--rounds 1]

Writes benchmarks/results/group_size.{md,json} (--out).
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from adrl.rl.data import read_states, transitions
from adrl.rl.params import TrainParams
from adrl.rl.train import expand_sweep, plan_groups, run_sweep
from benchmarks.bench_sweep import write_results

ROOT = Path(__file__).resolve().parents[1]
GRID = dict(algorithms=["bcq", "factored_bcq", "adbcq"], mixers=["linear"], augment=[True],
            thresholds=[0, 0.01, 0.05, 0.1, 0.3, 0.5, 0.75, 0.9999], seeds=[0, 1, 2, 3, 4])


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def one_sweep(df, d: int, size: int, steps: int, precision: str, memory_mb: int) -> dict:
    p = TrainParams(**GRID, group_size=size, group_memory_mb=memory_mb, steps=steps, precision=precision)
    groups = plan_groups(expand_sweep(p), p, d, p.workers)   # the groups run_sweep makes of a fresh sweep
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_group_size_") as tmp:
        t0, c0 = time.perf_counter(), _cpu()
        run_sweep(df, p, Path(tmp) / "train", progress=False)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
    return {"group_size": size, "groups": [len(g) for g in groups], "wall_s": wall, "cpu_s": cpu,
            "load_before": load, "load_after": os.getloadavg(), "at": time.strftime("%H:%M:%S", time.gmtime())}


def summary(sweeps: list[dict]) -> dict:
    out = {}
    for s in sorted({x["group_size"] for x in sweeps}):
        xs = [x for x in sweeps if x["group_size"] == s]
        out[str(s)] = {"n": len(xs), "wall_s_mean": sum(x["wall_s"] for x in xs) / len(xs),
                       "cpu_s_mean": sum(x["cpu_s"] for x in xs) / len(xs),
                       "wall_s": [round(x["wall_s"], 1) for x in xs], "cpu_s": [round(x["cpu_s"], 1) for x in xs]}
    return out


def report(res: dict) -> str:
    lines = [f"# The method's grid batched at group sizes {', '.join(map(str, res['sizes']))} "
             f"(`benchmarks/bench_group_size.py`)", "",
             f"Command: `{res['command']}`; {res['runs']} runs (BCQ, factored BCQ, AD-BCQ linear with augmentation x 8 "
             f"thresholds x 5 seeds), {res['steps']:,} steps each, train.precision {res['precision']}, "
             f"{res['workers']} workers x 1 thread, group_memory_mb {res['memory_mb']}; {res['machine']}; "
             f"started {res['date']}. The sizes alternate (A B, B A, ...): compare the sizes within this file, not with other "
             "runs.", "",
             "| group_size | groups | wall s (each sweep) | CPU s (each sweep) | mean wall s | mean CPU s |",
             "|---|---|---|---|---|---|"]
    for s, v in res["summary"].items():
        groups = next(x["groups"] for x in res["sweeps"] if str(x["group_size"]) == s)
        lines.append(f"| {s} | {groups} | {', '.join(f'{w:.0f}' for w in v['wall_s'])} | "
                     f"{', '.join(f'{c:.0f}' for c in v['cpu_s'])} | {v['wall_s_mean']:.0f} | {v['cpu_s_mean']:.0f} |")
    lines += ["", "Sweeps in the order they ran:", "", "| at (UTC, end) | group_size | wall s | CPU s | load before |",
              "|---|---|---|---|---|"]
    lines += [f"| {x['at']} | {x['group_size']} | {x['wall_s']:.1f} | {x['cpu_s']:.1f} | "
              f"{' / '.join(f'{v:.2f}' for v in x['load_before'])} |" for x in res["sweeps"]]
    for note in res.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def save(out: Path, res: dict) -> None:
    write_results(out, res, report(res))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="20,40")
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--precision", default="bfloat16", choices=["float32", "bfloat16"])
    ap.add_argument("--rounds", type=int, default=1, help="rounds of all sizes, the order reversed every other round")
    ap.add_argument("--memory-mb", type=int, default=8192, help="train.group_memory_mb (a group of 40 needs ~3.7 GB)")
    ap.add_argument("--states", default=str(ROOT / "data" / "processed" / "states.parquet"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "group_size"))
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    df = read_states(args.states)
    d = transitions(df, "train").dim
    torch.set_num_threads(1)
    res = {"command": "python -m benchmarks.bench_group_size " + " ".join(
               f"--{k.replace('_', '-')} {v}" for k, v in (("sizes", args.sizes), ("steps", args.steps),
                                                          ("precision", args.precision), ("rounds", args.rounds))),
           "sizes": sizes, "steps": args.steps, "precision": args.precision, "memory_mb": args.memory_mb,
           "workers": TrainParams().workers, "runs": len(expand_sweep(TrainParams(**GRID))),
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "sweeps": []}
    for r in range(args.rounds):
        for s in (sizes if r % 2 == 0 else sizes[::-1]):
            res["sweeps"].append(one_sweep(df, d, s, args.steps, args.precision, args.memory_mb))
            print(f"[bench_group_size] group_size {s}: {res['sweeps'][-1]['wall_s']:.0f} s", flush=True)
    res["summary"] = summary(res["sweeps"])
    save(Path(args.out), res)


if __name__ == "__main__":
    main()
