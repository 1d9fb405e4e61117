"""Typed view of online/params.yaml (the online pipeline's own parameters; the clinical params.yaml knows
nothing of them). A bad key or value raises ConfigError naming the key, e.g. ``online.levels.0``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from ..errors import ConfigError
from ..executor import ExecutorParams
from ..params_base import Section
from ..rl.adbcq import MIXERS
from .agents import KINDS, AgentConfig
from .env import TASKS, check_levels
from .train import RunConfig
from ..rl.dynamics import DynamicsConfig


def _one_of(values: list, allowed, what: str) -> list:
    for v in values:
        if v not in allowed:
            raise ValueError(f"unknown {what} {v!r}; expected one of {', '.join(allowed)}")
    return values


class AgentSpec(Section):
    name: str = Field(description="label in results and figures")
    kind: str = Field(description="addqn | decqn | dqn")
    mixer: str = Field("linear", description="addqn: mean | sum | linear | mlp2 | relu")
    augment: bool = Field(True, description="addqn: projected-model augmentation")

    @field_validator("kind")
    @classmethod
    def _kind(cls, v):
        return _one_of([v], KINDS, "agent kind")[0]

    @field_validator("mixer")
    @classmethod
    def _mixer(cls, v):
        return _one_of([v], MIXERS, "mixer")[0]


class Profile(Section):
    tasks: list[str] = Field(min_length=1, description="point_mass tasks: easy | hard")
    levels: list[int] = Field(min_length=1, description="levels per actuator, each odd")
    seeds: list[int] = Field(min_length=1)
    agents: list[str] = Field(min_length=1, description="names from online.agents")
    steps: int = Field(ge=1, description="agent decisions per run")
    eval_every: int = Field(ge=1)
    eval_episodes: int = Field(ge=1)
    learning_starts: int = Field(ge=1)
    eps_decay: int = Field(ge=1)
    model_every: int = Field(ge=1)

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v):
        return _one_of(v, TASKS, "task")

    @field_validator("levels")
    @classmethod
    def _levels(cls, v):
        for n in v:
            if n < 3 or n % 2 == 0:
                raise ValueError(f"each actuator needs an odd number of levels >= 3 (one is the no-op), got {n}")
        return v


class Dynamics(Section):
    ensemble: int = Field(ge=1)
    hidden: int = Field(ge=1)
    layers: int = Field(ge=0)
    max_epochs: int = Field(ge=1)
    patience: int = Field(ge=1)
    max_rows: int = Field(ge=10)


class Online(Section):
    profile: Literal["quick", "full"]
    workers: int = Field(1, ge=1, description="processes running (task, n, agent, seed) cells in parallel")
    executor: ExecutorParams = ExecutorParams()
    action_repeat: int = Field(ge=1)
    hidden: int = Field(ge=1)
    lr: float = Field(gt=0)
    gamma: float = Field(gt=0, lt=1)
    polyak: float = Field(gt=0, le=1)
    batch_size: int = Field(ge=1)
    update_every: int = Field(ge=1)
    eps_final: float = Field(ge=0, le=1)
    lambda_proj: float = Field(ge=0)
    dynamics: Dynamics
    agents: list[AgentSpec] = Field(min_length=1)
    profiles: dict[Literal["quick", "full"], Profile]

    def active(self) -> Profile:
        if self.profile not in self.profiles:
            raise ConfigError(f"online.profiles: no profile {self.profile!r} (online.profile)")
        return self.profiles[self.profile]

    def agent(self, name: str) -> AgentSpec:
        for a in self.agents:
            if a.name == name:
                return a
        raise ConfigError(f"online.profiles.{self.profile}.agents: unknown agent {name!r}; "
                          f"defined in online.agents: {', '.join(a.name for a in self.agents)}")

    def agent_config(self, name: str, n: int) -> AgentConfig:
        a = self.agent(name)
        return AgentConfig(kind=a.kind, n=check_levels(n), mixer=a.mixer, augment=a.augment, hidden=self.hidden,
                           lr=self.lr, gamma=self.gamma, polyak=self.polyak, lambda_proj=self.lambda_proj,
                           r_max=1.0 / (1.0 - self.gamma))

    def run_config(self) -> RunConfig:
        p, d = self.active(), self.dynamics
        return RunConfig(steps=p.steps, action_repeat=self.action_repeat, batch_size=self.batch_size,
                         learning_starts=p.learning_starts, update_every=self.update_every,
                         eps_final=self.eps_final, eps_decay=p.eps_decay, eval_every=p.eval_every,
                         eval_episodes=p.eval_episodes, model_every=p.model_every, model_max_rows=d.max_rows,
                         dynamics=DynamicsConfig(ensemble=d.ensemble, hidden=d.hidden, layers=d.layers,
                                                 max_epochs=d.max_epochs, patience=d.patience, r_max=1.0,
                                                 reward="dense"))


class OnlineConfig(Section):
    online: Online


def default_path() -> Path:
    return Path(os.environ.get("ADRL_ONLINE_PARAMS", "online/params.yaml"))


def validate_online(raw: dict, where: str = "online/params.yaml") -> Online:
    from ..config import format_validation_error

    try:
        cfg = OnlineConfig.model_validate(raw).online
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, where).replace("  ", "  ", 1)) from None
    p = cfg.active()
    for name in p.agents:
        cfg.agent(name)
    if p.eval_every > p.steps:
        raise ConfigError(f"{where}: online.profiles.{cfg.profile}.eval_every ({p.eval_every}) exceeds steps "
                          f"({p.steps}): no evaluation would run")
    return cfg


def load_online(path: str | os.PathLike | None = None, profile: str | None = None) -> Online:
    """Read and validate online/params.yaml; ``profile`` overrides online.profile."""
    from ..config import read_params_file

    path = Path(path) if path is not None else default_path()
    raw = read_params_file(path, "online parameters file not found (run from the project root, or set "
                                 "ADRL_ONLINE_PARAMS)")
    if profile is not None:
        raw.setdefault("online", {})["profile"] = profile
    return validate_online(raw, str(path))
