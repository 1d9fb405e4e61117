"""Benchmark: OPE of every checkpoint of a sweep, selection, and the bootstrap of the selected policies.

    /work/venv-probe/bin/python -m benchmarks.bench_ope            # default: 3 x 40 x 100 = 12,000 candidates
    /work/venv-probe/bin/python -m benchmarks.bench_ope --runs 4    # quick

Fake but realistically shaped data: E validation episodes of 2-20 decisions (about 35,000 decisions for
3,000 episodes), 64-dim states, a kNN behaviour model fit on them (timed), greedy candidates agreeing
with the clinician on 40-90% of decisions. The fake greedy actions are generated outside the timed
region. Writes benchmarks/results/ope.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from adrl.ope import estimators as est
from adrl.ope import workflow as wf
from adrl.ope.behaviour import KnnBehaviour

OUT = Path(__file__).resolve().parent / "results" / "ope.md"


def fake_split(n_episodes: int, d: int, rng):
    lengths = rng.integers(2, 21, n_episodes)
    ep = np.repeat(np.arange(n_episodes), lengths)
    n = len(ep)
    centers = rng.normal(size=(25, d))
    prior = rng.dirichlet(np.full(25, 0.5))
    a = rng.choice(25, size=n, p=prior)
    z = centers[a] * 0.7 + rng.normal(size=(n, d))
    survived = rng.random(n_episodes) < 0.9
    r = np.zeros(n)
    ends = np.cumsum(lengths) - 1
    r[ends] = 100.0 * survived
    return ep, z, a, r


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=3000)
    ap.add_argument("--algorithms", type=int, default=3)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--checkpoints", type=int, default=100)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--train-rows", type=int, default=0,
                    help="also time the train-fit kNN (fit on this many rows, queried with the split); 0: skip")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    load0 = os.getloadavg()

    ep, z, acts, r = fake_split(a.episodes, a.dim, rng)
    n = len(ep)
    t = time.perf_counter()
    knn = KnnBehaviour(a.k).fit(z, acts)
    both = knn.predict_proba_both(z)
    t_knn = time.perf_counter() - t
    P = both["joint"]
    t_train = None
    if a.train_rows:
        _, zt, at, _ = fake_split(a.train_rows // 11 + 1, a.dim, rng)
        t = time.perf_counter()
        KnnBehaviour(a.k).fit(zt[:a.train_rows], at[:a.train_rows]).predict_proba_both(z)
        t_train = time.perf_counter() - t
    # train-fit probabilities for softening: the factored estimate stands in (a second fit costs the same)
    data = est.make_logged(ep, acts, r, P, both["factored"])

    algs = ["bcq", "factored_bcq", "adbcq"][: a.algorithms] + [f"alg{i}" for i in range(3, a.algorithms)]
    t_score, t_gen, parts = 0.0, 0.0, []
    steps = np.arange(1, a.checkpoints + 1) * 100
    for alg in algs:
        for run in range(a.runs):
            t = time.perf_counter()
            p_agree = rng.uniform(0.4, 0.9, size=(a.checkpoints, 1))
            agree = rng.random((a.checkpoints, n)) < p_agree
            greedy = np.where(agree, acts[None, :], rng.integers(0, 25, (a.checkpoints, n)))
            meta = pd.DataFrame({"run_id": f"{alg}-{run}", "algorithm": alg, "mixer": "linear", "augment": True,
                                 "tau": 0.3, "seed": run, "step": steps})
            t_gen += time.perf_counter() - t
            t = time.perf_counter()
            parts.append(wf.score_candidates(data, meta, greedy, 0.01, 1000.0, chunk=a.chunk, progress=False))
            t_score += time.perf_counter() - t
    scores = pd.concat(parts, ignore_index=True)
    C = len(scores)

    t = time.perf_counter()
    scores, sel = wf.select_models(scores, data.n_episodes, 0.069, 51)
    t_sel = time.perf_counter() - t

    chosen = {alg: scores.loc[info["index"]] for alg, info in sel["algorithms"].items()}
    pols = {}
    for alg, row in chosen.items():  # fresh actions at the chosen candidates' agreement rates (timing only)
        g = np.random.default_rng(int(row["seed"]) * 1000 + int(row["step"]))
        pols[alg] = np.where(g.random(n) < row["agreement"], acts, g.integers(0, 25, n))
    t = time.perf_counter()
    res = wf.evaluate_policies(data, pols, epsilon=0.01, clip=1000.0, n_boot=a.boot, seed=0,
                               min_ess=0.069 * data.n_episodes, max_share=0.1)
    t_boot = time.perf_counter() - t
    load1 = os.getloadavg()

    lines = [
        "# OPE benchmark (benchmarks/bench_ope.py)",
        "",
        f"Command: `python -m benchmarks.bench_ope --episodes {a.episodes} --algorithms {a.algorithms} "
        f"--runs {a.runs} --checkpoints {a.checkpoints} --boot {a.boot} --k {a.k}"
        + (f" --train-rows {a.train_rows}" if a.train_rows else "") + "`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}. **Shared** with other jobs while measured: "
        f"load average {load0[0]:.2f} before, {load1[0]:.2f} after (1-min).",
        "",
        f"Data (fake, realistically shaped): {data.n_episodes:,} validation episodes, {n:,} decisions, "
        f"{a.dim}-dim states; {C:,} candidate policies ({a.algorithms} algorithms x {a.runs} runs x "
        f"{a.checkpoints} checkpoints).",
        "",
        "| step | seconds | note |",
        "|---|---:|---|",
        f"| kNN behaviour fit + predict (K={a.k}, self-fit, joint + factored, one search) | {t_knn:.1f} | "
        f"{n:,} x {n:,} neighbour search |",
        *([f"| train-fit kNN: fit on {a.train_rows:,} train rows, predict the {n:,} split rows | {t_train:.1f} | "
            "needed once per evaluated split |"] if t_train is not None else []),
        f"| validation WIS / ESS / IS / diagnostics of all {C:,} candidates | {t_score:.1f} | "
        f"{1e3 * t_score / C:.2f} ms per candidate, blocks of {a.chunk} |",
        f"| Pareto fronts, selection, 51-point cutoff sensitivity | {t_sel:.2f} | {len(sel['variants'])} groups |",
        f"| paired bootstrap (B={a.boot}) of {len(pols)} selected policies + clinician: WIS, ESS, PDWIS, "
        f"differences | {t_boot:.2f} | |",
        f"| (not OPE: generating the fake greedy actions) | {t_gen:.1f} | excluded above |",
        "",
        "Not included: computing the candidates' greedy actions from the networks (adrl.rl.policy.greedy_matrix, "
        "the RL room's cost) and the WIS error against simulator truth (needs the synthetic world's policy "
        "roll-outs; see the evaluate stage's test table `true_value`).",
        "",
        "Selected (fake data, numbers only show the pipeline runs): "
        + "; ".join(f"{k}: WIS {v['wis']:.2f} (CI {v['wis_ci'][0]:.2f}-{v['wis_ci'][1]:.2f}), ESS {v['ess']:.1f}"
                    for k, v in res["policies"].items() if k != "clinician"),
        "",
    ]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
