"""One online run: an agent on point_mass-<task> with an n x n grid, epsilon-greedy through its mixer, a replay
buffer, periodic greedy evaluations and, for AD-DQN with augmentation, the projected dynamics ensemble refitted
on the buffer every ``model_every`` decisions (method.md 4.11).

Evaluations use their own environment, re-seeded identically at every evaluation and for every agent of the
same seed (common random numbers: the same start states, and for ``hard`` the same actuation directions). At
each evaluation the greedy value F(q(s_0, pi(s_0))) of the first state is recorded beside the discounted
return actually collected from it (per-decision rewards), the Monte-Carlo check of the learned values.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..rl.data import Transitions
from ..rl.dynamics import DynamicsConfig, fit_dynamics
from .agents import AgentConfig, make_agent
from .env import PointMass

log = logging.getLogger("adrl.online")


@dataclass(frozen=True)
class RunConfig:
    steps: int = 20_000            # agent decisions (each = action_repeat physics steps)
    action_repeat: int = 4
    batch_size: int = 128
    learning_starts: int = 1_000   # uniformly random decisions before the first update
    update_every: int = 1          # decisions per gradient update
    eps_start: float = 1.0
    eps_final: float = 0.05
    eps_decay: int = 10_000        # decisions over which epsilon falls linearly
    eval_every: int = 2_500
    eval_episodes: int = 3
    model_every: int = 2_500       # N_m: decisions between refits of the dynamics ensemble (AD-DQN, augment on)
    model_max_rows: int = 20_000   # refit on at most this many buffer rows (a uniform subsample)
    dynamics: DynamicsConfig = field(default_factory=lambda: DynamicsConfig(
        ensemble=5, hidden=64, layers=1, max_epochs=30, patience=5, batch_size=256, r_max=1.0, reward="dense"))


def _evaluate(agent, task: str, n: int, seed: int, episodes: int, repeat: int, gamma: float):
    """Greedy episodes on a freshly seeded evaluation env: (returns, q at s_0, discounted MC return from s_0)."""
    env = PointMass(task, n, seed=1_000_003 + seed, action_repeat=repeat)
    rets, q0, mc0 = [], [], []
    for _ in range(episodes):
        o = env.reset()
        z0 = torch.from_numpy(o)[None]
        q0.append(float(agent.values(z0).max()))
        ret, disc, g, over = 0.0, 0.0, 1.0, False
        while not over:
            a = int(agent.greedy(torch.from_numpy(o)[None])[0])
            o, r_mean, r_sum, over = env.step(a)
            ret += r_sum
            disc += g * r_mean
            g *= gamma
        rets.append(ret)
        mc0.append(disc)
    return rets, q0, mc0


def random_returns(task: str, n: int, seed: int, episodes: int, repeat: int) -> list[float]:
    """The uniformly random policy's returns on the evaluation episodes of ``seed`` (the same start states, and
    for ``hard`` the same actuation directions, that :func:`run` evaluates its agents on)."""
    env = PointMass(task, n, seed=1_000_003 + seed, action_repeat=repeat)
    rng = np.random.default_rng(seed)
    rets = []
    for _ in range(episodes):
        env.reset()
        ret, over = 0.0, False
        while not over:
            _, _, r_sum, over = env.step(int(rng.integers(n * n)))
            ret += r_sum
        rets.append(ret)
    return rets


def random_buffer(task: str, n: int, rows: int, seed: int, repeat: int = 8) -> dict:
    """A replay buffer of ``rows`` uniformly random decisions (arrays z, a, r, z2, done)."""
    env = PointMass(task, n, seed=seed, action_repeat=repeat)
    rng = np.random.default_rng(seed)
    buf = _empty_buffer(rows, env.obs_dim)
    o = env.reset()
    for t in range(rows):
        a = int(rng.integers(n * n))
        o2, r_mean, _, over = env.step(a)
        buf["z"][t], buf["a"][t], buf["r"][t], buf["z2"][t] = o, a, r_mean, o2
        o = env.reset() if over else o2
    return buf


def _empty_buffer(rows: int, d: int) -> dict:
    return {"z": np.zeros((rows, d), np.float32), "a": np.zeros(rows, np.int64), "r": np.zeros(rows, np.float32),
            "z2": np.zeros((rows, d), np.float32), "done": np.zeros(rows, np.float32)}


def fit_model(buf: dict, t: int, n: int, cfg: RunConfig, seed: int, rng: np.random.Generator):
    """Refit the ensemble on (a subsample of) the first t buffer rows, 90/10 train/validation."""
    idx = rng.permutation(t)[:cfg.model_max_rows]
    n_val = max(1, len(idx) // 10)
    tr = Transitions(*(buf[k][idx[n_val:]] for k in ("z", "a", "r", "z2", "done")))
    va = Transitions(*(buf[k][idx[:n_val]] for k in ("z", "a", "r", "z2", "done")))
    dcfg = DynamicsConfig(**{**cfg.dynamics.__dict__, "levels": (n, n)})
    model, report, _ = fit_dynamics(tr, va, dcfg, seed, where=f"replay buffer ({t} rows)", progress=False,
                                    noop=(n // 2, n // 2))
    return model, report


def run(task: str, agent_cfg: AgentConfig, seed: int, cfg: RunConfig, on_eval=None) -> dict:
    """Train one agent; returns the learning curve and timings. ``on_eval(step, record)`` is called after
    every evaluation (for logging)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = agent_cfg.n
    env = PointMass(task, n, seed=seed, action_repeat=cfg.action_repeat)
    agent = make_agent(env.obs_dim, agent_cfg, seed)
    T = cfg.steps
    buf = _empty_buffer(T, env.obs_dim)
    curve = {"step": [], "return": [], "q0": [], "mc0": []}
    t_env = t_upd = t_model = 0.0
    n_upd, model_reports = 0, []
    o = env.reset()
    for t in range(T):
        eps = max(cfg.eps_final, cfg.eps_start - (cfg.eps_start - cfg.eps_final) * t / max(1, cfg.eps_decay))
        if t < cfg.learning_starts or rng.random() < eps:
            a = int(rng.integers(n * n))
        else:
            a = int(agent.greedy(torch.from_numpy(o)[None])[0])
        t0 = time.perf_counter()
        o2, r_mean, _, over = env.step(a)
        t_env += time.perf_counter() - t0
        buf["z"][t], buf["a"][t], buf["r"][t], buf["z2"][t] = o, a, r_mean, o2  # done stays 0: time limit only
        o = env.reset() if over else o2

        if agent.augment and t + 1 >= cfg.learning_starts and (t + 1 - cfg.learning_starts) % cfg.model_every == 0:
            t0 = time.perf_counter()
            agent.dynamics, rep = fit_model(buf, t + 1, n, cfg, seed, rng)
            t_model += time.perf_counter() - t0
            model_reports.append({"step": t + 1, "dz_r2": rep["ensemble/dz_r2"],
                                  "reward_r2": rep["ensemble/reward_r2"], "epochs": rep["epochs"]})
        if t + 1 >= cfg.learning_starts and (t + 1) % cfg.update_every == 0:
            idx = torch.from_numpy(rng.integers(0, t + 1, cfg.batch_size))
            batch = [torch.from_numpy(buf[k])[idx] for k in ("z", "a", "r", "z2", "done")]
            t0 = time.perf_counter()
            agent.update(*batch)
            t_upd += time.perf_counter() - t0
            n_upd += 1
        if (t + 1) % cfg.eval_every == 0:
            rets, q0, mc0 = _evaluate(agent, task, n, seed, cfg.eval_episodes, cfg.action_repeat, agent_cfg.gamma)
            rec = {"return": float(np.mean(rets)), "q0": float(np.mean(q0)), "mc0": float(np.mean(mc0))}
            for k, v in rec.items():
                curve[k].append(v)
            curve["step"].append((t + 1) * cfg.action_repeat)  # environment (physics) steps
            if on_eval is not None:
                on_eval((t + 1) * cfg.action_repeat, rec)
    return {"curve": curve, "final_return": curve["return"][-1], "auc": float(np.mean(curve["return"])),
            "env_steps": T * cfg.action_repeat, "updates": n_upd, "seconds_env": t_env,
            "seconds_update": t_upd, "seconds_model": t_model, "model_fits": model_reports}
