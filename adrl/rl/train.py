"""Training runs and sweeps: algorithms x (mixers x augment, AD-BCQ only) x thresholds x seeds.

Output layout (``out_dir``, e.g. models/train)::

    runs.json                         manifest: every run record and every dynamics fit
    runs/<run_id>/run.json            algorithm, network config, checkpoint steps, steps/s, loss history
    runs/<run_id>/checkpoints.pt      {"steps": (C,), "params": {name: (C, ...)}}: all checkpoints stacked
    dynamics/seed<k>/ensemble.pt      the projected dynamics ensemble shared by the augmented AD-BCQ runs
    dynamics/seed<k>/report.json      its validation metrics and loss curves

Runs of one architecture (algorithm, mixer and options; seeds and thresholds may differ) train as one vectorised
model (adrl/rl/batched.py), in groups of at most train.group_size runs within train.group_memory_mb; the groups and the
dynamics fits are units of params.yaml `executor` (adrl/executor.py: a pool of train.workers processes, or Ray tasks),
which return their results to this process. Each run is written here, atomically, as soon as its group finishes, with
its config hash (params, data, adrl/rl code) in run.json; a rerun keeps the complete runs whose hash matches and trains
the rest. runs.json is written last.

Everything is seeded: the same params and states give identical checkpoints (a run trained in a group equals its
single-run training within float tolerance: tests/rl/test_batched.py).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import multiprocessing as mp
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..errors import ConfigError, InputError
from ..executor import ExecutorParams, make_executor
from ..io import atomic_path, without_timings, write_json
from .adbcq import ADBCQ, ADBCQConfig
from .bcq import BCQ, BCQConfig
from .data import Transitions, transitions
from .dynamics import DynamicsConfig, DynamicsEnsemble, fit_dynamics
from .factored_bcq import FactoredBCQ, FactoredBCQConfig
from .params import TrainParams
from .policy import CKPT_FILE, MANIFEST, RUN_FILE
from .valuecheck import KEYS as CHECK_KEYS, CheckSet, SharedLogits, check_set, converged, value_check

log = logging.getLogger("adrl.rl")
TR_KEYS = ("z", "a", "r", "z2", "done")


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


def value_bounds(data: Transitions, gamma: float) -> tuple[float, float]:
    """The smallest and largest discounted return the rewards of ``data`` allow (reward units): with rewards on
    terminal rows only (the sepsis reward), [min(0, r), max(0, r)] over them; with intermediate rewards,
    their geometric sum (infinite for gamma = 1) plus the terminal range."""
    r, term = data.r.astype(np.float64), data.done > 0.5
    rt, rn = r[term], r[~term]
    lo = min(0.0, float(rt.min())) if rt.size else 0.0
    hi = max(0.0, float(rt.max())) if rt.size else 0.0
    if rn.size and rn.min() < 0:
        lo += float(rn.min()) / (1.0 - gamma) if gamma < 1 else -np.inf
    if rn.size and rn.max() > 0:
        hi += float(rn.max()) / (1.0 - gamma) if gamma < 1 else np.inf
    return lo, hi


def algo_config(spec: RunSpec, p: TrainParams, bounds: tuple[float, float] | None = None):
    """The learner's config; ``bounds`` (reward units, :func:`value_bounds`) clip its bootstrap targets where
    ``train.q_clip`` is auto."""
    q_min = q_max = None
    if bounds is not None and p.q_clip == "auto":
        q_min = None if np.isinf(bounds[0]) else bounds[0] / p.value_scale
        q_max = None if np.isinf(bounds[1]) else bounds[1] / p.value_scale
    common = dict(tau=spec.tau, hidden=p.hidden, lr=p.lr, weight_decay=p.weight_decay, gamma=p.gamma,
                  polyak=p.polyak, value_scale=p.value_scale, loss=p.loss, target_every=p.target_every,
                  q_min=q_min, q_max=q_max)
    if spec.algorithm == "bcq":
        return BCQConfig(**common)
    if spec.algorithm == "factored_bcq":
        return FactoredBCQConfig(**common, tau_per_head=spec.tau_k)
    bias = None if p.state_bias == "auto" else p.state_bias == "on"
    return ADBCQConfig(**common, mixer=spec.mixer, state_bias=bias, augment=bool(spec.augment),
                       lambda_proj=p.lambda_proj, reuse_real=p.reuse_real,
                       mixer_grad_to_heads=p.mixer_grad_to_heads, r_max=p.r_max,
                       heads=p.heads, state_cond=p.state_cond, relu_monotone=p.relu_monotone,
                       mlp2_activation=p.mlp2_activation, mixer_w0=p.mixer_w0, bc_filter=p.bc_filter, tau_per_head=spec.tau_k,
                       **{k: getattr(p.dynamics, k) for k in MODEL_BATCH_KEYS})


def make_learner(spec: RunSpec, data: Transitions | int, p: TrainParams, dynamics: DynamicsEnsemble | None = None):
    """The run's learner. ``data``: the training transitions (the state dimension and, with ``train.q_clip: auto``,
    the value bounds of the targets), or only the state dimension (networks to read a checkpoint into: no bounds)."""
    if isinstance(data, Transitions):
        d, bounds = data.dim, value_bounds(data, p.gamma)
    else:
        d, bounds = int(data), None
    cfg = algo_config(spec, p, bounds)
    if spec.algorithm == "bcq":
        return BCQ(d, cfg, spec.seed)
    if spec.algorithm == "factored_bcq":
        return FactoredBCQ(d, cfg, spec.seed)
    return ADBCQ(d, cfg, spec.seed, dynamics=dynamics if spec.needs_dynamics else None)


# train.dynamics keys that shape the model batch B_k (AD-BCQ's config), not the model's fit
MODEL_BATCH_KEYS = ("termination", "next_state", "control", "noise_scale")


def dynamics_config(p: TrainParams) -> DynamicsConfig:
    return DynamicsConfig(**p.dynamics.model_dump(exclude=set(MODEL_BATCH_KEYS)), r_max=p.r_max)


def fit_loop(learner, data: Transitions, steps: int, batch_size: int, checkpoint_every: int, seed: int,
             progress: bool | None = None, desc: str = "train", lr_schedule: str = "constant",
             flush_denormal: bool = False, precision: str = "float32"):
    """Run ``steps`` updates on uniformly sampled batches; snapshot the policy networks every checkpoint.
    ``lr_schedule``: constant, or linear (the learning rate decays linearly to 0 at the last step).

    Returns (checkpoint steps, list of state dicts, history {stat: [mean over the steps since the last
    checkpoint]}, seconds spent in the loop).
    """
    bar = tqdm(total=steps, desc=desc, disable=None if progress is None else not progress, leave=False,
               mininterval=2.0)
    ck_steps, states, hists, secs = fit_runs(learner, data, steps, batch_size, checkpoint_every, [seed],
                                             tick=bar.update, lr_schedule=lr_schedule, flush_denormal=flush_denormal,
                                             precision=precision)
    bar.close()
    return ck_steps, states[0], hists[0], secs


LR_SCHEDULES = ("constant", "linear", "cosine")


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """The learning rate of update ``step`` (1..steps) as a fraction of train.lr: constant (1), linear (from 1 down
    to 1/steps at the last step) or cosine (0.5 (1 + cos(pi (step - 1) / steps)), the same end points)."""
    x = (step - 1) / steps
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return 1.0 - x
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * x))
    raise ConfigError(f"train.lr_schedule: expected one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")


@contextlib.contextmanager
def _subnormals_flushed(on: bool):
    """Subnormal floats flushed to zero inside (train.flush_denormal), set back after; nothing where ``on`` is False."""
    if on:
        torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if on:
            torch.set_flush_denormal(False)


PRECISIONS = ("float32", "bfloat16")


def fit_runs(learner, data: Transitions, steps: int, batch_size: int, checkpoint_every: int, seeds: list[int],
             tick: Callable[[int], None] | None = None, device: torch.device | str = "cpu",
             lr_schedule: str = "constant", flush_denormal: bool = False, precision: str = "float32"):
    """The training loop of one learner (``len(seeds) == 1``) or of a batched group (adrl/rl/batched.py; run r
    draws its batches from ``seeds[r]``, exactly as alone). ``tick(n)`` is called every few steps with the steps
    done since its last call. ``lr_schedule``: constant, or linear (the learning rate decays linearly to 0 at the
    last step; elementwise, so a batched group decays exactly as its runs alone). ``flush_denormal``: the loop runs
    with subnormal floats flushed to zero (train.flush_denormal), set back after it. ``precision`` (train.precision):
    float32, or bfloat16: each update's forward and backward pass under torch.autocast (matrix products in bfloat16,
    losses, softmax and the optimiser in float32; the parameters, Adam's moments and the checkpoints stay float32).

    Returns (checkpoint steps, [per run: list of state dicts], [per run: history], seconds in the loop).
    """
    n = len(data)
    if n == 0:
        raise ConfigError("no transitions to train on")
    R = len(seeds)
    z, a, r, z2, done = (torch.from_numpy(getattr(data, k)).to(device) for k in TR_KEYS)
    idx_all = torch.from_numpy(np.stack([np.random.default_rng(s).integers(0, n, size=(steps, batch_size))
                                         for s in seeds], 1)).to(device)   # (steps, R, B)
    if R == 1:
        idx_all = idx_all[:, 0]
    ck_steps, ck_states, window = [], [[] for _ in range(R)], []
    hists: list[dict[str, list]] = [{} for _ in range(R)]
    lr0 = [g["lr"] for g in learner.opt.param_groups]
    t0, last_tick = time.perf_counter(), 0
    if precision not in PRECISIONS:
        raise ConfigError(f"train.precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    dev_type, mixed = torch.device(device).type, precision == "bfloat16"
    with _subnormals_flushed(flush_denormal):
        for step in range(1, steps + 1):
            idx = idx_all[step - 1]
            if lr_schedule != "constant":
                f = lr_factor(lr_schedule, step, steps)
                for g, lr in zip(learner.opt.param_groups, lr0):
                    g["lr"] = lr * f
            # autocast is entered per update: it caches the bfloat16 copy of each weight until the region exits,
            # so a region around the whole loop would run every step on the first step's weights
            with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=mixed):
                window.append(learner.update(z[idx], a[idx], r[idx], z2[idx], done[idx]))
            if step % checkpoint_every == 0 or step == steps:
                ck_steps.append(step)
                for i, state in enumerate(learner.snapshot()):
                    ck_states[i].append(state)
                for key in dict.fromkeys(k for w in window for k in w):  # some stats are not computed every step
                    means = torch.stack([w[key] for w in window if key in w]).float().mean(0).reshape(R).tolist()
                    for i in range(R):
                        hists[i].setdefault(key, []).append(means[i])
                for i in range(R):
                    hists[i].setdefault("step", []).append(step)
                window = []
            if tick is not None and (step - last_tick >= 50 or step == steps):
                tick(step - last_tick)
                last_tick = step
    return ck_steps, ck_states, hists, time.perf_counter() - t0


def checkpoint_checks(learner, ck_states: list[dict], check: CheckSet) -> dict[str, list[float]]:
    """The value check (adrl/rl/valuecheck.py) of every checkpoint: {key: [value per checkpoint]}."""
    return group_checks([learner], [ck_states], check, [0])[0]


def group_checks(learners: list, ck_states: list[list[dict]], check: CheckSet,
                 imit_of: list[int]) -> list[dict[str, list[float]]]:
    """:func:`checkpoint_checks` of every run of a group (run r's checkpoints ``ck_states[r]``). Runs that share an
    imitation network (``imit_of``, adrl/rl/batched.py) compute its logits of the check's states once per checkpoint
    (:class:`SharedLogits`: the same tensors, so each run's check is what it is alone); in a BCQ group of 8
    thresholds that is 7 of every 16 network passes of the check."""
    nets = [copy.deepcopy(x.net).cpu() for x in learners]
    out: list[dict[str, list[float]]] = [{k: [] for k in CHECK_KEYS} for _ in learners]
    several = {u for u in imit_of if imit_of.count(u) > 1}   # imitation networks that more than one run holds
    for c in range(len(ck_states[0])):
        shared: dict[int, SharedLogits] = {}
        for i, (net, x) in enumerate(zip(nets, learners)):
            net.load_state_dict(ck_states[i][c])
            imit = shared.setdefault(imit_of[i], SharedLogits()).of(net) if imit_of[i] in several else None
            for k, v in value_check(net, x.cfg, check, imit=imit).items():
                out[i][k].append(v)
    return out


def resolve_device(name: str) -> torch.device:
    """train.device: cpu | cuda | auto (cuda where torch sees one, else cpu, said in the log)."""
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("train.device is cuda, but torch finds no CUDA device on this machine "
                              f"(torch {torch.__version__}, torch.cuda.is_available() is False); "
                              "set train.device: cpu, or auto to use a GPU only where there is one")
        return torch.device("cuda")
    if name == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        log.info("train.device: auto -> %s%s", dev, "" if dev.type == "cuda" else " (no CUDA device found)")
        return dev
    raise ConfigError(f"train.device: expected cpu, cuda or auto, got {name!r}")


def train_group(specs: list[RunSpec], data: Transitions, p: TrainParams, out_dir: Path,
                dynamics: dict[int, DynamicsEnsemble] | None = None, check: CheckSet | None = None,
                hashes: dict[str, str] | None = None, device: torch.device | str = "cpu",
                tick: Callable[[int], None] | None = None) -> list[dict]:
    """Train runs of one architecture together (one run: the single-run learner; several: adrl/rl/batched.py) and
    write each runs/<run_id>/ atomically; return their records."""
    return [save_run(out_dir, rec, blob, p.steps)
            for rec, blob in group_outputs(specs, data, p, dynamics, check, hashes, device, tick)]


def group_outputs(specs: list[RunSpec], data: Transitions, p: TrainParams,
                  dynamics: dict[int, DynamicsEnsemble] | None = None, check: CheckSet | None = None,
                  hashes: dict[str, str] | None = None, device: torch.device | str = "cpu",
                  tick: Callable[[int], None] | None = None) -> list[tuple[dict, dict]]:
    """Train runs of one architecture together; return each run's (record, checkpoint blob), written by
    :func:`save_run` (in the stage's process, whichever executor trained them)."""
    dynamics = dynamics or {}
    learners = [make_learner(s, data, p, dynamics.get(s.seed)).to(device) for s in specs]
    if len(specs) == 1:
        learner = learners[0]
    else:
        from .batched import BatchedLearners
        learner = BatchedLearners(learners)
    group_tick = None if tick is None else (lambda k: tick(k * len(specs)))
    ck_steps, states, hists, secs = fit_runs(learner, data, p.steps, p.batch_size, p.checkpoint_every,
                                             [s.seed for s in specs], tick=group_tick, device=device,
                                             lr_schedule=p.lr_schedule, flush_denormal=p.flush_denormal,
                                             precision=p.precision)
    checks = (group_checks(learners, states, check, learner.imit_of if len(specs) > 1 else [0])
              if check is not None else [None] * len(specs))
    return [run_output(s, lrn, data, p, ck_steps, st, h, secs, check, len(specs), (hashes or {}).get(s.run_id),
                       checks=c)
            for s, lrn, st, h, c in zip(specs, learners, states, hists, checks)]


def write_run(spec: RunSpec, learner, data: Transitions, p: TrainParams, out_dir: Path, ck_steps: list[int],
              ck_states: list[dict], hist: dict, secs: float, check: CheckSet | None, group_size: int = 1,
              config_hash: str | None = None, dynamics_id: str | None = None) -> dict:
    """The value checks of a trained run's checkpoints, then runs/<run_id>/ (run.json, checkpoints.pt) atomically."""
    rec, blob = run_output(spec, learner, data, p, ck_steps, ck_states, hist, secs, check, group_size, config_hash,
                           dynamics_id)
    return save_run(out_dir, rec, blob, p.steps)


def run_output(spec: RunSpec, learner, data: Transitions, p: TrainParams, ck_steps: list[int],
               ck_states: list[dict], hist: dict, secs: float, check: CheckSet | None, group_size: int = 1,
               config_hash: str | None = None, dynamics_id: str | None = None,
               checks: dict[str, list[float]] | None = None) -> tuple[dict, dict]:
    """A trained run's record (with the value checks of its checkpoints: ``checks``, or computed here) and its
    checkpoint blob."""
    if checks is None and check is not None:
        checks = checkpoint_checks(learner, ck_states, check)
    final_check = {k: v[-1] for k, v in checks.items()} if checks else None
    if final_check is not None:
        final_check["converged"] = converged(final_check)
        final_check["split"] = check.split
    dtype = torch.float16 if p.checkpoint_dtype == "float16" else torch.float32
    blob = {"steps": torch.tensor(ck_steps, dtype=torch.int64),
            "params": {k: torch.stack([s[k] for s in ck_states]).to(dtype) for k in ck_states[0]}}
    record = {
        "run_id": spec.run_id, "algorithm": spec.algorithm, "mixer": spec.mixer, "augment": spec.augment,
        "tau": spec.tau, "seed": spec.seed, "d": data.dim, "config": asdict(learner.cfg),
        "steps": ck_steps, "n_train_transitions": len(data), "batch_size": p.batch_size,
        # train_seconds: the loop's wall time (shared by the runs of a batched group); steps_per_s per run
        "train_seconds": secs, "steps_per_s": p.steps / secs if secs > 0 else float("nan"), "group_size": group_size,
        "threads": torch.get_num_threads(), "dynamics": (dynamics_id or f"seed{spec.seed}") if spec.needs_dynamics else None,
        "config_hash": config_hash,
        "final": {k: v[-1] for k, v in hist.items() if k != "step"}, "history": hist,
        "value_check": final_check, "value_check_history": checks,
    }
    return record, blob


def save_run(out_dir: Path, record: dict, blob: dict, steps: int) -> dict:
    """Write runs/<run_id>/ (run.json, checkpoints.pt) atomically; return the record."""
    run_dir = Path(out_dir) / "runs" / record["run_id"]
    with atomic_path(run_dir) as tmp:
        tmp.mkdir()
        torch.save(blob, tmp / CKPT_FILE)
        # timings stay out of the outputs (they change every run): the returned record carries them
        (tmp / RUN_FILE).write_text(json.dumps(without_timings(record), indent=1) + "\n")
    final_check = record["value_check"]
    if final_check is not None:
        log.info("%s: %d steps, %.0f steps/s; value check on %s: Q(logged) %.1f vs MC return %.1f (ratio %.2f%s)",
                 record["run_id"], steps, record["steps_per_s"], final_check["split"], final_check["q_logged"],
                 final_check["mc_return"], final_check["ratio"], "" if final_check["converged"] else ", NOT converged")
    else:
        log.info("%s: %d steps, %.0f steps/s", record["run_id"], steps, record["steps_per_s"])
    return record


def train_run(spec: RunSpec, data: Transitions, p: TrainParams, out_dir: Path,
              dynamics: DynamicsEnsemble | None = None, dynamics_id: str | None = None,
              progress: bool | None = None, check: CheckSet | None = None) -> dict:
    """Train one run (the single-run learner) and write runs/<run_id>/ atomically; return its record (with the loss
    history and, given a check set, the value check of every checkpoint and of the last one)."""
    learner = make_learner(spec, data, p, dynamics)
    ck_steps, ck_states, hist, secs = fit_loop(learner, data, p.steps, p.batch_size, p.checkpoint_every,
                                               spec.seed, progress, desc=spec.run_id, lr_schedule=p.lr_schedule,
                                               flush_denormal=p.flush_denormal, precision=p.precision)
    return write_run(spec, learner, data, p, out_dir, ck_steps, ck_states, hist, secs, check,
                     dynamics_id=dynamics_id)


# ---- dynamics persistence ---------------------------------------------------------------------------
def dynamics_blob(model: DynamicsEnsemble, cfg: DynamicsConfig) -> dict:
    return {"config": asdict(cfg), "d": model.d, "state": model.state_dict()}


def save_dynamics(model: DynamicsEnsemble, cfg: DynamicsConfig, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(dynamics_blob(model, cfg), tmp)


def load_dynamics(path: str | Path | dict) -> DynamicsEnsemble:
    """A dynamics ensemble from its file (or the blob :func:`dynamics_blob` made, as a Ray task receives it)."""
    blob = path if isinstance(path, dict) else torch.load(path, map_location="cpu", weights_only=True)
    with torch.random.fork_rng(devices=[]):
        model = DynamicsEnsemble(blob["d"], DynamicsConfig(**blob["config"]))
    state = dict(blob["state"])
    state.setdefault("resid_std", model.resid_std)   # saved before the residual was kept (NaN: no noise control)
    model.load_state_dict(state)
    model.eval()
    for q in model.parameters():
        q.requires_grad_(False)
    return model


# ---- sweep ------------------------------------------------------------------------------------------
def data_hash(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for x in arrays:
        h.update(str((x.dtype, x.shape)).encode())
        h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()[:16]


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_hash(spec: RunSpec, p: TrainParams, d: int, data_key: str) -> str:
    """What a run's checkpoints depend on: the run, its learner config, the loop, the data (and the model's fit)."""
    return _hash({"format": RUN_FORMAT, "code": code_hash(), "spec": asdict(spec), "d": d, "config": asdict(algo_config(spec, p)),
                  "loop": [p.steps, p.batch_size, p.checkpoint_every, p.checkpoint_dtype, p.value_check_split,
                           p.flush_denormal, *([p.precision] if p.precision != "float32" else [])],
                  "q_clip": p.q_clip,
                  "data": data_key, "dynamics": dynamics_hash(spec.seed, p, data_key) if spec.needs_dynamics else None})


def dynamics_hash(seed: int, p: TrainParams, data_key: str) -> str:
    return _hash({"format": RUN_FORMAT, "code": code_hash(), "seed": seed, "config": asdict(dynamics_config(p)), "data": data_key})


RUN_FORMAT = 1   # bump when the meaning of a stored run changes (forces a retrain of every run)
_CODE = ("adbcq.py", "batched.py", "bcq.py", "data.py", "dynamics.py", "factored_bcq.py", "nets.py", "train.py",
         "valuecheck.py")


def code_hash() -> str:
    """The learners' source: a run trained by other code is not the run this code would train."""
    h = hashlib.sha256()
    for name in _CODE:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:16]


def arch_key(spec: RunSpec) -> tuple:
    """Runs with the same key share one network architecture and train as one batched model."""
    return (spec.algorithm, spec.mixer, spec.augment, spec.tau_k)


def run_bytes(spec: RunSpec, p: TrainParams, d: int) -> int:
    """Estimated memory of one run inside a group: parameters, target copy, gradient, two Adam moments, the run's
    own single-run networks (kept for its value checks), every checkpoint snapshot (float32 until written) and the
    activations of one step (a generous bound)."""
    with torch.random.fork_rng(devices=[]):
        net = make_learner(spec, d, p, _NoModel() if spec.needs_dynamics else None).net
    n_par = sum(q.numel() for q in net.parameters())
    n_ck = -(-p.steps // p.checkpoint_every)
    acts = 3 * p.batch_size * (p.hidden * 2 * 4 + 64) * 8   # (B + synthetic rows) x layers x nets, fwd + bwd
    return 4 * (n_par * (7 + n_ck) + acts)   # 7: online, target, gradient, 2 Adam moments, the run's own template


class _NoModel:
    """Stands in for a dynamics ensemble when only the network's size is needed."""


def plan_groups(specs: list[RunSpec], p: TrainParams, d: int, slots: int = 1) -> list[list[RunSpec]]:
    """Split the sweep into batched groups: runs of one architecture, at most train.group_size of them and no more
    than train.group_memory_mb holds (a group that would not fit is split, never attempted), by train.group_split:
    equal groups (balanced) or groups cut between seeds (seeds). Fewer groups than ``slots`` (the units the executor
    runs at once) would leave slots idle: the costliest groups are then halved (:func:`fill_slots`)."""
    by_arch: dict[tuple, list[RunSpec]] = {}
    for s in sorted(specs, key=lambda s: s.seed):   # a seed's thresholds side by side: they share one imitation network
        by_arch.setdefault(arch_key(s), []).append(s)
    budget = p.group_memory_mb * 2**20
    groups = []
    for runs in by_arch.values():
        per_run = run_bytes(runs[0], p, d)
        fit = max(1, int(budget // per_run))
        size = min(p.group_size, fit)
        if fit < min(p.group_size, len(runs)):
            log.info("sweep: %d %s run(s) split into groups of <= %d: about %.0f MB per run, train.group_memory_mb = %d",
                     len(runs), runs[0].run_id.split("-tau")[0], fit, per_run / 2**20, p.group_memory_mb)
        if per_run > budget:
            log.warning("sweep: one %s run needs about %.0f MB, more than train.group_memory_mb = %d; training it alone",
                        runs[0].algorithm, per_run / 2**20, p.group_memory_mb)
        groups += _pack_seeds(runs, size) if p.group_split == "seeds" else _balanced(runs, size)
    return fill_slots(groups, slots)


def group_cost(g: list[RunSpec]) -> int:
    """A group's estimated cost in single-run units: an augmented run counts twice (AD-BCQ with augmentation runs at
    0.5-0.6x BCQ's steps per second)."""
    return sum(2 if s.needs_dynamics else 1 for s in g)


def fill_slots(groups: list[list[RunSpec]], slots: int) -> list[list[RunSpec]]:
    """While there are fewer groups than ``slots``, halve the costliest group of more than one run (balanced, seeds
    in order): one learner's 40 runs in one group of 40 on 2 workers would leave one worker idle; as 20 + 20 both
    work. Where there are at least as many groups as slots, they are left as they are."""
    groups = list(groups)
    while len(groups) < slots:
        split = [i for i, g in enumerate(groups) if len(g) > 1]
        if not split:
            break
        i = max(split, key=lambda j: (group_cost(groups[j]), -j))
        g = groups.pop(i)
        groups[i:i] = _balanced(g, -(-len(g) // 2))
    return groups


def _balanced(runs: list[RunSpec], size: int) -> list[list[RunSpec]]:
    """The fewest groups of at most ``size`` runs (sorted by seed), their sizes equal to one run: 40 runs in groups of
    at most 20 are 20 + 20, where cutting between seeds of 8 thresholds gives 16 + 16 + 8 and, on 2 workers, leaves
    one worker 24 runs and the other 16. A seed cut in two trains its imitation network in both groups."""
    g = -(-len(runs) // size)
    base, extra = divmod(len(runs), g)
    out, i = [], 0
    for k in range(g):
        n = base + (k < extra)
        out.append(runs[i:i + n])
        i += n
    return out


def _pack_seeds(runs: list[RunSpec], size: int) -> list[list[RunSpec]]:
    """Groups of at most ``size`` runs (sorted by seed) that keep each seed's runs together where a seed fits in a
    group: a seed's thresholds share one imitation network, which a seed split over two groups would train twice."""
    groups: list[list[RunSpec]] = []
    cur: list[RunSpec] = []
    for _, block in itertools.groupby(runs, key=lambda s: s.seed):
        block = list(block)
        if cur and len(cur) + len(block) > size:
            groups.append(cur)
            cur = []
        while len(cur) + len(block) > size:   # a seed larger than a group: split it
            k = size - len(cur)
            groups.append(cur + block[:k])
            cur, block = [], block[k:]
        cur += block
    return groups + ([cur] if cur else [])


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _complete(run_dir: Path, want: str) -> dict | None:
    """The record of a finished run trained with config hash ``want``, else None."""
    rec = _read_json(run_dir / RUN_FILE)
    if rec is None or rec.get("config_hash") != want or not (run_dir / CKPT_FILE).is_file():
        return None
    return rec


def _prepare_out_dir(out_dir: Path, run_ids: set[str]) -> None:
    """Refuse a folder that is not a training output; clear staging leftovers, the old manifest and the runs of an
    earlier sweep that this one does not have (each said in the log)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: the training output folder is a file; move it away or choose another path")
    if out_dir.is_dir():
        mine = {MANIFEST, "runs", "dynamics"}
        foreign = [q.name for q in out_dir.iterdir() if q.name not in mine and not q.name.startswith(".")]
        if foreign:
            raise InputError(f"{out_dir}: exists and holds {len(foreign)} entr(ies) that are not a training output "
                             f"(e.g. {sorted(foreign)[:3]}); refusing to write into it: move it away or choose another path")
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_temporaries(out_dir)
    if (out_dir / MANIFEST).exists():
        (out_dir / MANIFEST).unlink()   # rewritten when the sweep completes
    old = [q for q in (out_dir / "runs").glob("*") if q.is_dir() and q.name not in run_ids]
    if old:
        log.info("sweep: removing %d run(s) of an earlier sweep in %s that this sweep does not have (e.g. %s)",
                 len(old), out_dir, old[0].name)
        for q in old:
            shutil.rmtree(q)


class SweepProgress:
    """runs done / total and run-steps/s, as a log line every ``every`` seconds (terminal or not)."""

    def __init__(self, total_runs: int, steps: int, counter, every: float = 5.0, skipped: int = 0):
        self.total, self.steps, self.counter, self.every = total_runs, steps, counter, every
        self.done, self.skipped, self.dyn = skipped, skipped, ""
        self.t0, self.last = time.perf_counter(), (time.perf_counter(), 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.line()

    def _loop(self):
        while not self._stop.wait(self.every):
            self.line()

    def line(self):
        now, n = time.perf_counter(), self.counter.value
        t_prev, n_prev = self.last
        rate = (n - n_prev) / (now - t_prev) if now > t_prev else 0.0
        self.last = (now, n)
        todo = (self.total - self.skipped) * self.steps
        log.info("train: %d/%d runs done%s, %d/%d run-steps, %.0f run-steps/s, %.0f s%s", self.done, self.total,
                 f" ({self.skipped} complete before)" if self.skipped else "", n, todo, rate,
                 now - self.t0, self.dyn)


def remove_temporaries(out_dir: Path) -> None:
    """Remove the temporary files and folders an interrupted write left in a training output folder."""
    for stale in [*out_dir.glob(".*.tmp"), *out_dir.glob("runs/.*.tmp"), *out_dir.glob("dynamics/.*.tmp"),
                  *out_dir.glob("dynamics/*/.*.tmp")]:
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


_COUNTER = None   # a worker's shared run-step counter (set by _init_worker)


def _add_steps(k: int) -> None:
    if _COUNTER is None:   # a Ray task: the stage counts the steps of a group when its results arrive
        return
    with _COUNTER.get_lock():
        _COUNTER.value += k


def _init_worker(counter, threads: int) -> None:
    global _COUNTER   # (a local pool's workers already die with the stage: adrl.executor.LocalExecutor)
    _COUNTER = counter
    torch.set_num_threads(threads)


def _load_data(data: str | dict):
    """The sweep's arrays from the staged .npz (local pool) or as given (a Ray task gets them from the object store)."""
    with (np.load(data) if isinstance(data, str) else _nullcontext(data)) as f:
        data = Transitions(*(f[k] for k in TR_KEYS), z2_full=f["z2_full"] if "z2_full" in f else None)
        val = (Transitions(*(f["val_" + k] for k in TR_KEYS), z2_full=f["val_z2_full"] if "val_z2_full" in f else None)
               if "val_z" in f else None)
        check = (CheckSet(Transitions(*(f["check_" + k] for k in TR_KEYS)), f["check_mc"], str(f["check_split"]))
                 if "check_mc" in f else None)
    return data, val, check


def _nullcontext(x):
    from contextlib import nullcontext

    return nullcontext(x)


def _group_job(specs: list[RunSpec], data: str | dict, p_json: str, hashes: dict, device: str,
               *dynamics) -> list[tuple[dict, dict]]:
    """A unit: one group's runs, trained; ``dynamics``: the ensembles (file or blob) of the group's augmented seeds in
    ascending seed order. Returns each run's (record, checkpoint blob) for the stage to write."""
    p = TrainParams.model_validate_json(p_json)
    torch.set_num_threads(p.threads)
    data, _, check = _load_data(data)
    dyn = dict(zip(_dyn_seeds(specs), (load_dynamics(x) for x in dynamics)))
    return group_outputs(specs, data, p, dyn, check, hashes, device, _add_steps)


def _dyn_seeds(specs: list[RunSpec]) -> list[int]:
    return sorted({s.seed for s in specs if s.needs_dynamics})


def _dynamics_job(seed: int, data: str | dict, p_json: str, where: str):
    """A unit: one dynamics fit; returns (seed, report, history, model blob) for the stage to write."""
    p = TrainParams.model_validate_json(p_json)
    torch.set_num_threads(p.threads)
    data, val, _ = _load_data(data)
    return fit_dynamics_blob(seed, data, val, p, where)


def fit_dynamics_blob(seed: int, train: Transitions, val: Transitions, p: TrainParams, where: str,
                      progress: bool | None = False) -> tuple[int, dict, dict, dict]:
    t0 = time.perf_counter()
    model, report, hist = fit_dynamics(train, val, dynamics_config(p), seed, where, progress)
    report["fit_seconds"] = time.perf_counter() - t0
    return seed, report, hist, dynamics_blob(model, dynamics_config(p))


def save_dynamics_fit(out_dir: Path, seed: int, report: dict, hist: dict, blob: dict, dyn_hash: str) -> Path:
    """Write dynamics/seed<k>/ (ensemble.pt, report.json) atomically; return the ensemble's path."""
    rel = Path("dynamics") / f"seed{seed}"
    with atomic_path(out_dir / rel) as tmp:
        tmp.mkdir()
        torch.save(blob, tmp / "ensemble.pt")   # inside the folder written atomically
        write_json(tmp / "report.json", {"seed": seed, "config_hash": dyn_hash, "report": without_timings(report),
                                          "history": hist})
    return out_dir / rel / "ensemble.pt"


def fit_and_save_dynamics(seed: int, train: Transitions, val: Transitions, p: TrainParams, out_dir: Path, where: str,
                          dyn_hash: str, progress: bool | None = False):
    seed, report, hist, blob = fit_dynamics_blob(seed, train, val, p, where, progress)
    save_dynamics_fit(out_dir, seed, report, hist, blob, dyn_hash)
    return seed, report, hist


def run_sweep(df: pd.DataFrame, p: TrainParams, out_dir: str | Path, where: str = "states table",
              progress: bool | None = None,
              on_dynamics: Callable[[int, dict, dict], None] | None = None,
              on_run: Callable[[dict], None] | None = None, log_every: float = 5.0,
              executor: ExecutorParams | None = None) -> dict:
    """Fit the dynamics ensembles and train every run of the sweep into ``out_dir``, each run written atomically as
    it finishes; runs already there with the same config hash are kept, not retrained.

    ``on_dynamics(seed, report, history)`` and ``on_run(record)`` are called as results arrive (the stage
    uses them to log to MLflow). Progress is a log line every ``log_every`` seconds (``progress`` is accepted for
    older callers and not used: the log line works on a terminal or not). ``executor`` (params.yaml `executor`):
    where the groups and fits run, a local pool of train.workers processes (default) or Ray tasks; the stage writes
    their results either way, so the outputs are the same. Returns the manifest (written last, as runs.json; its
    ``placement`` says how many units ran where, and is not written).
    """
    specs = expand_sweep(p)
    device = resolve_device(p.device)
    threads_before = torch.get_num_threads()
    try:
        return _sweep(df, p, Path(out_dir), specs, where, on_dynamics, on_run, device, log_every,
                      executor or ExecutorParams())
    except BaseException:
        # an error or an interruption (SIGTERM arrives as SystemExit): what it cut short mid-write goes too, even
        # where it landed in a cleanup itself; finished runs stay
        if Path(out_dir).is_dir():
            remove_temporaries(Path(out_dir))
        raise
    finally:
        torch.set_num_threads(threads_before)


def _sweep(df, p: TrainParams, out_dir: Path, specs: list[RunSpec], where, on_dynamics, on_run, device,
           log_every, executor: ExecutorParams) -> dict:
    t_start = time.perf_counter()
    train = transitions(df, "train", where)
    need_dyn = sorted({s.seed for s in specs if s.needs_dynamics})
    check = check_set(df, p.value_check_split, p.gamma, where) if p.value_check_split != "none" else None
    val = transitions(df, "val", where) if need_dyn else None
    torch.set_num_threads(p.threads)  # 2 threads measured fragile on a shared machine (benchmarks/results/train.md)
    arrays = {k: getattr(train, k) for k in TR_KEYS}
    if val is not None:   # the dynamics fits also read the terminal rows' next states
        arrays |= {"val_" + k: getattr(val, k) for k in TR_KEYS}
        arrays |= {"z2_full": train.z2_full, "val_z2_full": val.z2_full}
    if check is not None:
        arrays |= {"check_" + k: getattr(check.data, k) for k in TR_KEYS}
        arrays |= {"check_mc": check.mc, "check_split": np.array(check.split)}
    key = data_hash(*(arrays[k] for k in sorted(arrays)))
    hashes = {s.run_id: run_hash(s, p, train.dim, key) for s in specs}
    _prepare_out_dir(out_dir, {s.run_id for s in specs})

    records: dict[str, dict] = {}
    for s in specs:
        rec = _complete(out_dir / "runs" / s.run_id, hashes[s.run_id])
        if rec is not None:
            records[s.run_id] = rec
    todo = [s for s in specs if s.run_id not in records]
    dyn_reports: dict[int, dict] = {}
    dyn_todo = []
    for seed in need_dyn:
        rep = _read_json(out_dir / "dynamics" / f"seed{seed}" / "report.json")
        if rep is not None and rep.get("config_hash") == dynamics_hash(seed, p, key) \
                and (out_dir / "dynamics" / f"seed{seed}" / "ensemble.pt").is_file():
            dyn_reports[seed] = rep
        elif any(s.needs_dynamics and s.seed == seed for s in todo):
            dyn_todo.append(seed)
    # the groups of the whole sweep, less the runs complete before: a rerun after a crash trains each missing run in
    # the group it had in the uninterrupted sweep (a run's numbers depend on its group up to float rounding:
    # adrl/rl/batched.py), so the rerun reproduces the uninterrupted outputs exactly (tests/rl/test_batched.py, test_kill.py). The
    # local pool's processes are the slots to fill; a Ray cluster's are known only once connected (not halved)
    groups = [g for g in ([s for s in g if s.run_id not in records]
                          for g in plan_groups(specs, p, train.dim, p.workers if executor.kind == "local" else 1))
              if g]
    log.info("sweep: %d runs on %d train transitions (d=%d) on %s; %d complete before (same config hash), %d to train "
             "in %d batched group(s); dynamics fits for seeds %s", len(specs), len(train), train.dim, device.type,
             len(records), len(todo), len(groups), dyn_todo)
    if p.precision == "bfloat16" and todo:
        log.info("train.precision: bfloat16 (matrix products under torch.autocast; parameters and checkpoints float32)%s",
                 " -- this CPU has no native bfloat16 (torch emulates it: expect it slower than float32)"
                 if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported() else "")
    for rec in records.values():
        if on_run:
            on_run(rec)
    for seed, rep in sorted(dyn_reports.items()):
        if on_dynamics:
            on_dynamics(seed, rep["report"], rep["history"])

    def dyn_done(seed, report, hist):
        dyn_reports[seed] = {"report": report, "history": hist}
        prog.dyn = f"; dynamics {sum(1 for s in need_dyn if s in dyn_reports)}/{len(need_dyn)} fitted"
        if on_dynamics:
            on_dynamics(seed, report, hist)

    def runs_done(recs):
        for rec in recs:
            records[rec["run_id"]] = rec
            prog.done += 1
            if on_run:
                on_run(rec)

    ctx = mp.get_context("spawn")
    counter = ctx.Value("q", 0)
    placement = "nothing to run" if not groups and not dyn_todo else f"{len(groups) + len(dyn_todo)} unit(s) in this process"
    with SweepProgress(len(specs), p.steps, counter, log_every, skipped=len(records)) as prog:
        if executor.kind == "local" and (p.workers == 1 or len(groups) + len(dyn_todo) <= 1):
            _init_counter(counter)
            for seed in dyn_todo:
                dyn_done(*fit_and_save_dynamics(seed, train, val, p, out_dir, where, dynamics_hash(seed, p, key)))
            dyn = {seed: load_dynamics(out_dir / "dynamics" / f"seed{seed}" / "ensemble.pt") for seed in need_dyn
                   if any(s.needs_dynamics and s.seed == seed for s in todo)}
            for g in groups:
                runs_done(train_group(g, train, p, out_dir, dyn, check, hashes, device, _add_steps))
        elif groups or dyn_todo:
            placement = _exec_sweep(executor, ctx, counter, groups, dyn_todo, arrays, p, out_dir, where, hashes, key,
                                    device, dyn_done, runs_done, min(p.workers, len(groups) + len(dyn_todo)))
    log.info("sweep: %s", placement)

    manifest: dict = {"n_train_transitions": len(train), "d": train.dim, "device": device.type,
                      "dynamics": {f"seed{seed}": {"path": f"dynamics/seed{seed}/ensemble.pt", "report": r["report"]}
                                   for seed, r in sorted(dyn_reports.items())},
                      "runs": [{k: v for k, v in records[s.run_id].items()
                                if k not in ("history", "config", "value_check_history")}
                               | {"run_dir": f"runs/{s.run_id}"} for s in specs]}
    in_train = df["split"] == "train"
    # rows without a transition are the stays' last rows (no decision is taken there)
    manifest["counts"] = {"train_rows": int(in_train.sum()), "train_stays": int(df.loc[in_train, "traj"].nunique()),
                          "train_transitions": len(train), "val_transitions": len(val) if val is not None else None}
    manifest["sweep_seconds"] = time.perf_counter() - t_start   # this call's wall time (skipped runs cost ~0)
    manifest["trained_runs"] = len(todo)   # depends on what a crash left: returned and logged, never written
    manifest["placement"] = placement      # where the units ran: logged, never written
    write_json(out_dir / MANIFEST, without_timings({k: v for k, v in manifest.items()
                                                    if k not in ("trained_runs", "placement")}))
    return manifest


def _init_counter(counter) -> None:
    global _COUNTER
    _COUNTER = counter


def unit_order(units: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The sweep's units, most urgent first: dynamics fits (augmented groups wait for them), then groups by their
    estimated cost, largest first (runs x 2 for an augmented group: AD-BCQ with augmentation runs at 0.5-0.6x BCQ's
    steps per second), ties in the given order. Longest first keeps the end of a sweep to its smallest groups rather
    than leaving one worker to a long group while the others have nothing (measured: benchmarks/results/sweep.md)."""
    def cost(u):
        kind, x = u
        return (0, 0) if kind == "dyn" else (1, -group_cost(x))
    return sorted(units, key=cost)


def _exec_sweep(executor: ExecutorParams, ctx, counter, groups, dyn_todo, arrays, p, out_dir: Path, where, hashes,
                key, device, dyn_done, runs_done, workers: int) -> str:
    """Dynamics fits and groups as units of the executor (a local pool of ``workers`` processes, or Ray tasks): at
    most the executor's slots at a time, in unit_order: the fits first (in parallel, as units, never in this
    process), then the groups costliest first, an augmented group as soon as its seeds' models are written. The stage
    writes every result as it arrives. Returns where the units ran."""
    stage = Path(tempfile.mkdtemp(prefix=".sweep-", suffix=".tmp", dir=out_dir))
    env_threads = os.environ.get("OMP_NUM_THREADS")
    try:
        os.environ["OMP_NUM_THREADS"] = str(p.threads)
        with make_executor(executor, workers, mp_context=ctx, initializer=_init_worker,
                           initargs=(counter, p.threads)) as ex:
            if ex.kind == "local":   # the workers read the arrays from one staged file
                data = str(stage / "transitions.npz")
                np.savez(data, **arrays)
            else:                    # once into Ray's object store, shared by every task
                data = ex.put(arrays)
            p_json = p.model_dump_json()
            models: dict = {}        # seed -> the dynamics ensemble as units receive it (local: its file)

            def model_of(seed):
                if seed not in models:
                    path = out_dir / "dynamics" / f"seed{seed}" / "ensemble.pt"
                    models[seed] = str(path) if ex.kind == "local" else \
                        ex.put(torch.load(path, map_location="cpu", weights_only=True))
                return models[seed]

            def submit_group(g):
                ex.submit(("group", g), "group " + ",".join(s.run_id for s in g), _group_job, g, data, p_json,
                          {s.run_id: hashes[s.run_id] for s in g}, device.type, *map(model_of, _dyn_seeds(g)))

            # Units go out no more than the executor's slots at a time, the most urgent first (unit_order): the
            # fits, which the augmented groups wait for, then the groups costliest first, so that what is left for
            # the end of the sweep is small and the workers finish together
            waiting = [g for g in groups if any(s.needs_dynamics for s in g)]
            ready = [("dyn", s) for s in dyn_todo] + [("group", g) for g in groups if g not in waiting]
            pending_dyn = set(dyn_todo)
            while ex.pending or waiting or ready:
                unlocked = [g for g in waiting if not ({s.seed for s in g} & pending_dyn)]
                for g in unlocked:
                    waiting.remove(g)
                ready = unit_order(ready + [("group", g) for g in unlocked])
                while ready and ex.pending < max(1, ex.slots):
                    kind, x = ready.pop(0)
                    if kind == "dyn":
                        ex.submit(("dyn", x), f"dynamics fit seed{x}", _dynamics_job, x, data, p_json, where)
                    else:
                        submit_group(x)
                for (kind, x), result in ex.wait_any():
                    if kind == "dyn":
                        seed, report, hist, blob = result
                        path = save_dynamics_fit(out_dir, seed, report, hist, blob, dynamics_hash(seed, p, key))
                        models[seed] = str(path) if ex.kind == "local" else ex.put(blob)
                        dyn_done(seed, report, hist)
                        pending_dyn.discard(seed)
                    else:
                        if ex.kind != "local":   # a Ray task cannot reach the progress counter
                            with counter.get_lock():
                                counter.value += p.steps * len(x)
                        runs_done([save_run(out_dir, rec, blob, p.steps) for rec, blob in result])
            return f"{ex.kind} executor, {ex.where()}"
    finally:
        if env_threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env_threads
        shutil.rmtree(stage, ignore_errors=True)
