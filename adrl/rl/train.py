"""Training runs and sweeps: algorithms x (mixers x augment, AD-BCQ only) x thresholds x seeds.

Output layout (``out_dir``, e.g. models/train)::

    runs.json                         manifest: every run record and every dynamics fit
    runs/<run_id>/run.json            algorithm, network config, checkpoint steps, steps/s, loss history
    runs/<run_id>/checkpoints.pt      {"steps": (C,), "params": {name: (C, ...)}}: all checkpoints stacked
    dynamics/seed<k>/ensemble.pt      the projected dynamics ensemble shared by the augmented AD-BCQ runs
    dynamics/seed<k>/report.json      its validation metrics and loss curves

Everything is seeded: the same params and states give identical checkpoints.
"""
from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import multiprocessing as mp
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..errors import ConfigError
from ..io import atomic_path, without_timings, write_json
from .adbcq import ADBCQ, ADBCQConfig
from .bcq import BCQ, BCQConfig
from .data import Transitions, transitions
from .dynamics import DynamicsConfig, DynamicsEnsemble, fit_dynamics
from .factored_bcq import FactoredBCQ, FactoredBCQConfig
from .params import TrainParams
from .policy import CKPT_FILE, MANIFEST, RUN_FILE

log = logging.getLogger("adrl.rl")


@dataclass(frozen=True)
class RunSpec:
    algorithm: str
    tau: float
    seed: int
    mixer: str | None = None      # AD-BCQ only
    augment: bool | None = None   # AD-BCQ only
    tau_k: tuple[float, float] | None = None  # per-head thresholds (train.tau_per_head) of the factored filter

    @property
    def run_id(self) -> str:
        mid = f"-{self.mixer}-{'aug' if self.augment else 'noaug'}" if self.algorithm == "adbcq" else ""
        tau = f"tau{self.tau:g}" if self.tau_k is None else f"tauF{self.tau_k[0]:g}V{self.tau_k[1]:g}"
        return f"{self.algorithm}{mid}-{tau}-s{self.seed}"

    @property
    def needs_dynamics(self) -> bool:
        return self.algorithm == "adbcq" and bool(self.augment)


def expand_sweep(p: TrainParams) -> list[RunSpec]:
    """The runs of the sweep, in a fixed order; duplicate entries in a list are an error."""
    for name in ("algorithms", "mixers", "augment", "thresholds", "seeds"):
        vals = getattr(p, name)
        if len(vals) == 0:
            raise ConfigError(f"train.{name} is an empty list; give at least one value")
        if len(set(vals)) != len(vals):
            raise ConfigError(f"train.{name} has duplicate entries: {vals}")
    specs = []
    for algo in p.algorithms:
        variants = [(m, a) for m in p.mixers for a in p.augment] if algo == "adbcq" else [(None, None)]
        # train.tau_per_head replaces the threshold sweep of the factored filters: one run per variant and seed
        per_head = p.tau_per_head is not None and algo in ("factored_bcq", "adbcq")
        taus = [min(p.tau_per_head)] if per_head else p.thresholds
        tau_k = tuple(float(t) for t in p.tau_per_head) if per_head else None
        for mixer, aug in variants:
            for tau in taus:
                for seed in p.seeds:
                    specs.append(RunSpec(algo, float(tau), int(seed), mixer, aug, tau_k))
    return specs


def algo_config(spec: RunSpec, p: TrainParams):
    common = dict(tau=spec.tau, hidden=p.hidden, lr=p.lr, weight_decay=p.weight_decay, gamma=p.gamma,
                  polyak=p.polyak)
    if spec.algorithm == "bcq":
        return BCQConfig(**common)
    if spec.algorithm == "factored_bcq":
        return FactoredBCQConfig(**common, tau_per_head=spec.tau_k)
    bias = None if p.state_bias == "auto" else p.state_bias == "on"
    return ADBCQConfig(**common, mixer=spec.mixer, state_bias=bias, augment=bool(spec.augment),
                       lambda_proj=p.lambda_proj, reuse_real=p.reuse_real,
                       mixer_grad_to_heads=p.mixer_grad_to_heads, r_max=p.r_max,
                       heads=p.heads, state_cond=p.state_cond, relu_monotone=p.relu_monotone,
                       mlp2_activation=p.mlp2_activation, bc_filter=p.bc_filter, tau_per_head=spec.tau_k)


def make_learner(spec: RunSpec, d: int, p: TrainParams, dynamics: DynamicsEnsemble | None = None):
    cfg = algo_config(spec, p)
    if spec.algorithm == "bcq":
        return BCQ(d, cfg, spec.seed)
    if spec.algorithm == "factored_bcq":
        return FactoredBCQ(d, cfg, spec.seed)
    return ADBCQ(d, cfg, spec.seed, dynamics=dynamics if spec.needs_dynamics else None)


def dynamics_config(p: TrainParams) -> DynamicsConfig:
    return DynamicsConfig(**p.dynamics.model_dump(), r_max=p.r_max)


