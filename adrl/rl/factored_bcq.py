"""Factored BCQ (Tang et al. 2022; method.md 3.2): additive per-sub-action Q, per-sub-action imitation
softmaxes and the product mask M = A_F x A_V. The whole update is in :meth:`FactoredBCQ.losses`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..actions import N_VASO
from ..errors import ConfigError
from .bcq import BCQConfig, check_value_knobs
from .nets import Learner, clip_target, factored_logp, joint_mask, joint_q_pairs, masked_argmax, mlp, ratio_mask, td_loss


def check_tau_per_head(v) -> tuple[float, float] | None:
    """None, or (tau_F, tau_V) with both in [0, 1); a ConfigError naming train.tau_per_head otherwise."""
    if v is None:
        return None
    try:
        t = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        raise ConfigError(f"train.tau_per_head must be null or [tau_F, tau_V], got {v!r}") from None
    if len(t) != 2 or not all(0.0 <= x < 1.0 for x in t):
        raise ConfigError(f"train.tau_per_head must be null or [tau_F, tau_V] with both in [0, 1), got {v!r}")
    return t


def head_taus(tau: float, tau_per_head: tuple[float, float] | None) -> torch.Tensor:
    """The factored filter's threshold: the shared tau (a 0-d tensor), or a (2, 1) tensor (tau_F, tau_V) that
    broadcasts against (N, 2, 5) log-probabilities."""
    return torch.tensor(float(tau)) if tau_per_head is None else torch.tensor(tau_per_head, dtype=torch.float32)[:, None]


def register_taus(net: nn.Module, cfg) -> None:
    """The thresholds as non-persistent buffers (not in checkpoints: run.json's config holds them), so that runs
    with different thresholds can share one batched network (adrl/rl/batched.py swaps them per run)."""
    net.register_buffer("tau", torch.tensor(float(cfg.tau)), persistent=False)
    net.register_buffer("tau_k", head_taus(cfg.tau, getattr(cfg, "tau_per_head", None)), persistent=False)


@dataclass(frozen=True)
class FactoredBCQConfig(BCQConfig):
    """Same knobs as discrete BCQ; the threshold applies per sub-action (shared tau, or tau_per_head)."""
    tau_per_head: tuple[float, float] | None = None   # (tau_F, tau_V) overriding tau in the filter

    def __post_init__(self):
        check_value_knobs(self)
        object.__setattr__(self, "tau_per_head", check_tau_per_head(self.tau_per_head))


class FactoredBCQNet(nn.Module):
    """Q network d -> h -> h -> 10 read as 2 x 5 (Q = q_F + q_V) and a 2 x 5 imitation network."""

    def __init__(self, d: int, cfg: FactoredBCQConfig):
        super().__init__()
        register_taus(self, cfg)
        self.q = mlp(d, cfg.hidden, 10)
        self.imit = mlp(d, cfg.hidden, 10)

    def heads(self, z: torch.Tensor) -> torch.Tensor:
        return self.q(z).view(-1, 2, N_VASO)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(additive Q over the 25 joint actions, product mask (N, 25))."""
        return self.values(z), self.allowed(self.imit(z))

    def values(self, z: torch.Tensor) -> torch.Tensor:
        """The additive Q over the 25 joint actions (N, 25)."""
        return joint_q_pairs(self.heads(z)).sum(-1)

    def allowed(self, logits10: torch.Tensor) -> torch.Tensor:
        """The product mask (N, 25) from the imitation network's 10 logits: A_F x A_V, A_k = {pi_k / max pi_k > tau_k}."""
        return joint_mask(ratio_mask(factored_logp(logits10), self.tau_k))


class FactoredBCQ(Learner):
    algorithm = "factored_bcq"

    def __init__(self, d: int, cfg: FactoredBCQConfig, seed: int):
        torch.manual_seed(seed)
        super().__init__(FactoredBCQNet(d, cfg), cfg, seed)

    def imitation(self, net, z, a, z2) -> tuple[torch.Tensor, torch.Tensor]:
        """The imitation network's part of the update: (its loss on the batch, NLL_F + NLL_V + logit penalty on the 10
        logits; its logits at z', without gradient, for the filter of the target). It reads net.imit and the batch
        only, not the thresholds and not the Q network, so runs that differ only in tau share it (adrl/rl/batched.py)."""
        with torch.no_grad():
            logits2 = net.imit(z2)
        logits = net.imit(z)
        logp = factored_logp(logits)
        loss_bc = (F.nll_loss(logp[:, 0], a // N_VASO) + F.nll_loss(logp[:, 1], a % N_VASO)
                   + self.cfg.logit_penalty * logits.pow(2).mean())
        return loss_bc, logits2

    def losses(self, net, target, z, a, r, z2, done, diag: bool = True,
               imit: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict]:
        """``imit``: the result of :meth:`imitation`, computed by a caller whose imitation network several runs share
        (its loss then arrives detached: the caller adds it once per shared network); None: computed here."""
        cfg = self.cfg
        r = r / cfg.value_scale   # values in training units
        a2d = torch.stack([a // N_VASO, a % N_VASO], 1)  # (B, 2) = (a_F, a_V)
        # imitation: NLL_F + NLL_V + logit penalty on the 10 logits, and the logits at z' for the product mask
        loss_bc, logits2 = self.imitation(net, z, a, z2) if imit is None else imit
        # target: argmax of the additive Q over the product mask at z' (online), evaluated by the target net
        with torch.no_grad():
            q2, allowed2 = joint_q_pairs(net.heads(z2)).sum(-1), net.allowed(logits2)
            a2 = masked_argmax(q2, allowed2)
            q2_target = joint_q_pairs(target.heads(z2)).sum(-1).gather(1, a2[:, None]).squeeze(1)
            y = clip_target(r + cfg.gamma * (1.0 - done) * q2_target, cfg)
        # Q(z, a) = q_F(z, a_F) + q_V(z, a_V)
        q_pair = net.heads(z).gather(2, a2d[:, :, None]).squeeze(2)  # (B, 2)
        q_sa = q_pair.sum(-1)
        loss_q = td_loss(q_sa - y, cfg.loss)
        return loss_q + loss_bc, {
            "loss/q": loss_q.detach(), "loss/bc": loss_bc.detach(), "q/mean": q_sa.detach().mean() * cfg.value_scale,
            "target/mean": y.mean() * cfg.value_scale, "allowed/joint": allowed2.sum(1, dtype=torch.float32).mean()}
