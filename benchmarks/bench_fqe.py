"""Benchmark: the FQE fit's cost per step, the full-product step (before issue 15's audit at 100 candidates) and
the step as fitted now, in the same run.

    .venv/bin/python -m benchmarks.bench_fqe                      # K = 120 policies, 20,000 transitions
    .venv/bin/python -m benchmarks.bench_fqe --policies 20 --steps 50   # quick

Before: every step computed all 25 actions of all K heads twice, for the logged actions (online network, with
gradients) and for each policy's next-state actions (target network), and gathered one column of each:
``BatchedQ.pick`` on a (B, 25 K) product. Now: the logged action's column only, rows grouped by action
(``BatchedQ.pick_shared``: B h K multiply-adds, not 25 B h K), and the target network's bootstrap values of every
transition tabulated once per target copy (``BatchedQ.pick_all``), read by index at each step. Both steps are run
alternately on the same synthetic data (standard-normal 64-d states, random actions, 1-in-15 terminal rows with
0/100 rewards; the sizes of the default world's train split) with the default FQE settings; the table's cost is
charged to the step as its cost over ``target_every`` steps. Writes benchmarks/results/fqe.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from adrl.io import write_text

OUT = Path(__file__).resolve().parent / "results" / "fqe.md"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policies", type=int, default=120)
    ap.add_argument("--transitions", type=int, default=20000)
    ap.add_argument("--steps", type=int, default=100, help="timed steps of each kind")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    import torch

    from adrl.rl.fqe import BatchedQ, FQEConfig

    torch.set_num_threads(1)
    load0 = os.getloadavg()
    cfg = FQEConfig()
    n, d, K = a.transitions, 64, a.policies
    rng = np.random.default_rng(0)
    z = torch.from_numpy(rng.normal(size=(n, d)).astype(np.float32))
    done = torch.from_numpy((rng.random(n) < 1 / 15).astype(np.float32))
    z2 = torch.where(done[:, None] > 0, 0.0, torch.roll(z, -1, 0))
    r = torch.where(done > 0, torch.from_numpy((rng.random(n) < 0.8).astype(np.float32)), 0.0)
    act = torch.from_numpy(rng.integers(0, 25, n))
    nat = torch.from_numpy(rng.integers(0, 25, (K, n)))
    cont = 1.0 - done
    torch.manual_seed(0)
    nets = {}
    for kind in ("full", "now"):
        net, target = BatchedQ(K, d, cfg.hidden, cfg.layers), BatchedQ(K, d, cfg.hidden, cfg.layers)
        target.load_state_dict(net.state_dict())
        nets[kind] = (net, target, torch.optim.Adam(net.parameters(), lr=cfg.lr))
    gen = torch.Generator().manual_seed(0)

    def step_full():
        net, target, opt = nets["full"]
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        with torch.no_grad():
            y = r[idx] + cont[idx] * target.pick(z2[idx], nat[:, idx]).clamp(0, 1)
        loss = (net.pick(z[idx], act[idx]) - y).pow(2).mean(1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    table = {}

    def copy_now():
        table["v2"] = nets["now"][1].pick_all(z2, nat).clamp(0, 1)

    def step_now():
        net, target, opt = nets["now"]
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        y = r[idx] + cont[idx] * table["v2"][:, idx]
        loss = (net.pick_shared(z[idx], act[idx]) - y).pow(2).mean(1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    copy_now()
    for f in (step_full, step_now):  # warm-up
        f()
    cpu = {"full": 0.0, "now": 0.0, "copy": 0.0}
    copies = 0
    for i in range(a.steps):
        for kind, f in (("full", step_full), ("now", step_now)):
            c = time.process_time()
            f()
            cpu[kind] += time.process_time() - c
        if i % max(1, a.steps // 5) == 0:  # a few table builds, timed
            c = time.process_time()
            copy_now()
            cpu["copy"] += time.process_time() - c
            copies += 1
    load1 = os.getloadavg()
    full = cpu["full"] / a.steps
    table_per_step = cpu["copy"] / copies / cfg.target_every
    now = cpu["now"] / a.steps + table_per_step
    cmd = (f"python -m benchmarks.bench_fqe --policies {K} --transitions {n} --steps {a.steps}")
    lines = [
        "# FQE benchmark: CPU per gradient step, full product (before) and as fitted now", "",
        f"Produced by `{cmd}` ({platform.machine()}, {os.cpu_count()} cores shared with other jobs; load average "
        f"{load0[0]:.1f} / {load0[1]:.1f} before, {load1[0]:.1f} / {load1[1]:.1f} after; torch 1 thread).", "",
        f"{K} policies fitted together (shared trunk {cfg.layers} x {cfg.hidden}, one 25-action head each), "
        f"{n:,} synthetic transitions of 64-d states, minibatch {cfg.batch_size}, target copy every "
        f"{cfg.target_every} steps. Before: the (B, 25 K) product for the logged and for the next-state actions "
        "at every step. Now: the logged action's column only (rows grouped by action) and the target network's "
        "values tabulated once per copy. Steps of both kinds alternate in one process.", "",
        "| step | CPU ms per step | CPU s for the default 3,000 steps |",
        "|---|---|---|",
        f"| before (full product) | {1000 * full:.1f} | {3000 * full:.0f} |",
        f"| now (incl. the table, {1000 * table_per_step:.1f} ms per step amortised) | {1000 * now:.1f} | "
        f"{3000 * now:.0f} |", "",
        f"**Speed-up per step: {full / now:.1f}x in CPU time.** The values are those of the full product "
        "(tests/rl/test_fqe.py: the same Q values, gradients equal up to float rounding); a whole fit's values "
        "differ from the full product's only through that rounding, amplified by training.",
    ]
    write_text(a.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
