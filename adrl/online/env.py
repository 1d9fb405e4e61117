"""DeepMind Control `point_mass` with a discretised 2-D action (method.md 4.11).

Each actuator gets ``n`` evenly spaced force levels in [-1, 1]; ``n`` is odd so that level ``n // 2`` is exactly
zero force (the no-op). A joint action is one flat index ``a = n * a_x + a_y`` over the n^2 grid. ``easy``
drives the x and y axes with separate actuators; ``hard`` draws new actuation directions every episode (the
coupled control; the directions are not in the observation).

The agent sees the observation vector (position, velocity: 4 numbers) and, per decision, the mean reward of
the ``action_repeat`` physics steps it covers (in [0, 1]); episode returns are reported on the suite's scale
(the sum of per-step rewards, at most 1,000 per episode). Episodes end only at the time limit, which is a
truncation, not a terminal state: value targets always bootstrap.
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import ConfigError

TASKS = ("easy", "hard")


def check_levels(n: int, key: str = "online.levels") -> int:
    """n must be an odd integer >= 3 (so that one level is zero force)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 3 or n % 2 == 0:
        raise ConfigError(f"{key}: each actuator needs an odd number of levels >= 3 (one of them the no-op, "
                          f"zero force), got {n!r}")
    return int(n)


class ActionGrid:
    """n levels per actuator; flat a = n * a_x + a_y (the order of adrl.rl.nets.joint_q_pairs)."""

    def __init__(self, n: int):
        self.n = check_levels(n)
        self.levels = np.linspace(-1.0, 1.0, self.n)
        self.noop = self.n // 2
        self.levels[self.noop] = 0.0  # exact zero force
        self.size = self.n * self.n
        self.noop_flat = self.to_flat(self.noop, self.noop)

    def to_flat(self, a_x, a_y):
        return a_x * self.n + a_y

    def from_flat(self, a):
        return a // self.n, a % self.n

    def forces(self, a) -> np.ndarray:
        """flat action(s) -> force vector(s) (..., 2) in [-1, 1]."""
        ax, ay = self.from_flat(np.asarray(a))
        return np.stack([self.levels[ax], self.levels[ay]], -1)


def _suite():
    os.environ.setdefault("MUJOCO_GL", "disable")  # no rendering
    try:
        from dm_control import suite
    except ImportError as e:
        raise ImportError("the online experiments need dm-control: pip install 'adrl[online]' "
                          f"(import failed: {e})") from None
    return suite


def dm_control_available() -> bool:
    try:
        _suite()
    except ImportError:
        return False
    return True


class PointMass:
    """point_mass-<task> with an n x n action grid and an action repeat; ``seed`` fixes the task's random
    stream (initial positions and, for ``hard``, actuation directions)."""

    def __init__(self, task: str, n: int, seed: int, action_repeat: int = 4):
        if task not in TASKS:
            raise ConfigError(f"online.tasks: unknown task {task!r}; expected one of {', '.join(TASKS)}")
        if action_repeat < 1:
            raise ConfigError(f"online.action_repeat: must be >= 1, got {action_repeat}")
        self.task, self.grid, self.repeat = task, ActionGrid(n), int(action_repeat)
        self.env = _suite().load("point_mass", task, task_kwargs={"random": int(seed)})
        self.obs_dim = 4
        self.physics_steps = 0

    @staticmethod
    def _obs(ts) -> np.ndarray:
        o = ts.observation
        return np.concatenate([o["position"], o["velocity"]]).astype(np.float32)

    def reset(self) -> np.ndarray:
        return self._obs(self.env.reset())

    def step(self, a: int) -> tuple[np.ndarray, float, float, bool]:
        """-> (next observation, mean reward per physics step, summed reward, episode over)."""
        u = self.grid.forces(int(a))
        total, k = 0.0, 0
        ts = None
        for k in range(1, self.repeat + 1):
            ts = self.env.step(u)
            total += float(ts.reward or 0.0)
            if ts.last():
                break
        self.physics_steps += k
        return self._obs(ts), total / k, total, bool(ts.last())
