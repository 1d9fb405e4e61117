"""Gradient steps per second: our BCQ, factored BCQ and AD-BCQ (augmentation on) against d3rlpy's DiscreteBCQ.

Same transitions (a synthetic states table in the contract of adrl/schemas.py, d = 64), same network sizes
(Q: d -> 256 -> 256 -> 25, separate imitation MLP of the same shape: d3rlpy share_encoder=False), batch 100,
Adam lr 3e-4 wd 1e-3, gamma 0.99. d3rlpy runs in its own venv (default /tmp/d3, override with
ADRL_D3RLPY_PYTHON) as a persistent subprocess, so the measurements interleave round by round on a shared
machine; we report medians over rounds and the median of the per-round ratios.

Two timings per learner:
- loop: sample a uniform batch from the transitions + one update (what a training loop costs);
- update: one update on a pre-sampled batch (the gradient step alone).

    python benchmarks/bench_train.py [--rounds 5] [--steps 300] [--threads 1 2]
writes benchmarks/results/train.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adrl.rl.data import transitions  # noqa: E402
from adrl.rl.dynamics import DynamicsConfig, fit_dynamics  # noqa: E402
from adrl.rl.params import TrainParams  # noqa: E402
from adrl.rl.train import RunSpec, make_learner  # noqa: E402

D3_PY = os.environ.get("ADRL_D3RLPY_PYTHON", "/tmp/d3/bin/python")
BATCH = 100


def synthetic_states(n_stays: int = 2000, d: int = 64, seed: int = 0) -> pd.DataFrame:
    """A states table with an AIS-like random walk, MIMIC-like action marginals and a terminal reward."""
    rng = np.random.default_rng(seed)
    L = rng.integers(3, 21, n_stays)
    traj = np.repeat(np.arange(n_stays), L)
    step = np.concatenate([np.arange(k) for k in L])
    n = len(traj)
    z = np.zeros((n, d), np.float32)
    noise = rng.normal(size=(n, d)).astype(np.float32)
    for t in range(L.max()):  # vectorised over stays, loop over <= 20 steps
        rows = np.flatnonzero(step == t)
        z[rows] = noise[rows] if t == 0 else 0.9 * z[rows - 1] + 0.3 * noise[rows]
    fl = rng.choice(5, n, p=[0.35, 0.2, 0.2, 0.15, 0.1])
    va = rng.choice(5, n, p=[0.75, 0.07, 0.06, 0.06, 0.06])
    last = step == L[traj] - 1
    done = step == L[traj] - 2
    survived = rng.random(n_stays) < 0.9
    df = pd.DataFrame(z, columns=[f"z_{i}" for i in range(d)])
    df.insert(0, "subject_id", traj.astype(np.int64))
    df.insert(1, "icustay_id", traj.astype(np.int64))
    df.insert(2, "traj", traj.astype(np.int32))
    df.insert(3, "step", step.astype(np.int16))
    split = np.where(traj < int(0.8 * n_stays), "train", "val")
    df.insert(4, "split", split)
    df["decision_fluid"] = np.where(last, -1, fl).astype(np.int8)
    df["decision_vaso"] = np.where(last, -1, va).astype(np.int8)
    df["decision"] = np.where(last, -1, 5 * fl + va).astype(np.int8)
    df["reward"] = np.where(done, 100.0 * survived[traj], 0.0).astype(np.float32)
    df["done"] = done
    df["last"] = last
    return df


D3_WORKER = textwrap.dedent("""
    import json, sys, time, warnings
    warnings.filterwarnings("ignore")
    import numpy as np, torch, d3rlpy
    from d3rlpy.algos import DiscreteBCQConfig
    from d3rlpy.models.encoders import VectorEncoderFactory
    from d3rlpy.optimizers import AdamFactory
    f = np.load(sys.argv[1])
    # episodes of decision rows only: the last decision row is terminal (next state zeros, not bootstrapped)
    ds = d3rlpy.dataset.MDPDataset(observations=f["obs"], actions=f["act"].reshape(-1, 1), rewards=f["rew"],
                                   terminals=f["term"], timeouts=f["timeout"], action_size=25)
    algo = DiscreteBCQConfig(batch_size=100, learning_rate=3e-4, gamma=0.99, action_flexibility=0.3, beta=0.01,
                             share_encoder=False, n_critics=1, target_update_interval=8000,
                             encoder_factory=VectorEncoderFactory(hidden_units=[256, 256]),
                             optim_factory=AdamFactory(weight_decay=1e-3)).create(device="cpu:0")
    algo.build_with_dataset(ds)
    print("@@" + json.dumps({"ready": True, "n_transitions": int(ds.transition_count)}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        torch.set_num_threads(cmd["threads"])
        n = cmd["steps"]
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            algo.update(ds.sample_transition_batch(100))
        loop, loop_cpu = n / (time.perf_counter() - t0), n / (time.process_time() - c0)
        batches = [ds.sample_transition_batch(100) for _ in range(n)]
        t0, c0 = time.perf_counter(), time.process_time()
        for b in batches:
            algo.update(b)
        upd, upd_cpu = n / (time.perf_counter() - t0), n / (time.process_time() - c0)
        print("@@" + json.dumps({"loop": loop, "update": upd, "loop_cpu": loop_cpu, "update_cpu": upd_cpu}),
              flush=True)
""")


def d3_dataset(df: pd.DataFrame, path: Path) -> None:
    """The train transitions as d3rlpy episodes: decision rows only, terminal flag on done rows."""
    part = df[(df.split == "train") & ~df["last"]].sort_values(["traj", "step"])
    zc = [c for c in df.columns if c.startswith("z_")]
    term = part["done"].to_numpy(np.float32)
    end_of_stay = np.r_[part.traj.to_numpy()[1:] != part.traj.to_numpy()[:-1], True]
    timeout = (end_of_stay & (term == 0)).astype(np.float32)
    np.savez(path, obs=part[zc].to_numpy(np.float32), act=part.decision.to_numpy(np.int64),
             rew=part.reward.to_numpy(np.float32), term=term, timeout=timeout)


class D3Worker:
    def __init__(self, data: Path):
        self.script = Path(tempfile.mkstemp(suffix="_d3worker.py")[1])
        self.script.write_text(D3_WORKER)
        self.proc = subprocess.Popen([D3_PY, str(self.script), str(data)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env={**os.environ, "OMP_NUM_THREADS": "2"})
        self.info = self._read()

    def _read(self) -> dict:
        """The next result line (d3rlpy logs to stdout too; ours start with @@)."""
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"d3rlpy worker ({D3_PY}) died; run it by hand to see why")
            if line.startswith("@@"):
                return json.loads(line[2:])

    def run(self, steps: int, threads: int) -> dict:
        self.proc.stdin.write(json.dumps({"steps": steps, "threads": threads}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.script.unlink()


def ours(learner, data, steps: int, seed: int) -> dict:
    n = len(data)
    z, a, r = torch.from_numpy(data.z), torch.from_numpy(data.a), torch.from_numpy(data.r)
    z2, done = torch.from_numpy(data.z2), torch.from_numpy(data.done)
    idx = torch.from_numpy(np.random.default_rng(seed).integers(0, n, size=(steps, BATCH)))
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(steps):
        j = idx[i]
        learner.update(z[j], a[j], r[j], z2[j], done[j])
    loop, loop_cpu = steps / (time.perf_counter() - t0), steps / (time.process_time() - c0)
    batches = [(z[j], a[j], r[j], z2[j], done[j]) for j in idx]
    t0, c0 = time.perf_counter(), time.process_time()
    for b in batches:
        learner.update(*b)
    return {"loop": loop, "update": steps / (time.perf_counter() - t0), "loop_cpu": loop_cpu,
            "update_cpu": steps / (time.process_time() - c0)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--stays", type=int, default=2000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train.md"))
    ap.add_argument("--append", action="store_true", help="append to --out (e.g. a second thread setting)")
    args = ap.parse_args()

    df = synthetic_states(args.stays)
    train, val = transitions(df, "train"), transitions(df, "val")
    torch.set_num_threads(2)
    dyn_cfg = DynamicsConfig(max_epochs=3)
    dyn, rep, _ = fit_dynamics(train, val, dyn_cfg, seed=0, progress=False)
    p = TrainParams()
    learners = {
        "ours BCQ": make_learner(RunSpec("bcq", 0.3, 0), train, p),
        "ours factored BCQ": make_learner(RunSpec("factored_bcq", 0.3, 0), train, p),
        "ours AD-BCQ linear, aug on": make_learner(RunSpec("adbcq", 0.3, 0, "linear", True), train, p, dyn),
        "ours AD-BCQ linear, aug off": make_learner(RunSpec("adbcq", 0.3, 0, "linear", False), train, p),
    }
    with tempfile.TemporaryDirectory() as tmp:
        d3_dataset(df, Path(tmp) / "d3.npz")
        worker = D3Worker(Path(tmp) / "d3.npz")
        assert worker.info["n_transitions"] == len(train), (worker.info, len(train))
        res: dict = {}
        t_start = time.time()
        load0 = os.getloadavg()
        for th in args.threads:
            for rnd in range(args.rounds):
                torch.set_num_threads(th)
                for name, L in learners.items():
                    res.setdefault((name, th), []).append(ours(L, train, args.steps, seed=rnd))
                res.setdefault(("d3rlpy DiscreteBCQ", th), []).append(worker.run(args.steps, th))
                print(th, rnd, {k[0]: round(v[-1]["loop"]) for k, v in res.items() if k[1] == th}, flush=True)
        worker.close()
        load1 = os.getloadavg()

    d3_ver = subprocess.run([D3_PY, "-c", "import d3rlpy, torch; print(d3rlpy.__version__, torch.__version__)"],
                            capture_output=True, text=True).stdout.strip()
    lines = [
        "# Training speed: gradient steps per second (`benchmarks/bench_train.py`)",
        "",
        f"Command: `python benchmarks/bench_train.py --rounds {args.rounds} --steps {args.steps} "
        f"--threads {' '.join(map(str, args.threads))}`; {len(train):,} train transitions "
        f"(synthetic states table, d = {train.dim}), batch {BATCH}, hidden 256 x 2, Adam 3e-4 / wd 1e-3.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, shared with other jobs (load average "
        f"{load0[0]:.1f} at start, {load1[0]:.1f} at end); torch {torch.__version__}; d3rlpy / its torch: {d3_ver}.",
        f"Wall time {time.time() - t_start:.0f} s. Rounds interleave all learners; medians over "
        f"{args.rounds} rounds of {args.steps} steps each.",
        "",
        f"AD-BCQ (aug on) uses the default {dyn_cfg.ensemble}-member dynamics ensemble ({dyn_cfg.layers} x "
        f"{dyn_cfg.hidden}{', linear skip' if dyn_cfg.linear_skip else ''}; method.md 4.4) to build B_F and B_V at "
        "every step.",
        "d3rlpy: DiscreteBCQ, share_encoder=False, VectorEncoder [256, 256], beta=0.01, its hard target update.",
        "",
        "Wall-clock rates on a loaded machine swing by 2-3x between rounds; the CPU-time rates (steps per",
        "CPU-second of the training process, `time.process_time`) are what each learner costs and are the",
        "steadier comparison. Ratios are medians of the per-round ratios (interleaved rounds).",
        "",
        "| learner | threads | loop steps/s wall | loop steps/CPU-s | update-only steps/CPU-s | "
        "ratio to d3rlpy (CPU, loop) | ratio to our BCQ (CPU, loop) | ratio to d3rlpy (wall, loop) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    def col(name, th, key):
        return np.array([r[key] for r in res[(name, th)]])

    for th in args.threads:
        d3, d3c = col("d3rlpy DiscreteBCQ", th, "loop"), col("d3rlpy DiscreteBCQ", th, "loop_cpu")
        bcqc = col("ours BCQ", th, "loop_cpu")
        for name in [*learners, "d3rlpy DiscreteBCQ"]:
            loop, loopc, updc = col(name, th, "loop"), col(name, th, "loop_cpu"), col(name, th, "update_cpu")
            lines.append(f"| {name} | {th} | {np.median(loop):.0f} | {np.median(loopc):.0f} | {np.median(updc):.0f} | "
                         f"{np.median(loopc / d3c):.2f} | {np.median(loopc / bcqc):.2f} | {np.median(loop / d3):.2f} |")
    lines += ["", "Raw per-round figures (loop steps/s wall / per CPU-s):", ""]
    for (name, th), rs in res.items():
        figs = ", ".join(f"{r['loop']:.0f}/{r['loop_cpu']:.0f}" for r in rs)
        lines.append(f"- {name}, {th} thread(s): {figs}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if args.append and Path(args.out).exists():
        lines = [Path(args.out).read_text(), "", *(["#" + lines[0]] + lines[1:])]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