def fit_loop(learner, data: Transitions, steps: int, batch_size: int, checkpoint_every: int, seed: int,
             progress: bool | None = None, desc: str = "train"):
    """Run ``steps`` updates on uniformly sampled batches; snapshot the policy networks every checkpoint.

    Returns (checkpoint steps, list of state dicts, history {stat: [mean over the steps since the last
    checkpoint]}, seconds spent in the loop).
    """
    n = len(data)
    if n == 0:
        raise ConfigError("no transitions to train on")
    z, a, r = torch.from_numpy(data.z), torch.from_numpy(data.a), torch.from_numpy(data.r)
    z2, done = torch.from_numpy(data.z2), torch.from_numpy(data.done)
    idx_all = torch.from_numpy(np.random.default_rng(seed).integers(0, n, size=(steps, batch_size)))
    ck_steps, ck_states, hist, window = [], [], {}, []
    t0 = time.perf_counter()
    for step in tqdm(range(1, steps + 1), desc=desc, disable=None if progress is None else not progress,
                     leave=False, mininterval=2.0):
        idx = idx_all[step - 1]
        window.append(learner.update(z[idx], a[idx], r[idx], z2[idx], done[idx]))
        if step % checkpoint_every == 0 or step == steps:
            ck_steps.append(step)
            ck_states.append({k: v.detach().clone() for k, v in learner.net.state_dict().items()})
            for key in dict.fromkeys(k for w in window for k in w):  # some stats are not computed every step
                vals = [w[key] for w in window if key in w]
                hist.setdefault(key, []).append(float(torch.stack(vals).float().mean()))
            hist.setdefault("step", []).append(step)
            window = []
    return ck_steps, ck_states, hist, time.perf_counter() - t0


def train_run(spec: RunSpec, data: Transitions, p: TrainParams, out_dir: Path,
              dynamics: DynamicsEnsemble | None = None, dynamics_id: str | None = None,
              progress: bool | None = None) -> dict:
    """Train one run and write runs/<run_id>/ atomically; return its record (with the loss history)."""
    learner = make_learner(spec, data.dim, p, dynamics)
    ck_steps, ck_states, hist, secs = fit_loop(learner, data, p.steps, p.batch_size, p.checkpoint_every,
                                               spec.seed, progress, desc=spec.run_id)
    dtype = torch.float16 if p.checkpoint_dtype == "float16" else torch.float32
    blob = {"steps": torch.tensor(ck_steps, dtype=torch.int64),
            "params": {k: torch.stack([s[k] for s in ck_states]).to(dtype) for k in ck_states[0]}}
    record = {
        "run_id": spec.run_id, "algorithm": spec.algorithm, "mixer": spec.mixer, "augment": spec.augment,
        "tau": spec.tau, "seed": spec.seed, "d": data.dim, "config": asdict(learner.cfg),
        "steps": ck_steps, "n_train_transitions": len(data), "batch_size": p.batch_size,
        "train_seconds": secs, "steps_per_s": p.steps / secs if secs > 0 else float("nan"),
        "threads": torch.get_num_threads(), "dynamics": dynamics_id if spec.needs_dynamics else None,
        "final": {k: v[-1] for k, v in hist.items() if k != "step"}, "history": hist,
    }
    run_dir = Path(out_dir) / "runs" / spec.run_id
    with atomic_path(run_dir) as tmp:
        tmp.mkdir()
        torch.save(blob, tmp / CKPT_FILE)
        # timings stay out of the outputs (they change every run): the returned record carries them
        (tmp / RUN_FILE).write_text(json.dumps(without_timings(record), indent=1) + "\n")
    log.info("%s: %d steps, %.0f steps/s", spec.run_id, p.steps, record["steps_per_s"])
    return record


# ---- worker processes ------------------------------------------------------------------------------
def _die_with_parent(parent_pid: int) -> None:
    """Pool initializer: the worker gets SIGKILL when the process that started it dies (Linux
    PR_SET_PDEATHSIG), so killing the stage, even with SIGKILL, never leaves workers training."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C goes to the stage, which stops the workers
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)     # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):              # not Linux: the stage's own shutdown still stops them
        pass
    if os.getppid() != parent_pid:                 # the parent died before the signal was armed
        os._exit(1)


def _stop_pool(ex: ProcessPoolExecutor) -> None:
    """Kill the pool's workers now (no waiting for running or queued runs) and reap them."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    for proc in procs:
        if proc.is_alive():
            proc.kill()
    ex.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.join(timeout=5)


