"""Discrete BCQ (Fujimoto et al. 2019, discrete variant as implemented by Tang et al.; method.md 3.1).

The whole update is in :meth:`BCQ.losses`, top to bottom (the optimiser step: adrl/rl/nets.py Learner.update).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..actions import N_ACTIONS
from ..errors import ConfigError
from .nets import TD_LOSSES, Learner, clip_target, masked_argmax, mlp, ratio_mask, td_loss


@dataclass(frozen=True)
class BCQConfig:
    """Shared by every BCQ variant (factored BCQ and AD-BCQ extend it): threshold and optimisation."""
    tau: float = 0.3            # BCQ threshold: a is allowed if pi(a|z) / max_b pi(b|z) > tau
    hidden: int = 256
    lr: float = 3e-4
    weight_decay: float = 1e-3
    gamma: float = 0.99
    polyak: float = 0.005
    logit_penalty: float = 0.01
    # value learning (method.md 3.1, "measured since"): rewards are divided by value_scale during training, so the
    # networks learn values of order one; every value read out is multiplied back (the 0..r_max scale)
    value_scale: float = 1.0
    loss: str = "huber"         # TD loss in training units: huber (delta 1) | mse
    target_every: int = 0       # 0: Polyak averaging at `polyak` every step; n > 0: hard copy every n steps
    # bootstrap targets clipped to [q_min, q_max] in training units (train.q_clip: auto; None: no clip)
    q_min: float | None = None
    q_max: float | None = None

    def __post_init__(self):
        check_value_knobs(self)


def check_value_knobs(cfg) -> None:
    if cfg.loss not in TD_LOSSES:
        raise ConfigError(f"train.loss: expected one of {', '.join(TD_LOSSES)}, got {cfg.loss!r}")
    if not cfg.value_scale > 0:
        raise ConfigError(f"train.value_scale must be > 0, got {cfg.value_scale!r}")
    if cfg.target_every < 0:
        raise ConfigError(f"train.target_every must be >= 0, got {cfg.target_every!r}")
    if cfg.q_min is not None and cfg.q_max is not None and not cfg.q_min <= cfg.q_max:
        raise ConfigError(f"train.q_clip: the value bounds are empty ({cfg.q_min} > {cfg.q_max})")


class BCQNet(nn.Module):
    """The policy-relevant networks: joint Q (d -> h -> h -> 25) and the imitation MLP (same shape)."""

    def __init__(self, d: int, cfg: BCQConfig):
        super().__init__()
        self.register_buffer("tau", torch.tensor(float(cfg.tau)), persistent=False)  # see register_taus
        self.q = mlp(d, cfg.hidden, N_ACTIONS)
        self.imit = mlp(d, cfg.hidden, N_ACTIONS)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q(z, .) (N, 25), allowed mask (N, 25))."""
        return self.values(z), self.allowed(self.imit(z))

    def values(self, z: torch.Tensor) -> torch.Tensor:
        """Q(z, .) (N, 25): the first part of :meth:`forward` (every learner's net has ``values``, ``imit`` and
        ``allowed``; forward is ``(values(z), allowed(imit(z)))``)."""
        return self.q(z)

    def allowed(self, logits: torch.Tensor) -> torch.Tensor:
        """The BCQ filter (N, 25) from the imitation network's logits: pi(a|z) / max_b pi(b|z) > tau."""
        return ratio_mask(F.log_softmax(logits, -1), self.tau)


class BCQ(Learner):
    algorithm = "bcq"

    def __init__(self, d: int, cfg: BCQConfig, seed: int):
        torch.manual_seed(seed)
        super().__init__(BCQNet(d, cfg), cfg, seed)

    def imitation(self, net, z, a, z2) -> tuple[torch.Tensor, torch.Tensor]:
        """The imitation network's part of the update: (its loss on the batch, NLL + logit penalty; its logits at z',
        without gradient, for the filter of the target). It reads net.imit and the batch only, not tau and not the
        Q networks, so runs that differ only in tau share it (adrl/rl/batched.py)."""
        with torch.no_grad():
            logits2 = net.imit(z2)
        logits = net.imit(z)
        loss_bc = F.nll_loss(F.log_softmax(logits, -1), a) + self.cfg.logit_penalty * logits.pow(2).mean()
        return loss_bc, logits2

    def losses(self, net, target, z, a, r, z2, done, diag: bool = True,
               imit: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict]:
        """``imit``: the result of :meth:`imitation`, computed by a caller whose imitation network several runs share
        (its loss then arrives detached: the caller adds it once per shared network); None: computed here."""
        cfg = self.cfg
        r = r / cfg.value_scale   # values in training units
        # imitation network: its loss (below) and its logits at z' for the filter
        loss_bc, logits2 = self.imitation(net, z, a, z2) if imit is None else imit
        # target: the online net picks a' among the allowed actions at z', the target net evaluates it
        with torch.no_grad():
            q2, allowed2 = net.q(z2), net.allowed(logits2)
            a2 = masked_argmax(q2, allowed2)
            q2_target = target.q(z2).gather(1, a2[:, None]).squeeze(1)
            y = clip_target(r + cfg.gamma * (1.0 - done) * q2_target, cfg)
        # losses: TD + imitation NLL + logit penalty
        q = net.q(z)
        q_sa = q.gather(1, a[:, None]).squeeze(1)
        loss_q = td_loss(q_sa - y, cfg.loss)
        return loss_q + loss_bc, {
            "loss/q": loss_q.detach(), "loss/bc": loss_bc.detach(), "q/mean": q_sa.detach().mean() * cfg.value_scale,
            "target/mean": y.mean() * cfg.value_scale, "allowed/joint": allowed2.sum(1, dtype=torch.float32).mean()}
