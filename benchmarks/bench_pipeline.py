"""Benchmark: the whole default pipeline, and WIS error against the simulator's truth at several data sizes.

    python -m benchmarks.bench_pipeline                      # synth.n_stays 4000 and 12000
    python -m benchmarks.bench_pipeline --stays 4000 --stays 8000 --seeds 0 1

For each size (and synthetic-world seed) it builds a scratch project (outside the repo) with the project's
params.yaml and `synth.n_stays` set, runs `adrl repro`, and records the wall time of every stage, the cohort
size, and for each row of the test table: WIS (95% CI), ESS, and the true value from simulator roll-outs.
Writes benchmarks/results/pipeline.md and pipeline.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import make_project, run  # noqa: E402

OUT = ROOT / "benchmarks" / "results"


def one(stays: int, seed: int, work: Path) -> dict:
    p = make_project(work / f"n{stays}-s{seed}", {"synth": {"n_stays": stays, "seed": seed}})
    t0 = time.time()
    r = run(["adrl", "repro"], p, timeout=7200)
    wall = time.time() - t0
    stage_s = {m.group(1): float(m.group(2)) for m in re.finditer(r"INFO adrl: (\w+) done in ([\d.]+) s", r.stderr)}
    table = json.loads((p / "reports/metrics/test_table.json").read_text())
    cohort = json.loads((p / "reports/metrics/cohort.json").read_text())
    return {"stays": stays, "seed": seed, "wall_s": wall, "stage_s": stage_s,
            "cohort_stays": cohort.get("stays_final"), "test_episodes": table["rows"][0].get("n_episodes"),
            "rows": [{k: r_.get(k) for k in ("policy", "wis", "wis_ci", "ess", "agreement", "true_value",
                                             "true_value_se", "wis_minus_true")} for r_ in table["rows"]]}


def fmt(v, f="{:.1f}"):
    return "-" if v is None else f.format(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stays", type=int, action="append", help="synth.n_stays (repeatable)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    sizes = args.stays or [4000, 12000]
    results = []
    with tempfile.TemporaryDirectory(prefix="adrl-bench-pipeline-") as tmp:
        for n in sizes:
            for s in args.seeds:
                print(f"pipeline: {n} stays, seed {s} ...", flush=True)
                results.append(one(n, s, Path(tmp)))
                print(f"  {results[-1]['wall_s']:.0f} s", flush=True)
    lines = ["# The whole pipeline: time, and WIS against the simulator's truth", "",
             f"`python -m benchmarks.bench_pipeline {' '.join(f'--stays {n}' for n in sizes)} --seeds "
             f"{' '.join(map(str, args.seeds))}` on {platform.node()} ({os.cpu_count()} cores), "
             f"{time.strftime('%Y-%m-%d %H:%M')}. Project params.yaml otherwise; the true value is 100 x survival "
             "of simulator roll-outs (common random numbers across policies).", ""]
    for res in results:
        st = ", ".join(f"{k} {v:.0f} s" for k, v in res["stage_s"].items())
        lines += [f"## {res['stays']} ICU stays (synthetic seed {res['seed']}): {res['cohort_stays']} in the cohort, "
                  f"{res['test_episodes']} test episodes", "", f"`adrl repro` {res['wall_s']:.0f} s ({st}).", "",
                  "| policy | WIS | WIS 95% CI | ESS | agreement | true value (SE) | WIS - true |",
                  "|---|---|---|---|---|---|---|"]
        for r in res["rows"]:
            ci = r["wis_ci"] or [None, None]
            lines.append(f"| {r['policy']} | {fmt(r['wis'])} | ({fmt(ci[0])}, {fmt(ci[1])}) | {fmt(r['ess'])} | "
                         f"{fmt(r['agreement'], '{:.3f}')} | {fmt(r['true_value'])} ({fmt(r['true_value_se'])}) | "
                         f"{fmt(r['wis_minus_true'])} |")
        lines.append("")
    OUT.mkdir(exist_ok=True)
    (OUT / "pipeline.md").write_text("\n".join(lines) + "\n")
    (OUT / "pipeline.json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
