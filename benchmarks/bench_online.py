"""Online throughput: environment steps per second and updates per second (method.md 4.11, E6).

- Environment: physics steps/s of point_mass-easy through adrl's wrapper (n x n grid, action repeat 8, uniformly
  random actions) against the bare dm_control loop with the same random forces (the peer, same rounds).
- Updates: gradient updates/s (batch 128, the online/params.yaml network) of DecQN, AD-DQN (linear, no
  augmentation), AD-DQN (linear and mean, augmentation on, a dynamics ensemble fitted on 5,000 random
  transitions) and the joint DQN, at n = 9, 17, 33, interleaved round by round; ratios are against DecQN at the
  same n in the same round. One thread.

    python -m benchmarks.bench_online [--rounds 3] [--updates 200]
writes benchmarks/results/online.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "disable")

from adrl.online.agents import AgentConfig, make_agent  # noqa: E402
from adrl.online.env import PointMass  # noqa: E402
from adrl.online.params import load_online  # noqa: E402
from adrl.online.train import fit_model, random_buffer  # noqa: E402

AGENTS = [("decqn", dict(kind="decqn")), ("addqn_linear", dict(kind="addqn", mixer="linear", augment=False)),
          ("addqn_mean_aug", dict(kind="addqn", mixer="mean", augment=True)),
          ("addqn_linear_aug", dict(kind="addqn", mixer="linear", augment=True)), ("dqn", dict(kind="dqn"))]


def env_rates(n: int, decisions: int, seed: int = 0) -> tuple[float, float]:
    """(wrapper physics steps/s, bare dm_control physics steps/s) with the same number of physics steps."""
    env = PointMass("easy", n, seed, action_repeat=8)
    rng = np.random.default_rng(seed)
    env.reset()
    t0 = time.perf_counter()
    for _ in range(decisions):
        _, _, _, over = env.step(int(rng.integers(n * n)))
        if over:
            env.reset()
    wrapped = env.physics_steps / (time.perf_counter() - t0)
    bare = env.env
    bare.reset()
    steps = env.physics_steps
    t0 = time.perf_counter()
    for _ in range(steps // 8):
        u = rng.uniform(-1, 1, 2)
        for _ in range(8):
            ts = bare.step(u)
        if ts.last():
            bare.reset()
    return wrapped, (steps // 8) * 8 / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=200)
    ap.add_argument("--decisions", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_online(ROOT / "online" / "params.yaml")
    rc = cfg.run_config()
    load_before = os.getloadavg()
    rows_env, rows_upd = [], []
    bufs, models = {}, {}
    for n in (9, 17, 33):
        bufs[n] = random_buffer("easy", n, 5000, 0)
        models[n], _ = fit_model(bufs[n], 5000, n, rc, 0, np.random.default_rng(0))
    for rnd in range(args.rounds):
        for n in (9, 17, 33):
            w, b = env_rates(n, args.decisions, seed=rnd)
            rows_env.append((rnd, n, w, b))
            buf = bufs[n]
            rng = np.random.default_rng(rnd)
            batches = [[torch.from_numpy(buf[k][idx]) for k in ("z", "a", "r", "z2", "done")]
                       for idx in (rng.integers(0, 5000, rc.batch_size) for _ in range(args.updates))]
            for name, kw in AGENTS:
                ag = make_agent(4, AgentConfig(n=n, hidden=cfg.hidden, lr=cfg.lr, gamma=cfg.gamma, **kw), 0,
                                models[n] if kw.get("augment") else None)
                for b_ in batches[:10]:  # warm-up
                    ag.update(*b_)
                t0 = time.perf_counter()
                for b_ in batches:
                    ag.update(*b_)
                rows_upd.append((rnd, n, name, args.updates / (time.perf_counter() - t0)))
    load_after = os.getloadavg()
    env_md = ["| n | adrl wrapper (physics steps/s) | bare dm_control (physics steps/s) | ratio wrapper / bare |",
              "|---|---|---|---|"]
    for n in (9, 17, 33):
        r = [x for x in rows_env if x[1] == n]
        w, b = np.median([x[2] for x in r]), np.median([x[3] for x in r])
        ratio = np.median([x[2] / x[3] for x in r])
        env_md.append(f"| {n} | {w:,.0f} | {b:,.0f} | {ratio:.2f} |")
    upd_md = ["| n | " + " | ".join(a for a, _ in AGENTS) + " |", "|---" * (len(AGENTS) + 1) + "|"]
    for n in (9, 17, 33):
        cells = []
        for name, _ in AGENTS:
            rates = [x[3] for x in rows_upd if x[1] == n and x[2] == name]
            ratio = np.median([x[3] / y[3] for x in rows_upd for y in rows_upd
                               if x[1] == n == y[1] and x[2] == name and y[2] == "decqn" and x[0] == y[0]])
            cells.append(f"{np.median(rates):,.0f} ({ratio:.2f}x)")
        upd_md.append(f"| {n} | " + " | ".join(cells) + " |")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    text = "\n".join([
        "# Online throughput (point_mass)", "",
        f"Command: `python -m benchmarks.bench_online --rounds {args.rounds} --updates {args.updates} "
        f"--decisions {args.decisions}` (commit {commit}, {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, 1 thread).",
        f"Machine load (1/5/15-min) before: {load_before[0]:.1f} / {load_before[1]:.1f} / {load_before[2]:.1f}, "
        f"after: {load_after[0]:.1f} / {load_after[1]:.1f} / {load_after[2]:.1f} (2 cores shared with other jobs: "
        "absolute rates are low and noisy; the ratios, measured in the same rounds, are the comparison).", "",
        "## Environment steps per second", "",
        "Uniformly random actions, action repeat 8, median over rounds. The bare loop is dm_control alone "
        "(no grid lookup, no observation copy).", "", *env_md, "",
        "## Updates per second", "",
        f"Batch {rc.batch_size}, hidden {cfg.hidden}, median over rounds; in brackets the median per-round ratio "
        "to DecQN at the same n. Augmentation on includes the batch modification (one ensemble draw per "
        "synthetic row) but not the refits; a refit of the 5-member ensemble on 5,000 rows is timed in the "
        "sweep's cells (`seconds_model` in reports/online/runs/*.json).", "", *upd_md, ""])
    out = ROOT / "benchmarks" / "results" / "online.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