# ---- dynamics persistence ---------------------------------------------------------------------------
def save_dynamics(model: DynamicsEnsemble, cfg: DynamicsConfig, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save({"config": asdict(cfg), "d": model.d, "state": model.state_dict()}, tmp)


def load_dynamics(path: str | Path) -> DynamicsEnsemble:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    with torch.random.fork_rng(devices=[]):
        model = DynamicsEnsemble(blob["d"], DynamicsConfig(**blob["config"]))
    model.load_state_dict(blob["state"])
    model.eval()
    for q in model.parameters():
        q.requires_grad_(False)
    return model


# ---- sweep ------------------------------------------------------------------------------------------
def _worker(spec: RunSpec, data_path: str, p_json: str, out_dir: str, dyn_path: str | None,
            dyn_id: str | None) -> dict:
    p = TrainParams.model_validate_json(p_json)
    torch.set_num_threads(p.threads)
    with np.load(data_path) as f:
        data = Transitions(*(f[k] for k in ("z", "a", "r", "z2", "done")))
    dyn = load_dynamics(dyn_path) if dyn_path else None
    return train_run(spec, data, p, Path(out_dir), dyn, dyn_id, progress=False)


def run_sweep(df: pd.DataFrame, p: TrainParams, out_dir: str | Path, where: str = "states table",
              progress: bool | None = None,
              on_dynamics: Callable[[int, dict, dict], None] | None = None,
              on_run: Callable[[dict], None] | None = None) -> dict:
    """Fit the dynamics ensembles, train every run of the sweep, write ``out_dir`` atomically.

    ``on_dynamics(seed, report, history)`` and ``on_run(record)`` are called as results arrive (the stage
    uses them to log to MLflow). Returns the manifest.
    """
    specs = expand_sweep(p)
    threads_before = torch.get_num_threads()
    try:
        return _sweep(df, p, Path(out_dir), specs, where, progress, on_dynamics, on_run)
    finally:
        torch.set_num_threads(threads_before)


def _sweep(df, p: TrainParams, out_dir: Path, specs: list[RunSpec], where, progress, on_dynamics, on_run) -> dict:
    train = transitions(df, "train", where)
    dyn_seeds = sorted({s.seed for s in specs if s.needs_dynamics})
    val = transitions(df, "val", where) if dyn_seeds else None
    torch.set_num_threads(p.threads)  # 2 threads measured fragile on a shared machine (benchmarks/results/train.md)
    log.info("sweep: %d runs on %d train transitions (d=%d); dynamics fits for seeds %s",
             len(specs), len(train), train.dim, dyn_seeds)
    in_train = df["split"] == "train"
    manifest: dict = {"n_train_transitions": len(train), "d": train.dim, "dynamics": {}, "runs": [],
                      # rows without a transition are the stays' last rows (no decision is taken there)
                      "counts": {"train_rows": int(in_train.sum()), "train_stays": int(df.loc[in_train, "traj"].nunique()),
                                 "train_transitions": len(train),
                                 "val_transitions": len(val) if val is not None else None}}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        dyn_paths: dict[int, Path] = {}
        for seed in dyn_seeds:
            t0 = time.perf_counter()
            model, report, hist = fit_dynamics(train, val, dynamics_config(p), seed, where, progress)
            report["fit_seconds"] = time.perf_counter() - t0
            rel = Path("dynamics") / f"seed{seed}"
            save_dynamics(model, dynamics_config(p), tmp / rel / "ensemble.pt")
            write_json(tmp / rel / "report.json", {"seed": seed, "report": without_timings(report), "history": hist})
            dyn_paths[seed] = tmp / rel / "ensemble.pt"
            manifest["dynamics"][f"seed{seed}"] = {"path": str(rel / "ensemble.pt"), "report": report}
            if on_dynamics:
                on_dynamics(seed, report, hist)
        records = []
        if p.workers > 1 and len(specs) > 1:
            data_path = tmp / ".train_transitions.npz"
            np.savez(data_path, **{k: getattr(train, k) for k in ("z", "a", "r", "z2", "done")})
            ctx = mp.get_context("spawn")
            env_threads = os.environ.get("OMP_NUM_THREADS")
            os.environ["OMP_NUM_THREADS"] = str(p.threads)
            try:
                ex = ProcessPoolExecutor(max_workers=min(p.workers, len(specs)), mp_context=ctx,
                                         initializer=_die_with_parent, initargs=(os.getpid(),))
                try:
                    futs = [ex.submit(_worker, s, str(data_path), p.model_dump_json(), str(tmp),
                                      str(dyn_paths[s.seed]) if s.needs_dynamics else None,
                                      f"seed{s.seed}" if s.needs_dynamics else None) for s in specs]
                    for fut in tqdm(futs, desc="sweep", disable=None if progress is None else not progress):
                        rec = fut.result()
                        records.append(rec)
                        if on_run:
                            on_run(rec)
                except BaseException:      # an error, Ctrl-C or SIGTERM: stop the workers now, not after their runs
                    _stop_pool(ex)
                    raise
                ex.shutdown(wait=True)
            finally:
                if env_threads is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = env_threads
            data_path.unlink()
        else:
            dyn_models = {s: load_dynamics(pth) for s, pth in dyn_paths.items()}
            for s in tqdm(specs, desc="sweep", disable=None if progress is None else not progress):
                rec = train_run(s, train, p, tmp, dyn_models.get(s.seed) if s.needs_dynamics else None,
                                f"seed{s.seed}" if s.needs_dynamics else None, progress)
                records.append(rec)
                if on_run:
                    on_run(rec)
        manifest["runs"] = [{k: v for k, v in r.items() if k not in ("history", "config")}
                            | {"run_dir": f"runs/{r['run_id']}"} for r in records]
        write_json(tmp / MANIFEST, without_timings(manifest))
    return manifest
