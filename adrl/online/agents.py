"""AD-DQN, DecQN and a joint DQN for an n x n action grid (method.md 4.11).

AD-DQN is AD-BCQ's value structure (adrl.rl: projected heads Q_x(s, a_x), Q_y(s, a_y) on a shared trunk, a
mixer F(q; s), the batch modification B -> B_k from the projected dynamics ensemble) inside DQN, with no
imitation filter: every maximum ranges over all actions. DecQN (Seyde et al. 2023) is AD-DQN with the ``mean``
mixer and augmentation off; the joint DQN has one output per joint action. All three use double-Q targets
(online argmax, target-network value), a Polyak-averaged target network and a Huber loss whose threshold
(1) is in reward units (the per-decision reward is in [0, 1]). The whole update reads top to bottom in
:meth:`ADDQN.update`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..rl.adbcq import BIASED_BY_DEFAULT, MIXERS
from ..rl.dynamics import DynamicsEnsemble
from ..rl.nets import Mixer, huber, joint_q_pairs, mlp, polyak_  # huber: threshold 1, in reward units here
from .env import check_levels

KINDS = ("addqn", "decqn", "dqn")


@dataclass(frozen=True)
class AgentConfig:
    kind: str = "addqn"        # addqn | decqn (= addqn, mean mixer, no augmentation) | dqn (joint, n^2 outputs)
    n: int = 9                 # levels per actuator (odd)
    mixer: str = "linear"      # addqn only: mean | sum | linear | mlp2 | relu
    augment: bool = True       # addqn only: projected-model augmentation B -> B_k
    hidden: int = 128
    lr: float = 3e-4
    gamma: float = 0.99
    polyak: float = 0.01
    lambda_proj: float = 1.0
    r_max: float = 100.0       # the value scale the mixer normalises by: max reward / (1 - gamma)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"online.agents: unknown agent kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        check_levels(self.n)
        if self.mixer not in MIXERS:
            raise ConfigError(f"online.agents: unknown mixer {self.mixer!r}; expected one of {', '.join(MIXERS)}")
        if self.kind == "decqn":  # DecQN is exactly AD-DQN(mean, augmentation off)
            object.__setattr__(self, "mixer", "mean")
            object.__setattr__(self, "augment", False)
        if self.kind == "dqn":
            object.__setattr__(self, "augment", False)

    @property
    def noop(self) -> int:
        return self.n // 2


class ADDQN:
    """AD-DQN (and DecQN as its mean/no-augmentation case)."""

    def __init__(self, d: int, cfg: AgentConfig, seed: int, dynamics: DynamicsEnsemble | None = None):
        torch.manual_seed(seed)
        self.cfg, self.n = cfg, cfg.n
        self.heads_net = mlp(d, cfg.hidden, 2 * cfg.n)
        self.mixer = Mixer(cfg.mixer, d, r_max=cfg.r_max, state_bias=cfg.mixer in BIASED_BY_DEFAULT)
        self.net = nn.ModuleDict({"heads": self.heads_net, "mixer": self.mixer})
        self.target = copy.deepcopy(self.net)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.augment = cfg.augment and cfg.lambda_proj > 0
        self.dynamics = dynamics
        self.gen = torch.Generator().manual_seed(seed)  # model noise: member choice and xi

    def heads(self, z: torch.Tensor, target: bool = False) -> torch.Tensor:
        return (self.target if target else self.net)["heads"](z).view(-1, 2, self.n)

    @torch.no_grad()
    def values(self, z: torch.Tensor) -> torch.Tensor:
        """F(q(z, a); z) for all n^2 joint actions (N, n^2), flat a = n a_x + a_y."""
        return self.mixer(joint_q_pairs(self.heads(z)), z)

    @torch.no_grad()
    def greedy(self, z: torch.Tensor) -> torch.Tensor:
        """argmax over the joint grid through the mixer (the state bias cannot move it; ties: lowest index)."""
        return self.mixer(joint_q_pairs(self.heads(z)), z, with_bias=False).argmax(-1)

    def update(self, z, a, r, z2, done) -> dict[str, float]:
        cfg, net, tgt = self.cfg, self.net, self.target
        B = z.shape[0]
        a_x, a_y = a // self.n, a % self.n
        a2d = torch.stack([a_x, a_y], 1)
        aug = self.augment and self.dynamics is not None  # no model before its first fit
        with torch.no_grad():
            # 1. batch modification B -> B_k: a row whose other actuator was at the no-op level already is
            #    a sample of the projected MDP M_k; otherwise a uniformly drawn ensemble member, queried at
            #    (a_k, no-op), gives the next state and the reward
            nxt = z2
            if aug:
                syn = torch.stack([a_y != cfg.noop, a_x != cfg.noop])  # (2, B): row i of B_k is synthetic
                noop_x, noop_y = torch.full_like(a_x[syn[1]], cfg.noop), torch.full_like(a_y[syn[0]], cfg.noop)
                z_hat, d_hat, r_hat = self.dynamics.sample(
                    torch.cat([z[syn[0]], z[syn[1]]]), torch.cat([a_x[syn[0]], noop_x]),
                    torch.cat([noop_y, a_y[syn[1]]]), self.gen)
                nxt = torch.cat([z2, z_hat])
                src = torch.arange(B).repeat(2, 1)  # src[k, i]: the row of `nxt` holding B_k's next state i
                src[syn] = B + torch.arange(len(z_hat))
                d_k, r_k = done.repeat(2, 1), r.repeat(2, 1)
                d_k[syn], r_k[syn] = d_hat, r_hat
            q_n, tq_n = self.heads(nxt), self.heads(nxt, target=True)

            # 2. mixed double-Q target on the real batch: a* = argmax_a F(q(z', a)), valued by the target copies
            a_star = net["mixer"](joint_q_pairs(q_n[:B]), z2, with_bias=False).argmax(-1)
            f_t = tgt["mixer"](joint_q_pairs(tq_n[:B]), z2).gather(1, a_star[:, None]).squeeze(1)
            y = r + cfg.gamma * (1.0 - done) * f_t

            # 3. projected double-Q targets on B_k: head k's own argmax, valued by its target copy
            if aug:
                y_k = torch.empty(2, B)
                for k in range(2):
                    a_k = q_n[src[k], k].argmax(-1)
                    y_k[k] = r_k[k] + cfg.gamma * (1.0 - d_k[k]) * tq_n[src[k], k].gather(1, a_k[:, None]).squeeze(1)

        # 4. mixed loss on the real batch (its gradient flows into the heads)
        q_pair = self.heads(z).gather(2, a2d[:, :, None]).squeeze(2)  # (B, 2) = [Q_x(z, a_x), Q_y(z, a_y)]
        f = net["mixer"](q_pair, z)
        loss_mix = huber(f - y)
        # 5. projected losses: head k on B_k (z and a_k as taken, consequences from B_k)
        loss = loss_mix
        stats = {"loss/mix": loss_mix.detach(), "q/mix_mean": f.detach().mean()}
        if aug:
            loss_proj = torch.stack([huber(q_pair[:, 0] - y_k[0]), huber(q_pair[:, 1] - y_k[1])])
            loss = loss + cfg.lambda_proj * loss_proj.sum()
            stats.update({"loss/proj_x": loss_proj[0].detach(), "loss/proj_y": loss_proj[1].detach(),
                          "real_frac/x": 1.0 - syn[0].float().mean(), "real_frac/y": 1.0 - syn[1].float().mean()})
        # 6. one Adam step, Polyak update of the target copies
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        polyak_(tgt, net, cfg.polyak)
        return stats


class JointDQN:
    """Double DQN over all n^2 joint actions (one output each)."""

    def __init__(self, d: int, cfg: AgentConfig, seed: int, dynamics=None):
        torch.manual_seed(seed)
        self.cfg, self.n = cfg, cfg.n
        self.net = mlp(d, cfg.hidden, cfg.n * cfg.n)
        self.target = copy.deepcopy(self.net)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.augment = False

    @torch.no_grad()
    def values(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    @torch.no_grad()
    def greedy(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).argmax(-1)

    def update(self, z, a, r, z2, done) -> dict[str, float]:
        cfg = self.cfg
        with torch.no_grad():
            a_star = self.net(z2).argmax(-1)
            y = r + cfg.gamma * (1.0 - done) * self.target(z2).gather(1, a_star[:, None]).squeeze(1)
        q = self.net(z).gather(1, a[:, None]).squeeze(1)
        loss = huber(q - y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        polyak_(self.target, self.net, cfg.polyak)
        return {"loss/mix": loss.detach(), "q/mix_mean": q.detach().mean()}


def make_agent(d: int, cfg: AgentConfig, seed: int, dynamics: DynamicsEnsemble | None = None):
    return JointDQN(d, cfg, seed) if cfg.kind == "dqn" else ADDQN(d, cfg, seed, dynamics)
