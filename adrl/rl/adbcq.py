"""AD-BCQ as the project fixes it (method.md section 4): projected heads Q_F, Q_V on a shared trunk, a mixer
F(q; z), the factored BCQ filter, and the batch modification B -> B_k from a frozen projected dynamics ensemble.
The whole update is in :meth:`ADBCQ.extra` (the model batch) and :meth:`ADBCQ.losses`, top to bottom.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..actions import N_ACTIONS, N_VASO
from ..errors import ConfigError
from .bcq import BCQConfig, check_value_knobs
from .dynamics import CONTROLS, NEXT_STATES, TERMINATIONS, DynamicsEnsemble
from .factored_bcq import check_tau_per_head, register_taus
from .nets import (HYPER_MIXERS, Learner, Mixer, clip_target, factored_logp, joint_mask, joint_q_pairs, masked_argmax, mlp, ratio_mask,
                   slice_masks, td_loss)

BIASED_BY_DEFAULT = ("linear", "mlp2", "relu")
MIXERS = ("mean", "sum", "linear", "mlp2", "relu")
OPTIONS = {"heads": ("shared", "separate"), "state_cond": ("auto", "none", "bias", "hyper"),
           "mlp2_activation": ("none", "tanh"), "bc_filter": ("factored", "joint")}


@dataclass(frozen=True)
class ADBCQConfig(BCQConfig):
    """Discrete BCQ's knobs plus the mixer, state conditioning and the projected-model augmentation.

    The defaults are the fixed method of method.md 4.1-4.3; the other values are its configurable options.
    """
    mixer: str = "linear"             # mean | sum | linear | mlp2 | relu
    state_bias: bool | None = None    # b(z); None: on for linear/mlp2/relu, off for mean/sum
    augment: bool = True              # off: lambda_proj = 0 and no model (method.md 4.8)
    lambda_proj: float = 1.0
    reuse_real: bool = True           # rows whose other sub-action is no-op are real samples of M_k
    mixer_grad_to_heads: bool = True
    r_max: float = 100.0
    heads: str = "shared"             # shared trunk -> 10 outputs | separate: one d -> h -> h -> 5 MLP per head
    state_cond: str = "auto"          # auto (from state_bias) | none | bias: b(z) | hyper: w(z) and b(z), linear only
    relu_monotone: bool = False       # relu mixer with |W|, |v| (QMIX): F non-decreasing in every q_k
    mlp2_activation: str = "none"     # mlp2 mixer: none (deep linear) | tanh
    mixer_w0: float | None = None     # the linear mixer's initial weights w_k (None: 1/K, method.md 4.2)
    bc_filter: str = "factored"       # factored: A_F x A_V | joint: 25-way imitation head, M = {pi/max pi > tau}
    tau_per_head: tuple[float, float] | None = None   # (tau_F, tau_V) for the factored filter, else tau
    # the model batch B_k (method.md 4.5; params.yaml train.dynamics); the defaults are method.md's original choice
    termination: str = "soft"         # soft: P(end), R_max P(end) P(survive) | sample: Bernoulli draws | logged
    next_state: str = "sample"        # sample: a member's Gaussian draw | mean: the ensemble mean
    control: str = "none"             # E3: none | shuffle (another row's z-hat) | noise (on z-hat)
    noise_scale: float = 1.0          # control noise: in units of the model's validation residual std

    def __post_init__(self):
        check_value_knobs(self)
        if self.mixer not in MIXERS:
            raise ConfigError(f"train.mixers: unknown mixer {self.mixer!r}; expected one of {', '.join(MIXERS)}")
        for key, allowed in OPTIONS.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"train.{key}: expected one of {', '.join(allowed)}, got {getattr(self, key)!r}")
        for key, allowed in (("termination", TERMINATIONS), ("next_state", NEXT_STATES), ("control", CONTROLS)):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"train.dynamics.{key}: expected one of {', '.join(allowed)}, "
                                  f"got {getattr(self, key)!r}")
        if not self.noise_scale >= 0:
            raise ConfigError(f"train.dynamics.noise_scale: must be >= 0, got {self.noise_scale!r}")
        object.__setattr__(self, "tau_per_head", check_tau_per_head(self.tau_per_head))
        if self.state_cond == "hyper" and self.mixer not in HYPER_MIXERS:
            raise ConfigError(f"train.state_cond: hyper supports only the {', '.join(HYPER_MIXERS)} mixer, "
                              f"got mixer {self.mixer!r} (use state_cond bias or none for it)")
        if self.state_bias is not None and self.state_cond != "auto" and self.state_bias != (self.state_cond != "none"):
            raise ConfigError(f"train.state_cond: {self.state_cond} contradicts train.state_bias: "
                              f"{'on' if self.state_bias else 'off'}; set state_bias: auto")
        if self.bc_filter == "joint" and self.tau_per_head is not None:
            raise ConfigError("train.tau_per_head applies to the factored filter; with train.bc_filter: joint "
                              "AD-BCQ uses the sweep threshold (set tau_per_head: null)")

    @property
    def use_bias(self) -> bool:
        """Whether the mixer has the state bias b(z)."""
        if self.state_cond != "auto":
            return self.state_cond != "none"
        return self.mixer in BIASED_BY_DEFAULT if self.state_bias is None else bool(self.state_bias)

    @property
    def cond(self) -> str:
        """The resolved state conditioning: none | bias | hyper."""
        return self.state_cond if self.state_cond != "auto" else ("bias" if self.use_bias else "none")


class SeparateHeads(nn.Module):
    """``heads: separate``: one MLP d -> h -> h -> 5 per sub-action, outputs concatenated to (N, 10)."""

    def __init__(self, d: int, hidden: int, K: int = 2):
        super().__init__()
        self.nets = nn.ModuleList(mlp(d, hidden, N_VASO) for _ in range(K))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([net(z) for net in self.nets], -1)


class ADBCQNet(nn.Module):
    """Heads (shared trunk d -> h -> h -> 10, or one MLP per head) read as (Q_F, Q_V), the imitation
    network (2 x 5, or 25-way with ``bc_filter: joint``) and the mixer."""

    def __init__(self, d: int, cfg: ADBCQConfig):
        super().__init__()
        register_taus(self, cfg)
        self.joint_filter = cfg.bc_filter == "joint"
        self.heads_net = mlp(d, cfg.hidden, 10) if cfg.heads == "shared" else SeparateHeads(d, cfg.hidden)
        self.imit = mlp(d, cfg.hidden, N_ACTIONS if self.joint_filter else 10)
        # the mixer works in training units: R_max / value_scale keeps mlp2/relu's q / R_max of order one
        self.mixer = Mixer(cfg.mixer, d, r_max=cfg.r_max / cfg.value_scale, state_bias=cfg.use_bias, hyper=cfg.cond == "hyper",
                           monotone=cfg.relu_monotone and cfg.mixer == "relu",
                           activation=cfg.mlp2_activation if cfg.mixer == "mlp2" else "none",
                           w0=cfg.mixer_w0)

    def heads(self, z: torch.Tensor) -> torch.Tensor:
        return self.heads_net(z).view(-1, 2, N_VASO)

    def masks(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-head allowed sets A_k (N, 2, 5), joint allowed set M (N, 25)), method.md 4.3.

        factored: A_k = {pi_k/max pi_k > tau_k}, M = A_F x A_V; joint: M = {pi/max pi > tau} and A_k its
        interventional slices (marginal where empty)."""
        return self.masks_of(self.imit(z))

    def masks_of(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`masks` from the imitation network's logits (its only input that depends on the run's threshold)."""
        if self.joint_filter:
            m25 = ratio_mask(F.log_softmax(logits, -1), self.tau)
            return slice_masks(m25), m25
        m2 = ratio_mask(factored_logp(logits), self.tau_k)
        return m2, joint_mask(m2)

    def sub_masks(self, z: torch.Tensor) -> torch.Tensor:
        return self.masks(z)[0]

    def imitation_loss(self, z: torch.Tensor, a: torch.Tensor, logit_penalty: float) -> torch.Tensor:
        """NLL_F + NLL_V (factored) or the 25-way NLL (joint), plus the logit penalty."""
        logits = self.imit(z)
        if self.joint_filter:
            nll = F.nll_loss(F.log_softmax(logits, -1), a)
        else:
            logp = factored_logp(logits)
            nll = F.nll_loss(logp[:, 0], a // N_VASO) + F.nll_loss(logp[:, 1], a % N_VASO)
        return nll + logit_penalty * logits.pow(2).mean()

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(F(q(z, a); z) for the 25 joint actions, allowed mask M (N, 25)), method.md 4.7."""
        return self.values(z), self.allowed(self.imit(z))

    def values(self, z: torch.Tensor) -> torch.Tensor:
        """The mixed value F(q(z, a); z) of the 25 joint actions (N, 25)."""
        return self.mixer(joint_q_pairs(self.heads(z)), z)

    def allowed(self, logits: torch.Tensor) -> torch.Tensor:
        """The joint allowed set M (N, 25) from the imitation network's logits."""
        return self.masks_of(logits)[1]


class ADBCQ(Learner):
    algorithm = "adbcq"
    diag_every = 10

    def __init__(self, d: int, cfg: ADBCQConfig, seed: int, dynamics: DynamicsEnsemble | None = None):
        if cfg.augment and cfg.lambda_proj > 0 and dynamics is None:
            raise ValueError("AD-BCQ with augmentation needs a fitted dynamics ensemble")
        torch.manual_seed(seed)
        super().__init__(ADBCQNet(d, cfg), cfg, seed)
        self.augment = cfg.augment and cfg.lambda_proj > 0
        self.dynamics = dynamics if self.augment else None
        self.gen = torch.Generator().manual_seed(seed)  # model noise: member choice and xi

    def extra(self, z, a, r, z2, done) -> tuple:
        """1. Batch modification B -> B_k (augmentation on; method.md 4.5): a row whose other sub-action is no-op is
        already a sample of M_k and is reused; otherwise the model, queried at (a_k, no-op), gives the next state
        (train.dynamics.next_state, control) and the termination and reward (termination: soft or sample; logged
        keeps the real row's done and reward), on the reward scale.

        Returns (z_hat (n_syn, d): the synthetic next states, B_F's then B_V's; src (2, B): the row of
        [z2; z_hat] holding the next state of row i of B_k; d_k, r_k (2, B): termination and reward of B_k)."""
        if not self.augment:
            return ()
        B = z.shape[0]
        a_f, a_v = a // N_VASO, a % N_VASO
        # the model batch is drawn in float32 under train.precision bfloat16 too (autocast off): the same draws
        with torch.no_grad(), torch.autocast(z.device.type, enabled=False):
            real = (torch.stack([a_v == 0, a_f == 0]) if self.cfg.reuse_real
                    else torch.zeros(2, B, dtype=torch.bool, device=z.device))
            syn = ~real
            # the ensemble and its generator stay on the CPU (the same draws on any device)
            z_hat, d_hat, r_hat = (x.to(z.device) for x in self.dynamics.sample(
                torch.cat([z[syn[0]], z[syn[1]]]).cpu(),
                torch.cat([a_f[syn[0]], torch.zeros_like(a_f[syn[1]])]).cpu(),
                torch.cat([torch.zeros_like(a_v[syn[0]]), a_v[syn[1]]]).cpu(), self.gen,
                next_state=self.cfg.next_state, termination=self.cfg.termination, control=self.cfg.control,
                noise_scale=self.cfg.noise_scale))
            src = torch.arange(B, device=z.device).repeat(2, 1)
            src[syn] = B + torch.arange(len(z_hat), device=z.device)
            d_k, r_k = done.repeat(2, 1), r.repeat(2, 1)
            if self.cfg.termination != "logged":
                d_k[syn], r_k[syn] = d_hat, r_hat
        return z_hat, src, d_k, r_k

    def imitation(self, net, z, a, z2, z_hat=None, src=None, d_k=None, r_k=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The imitation network's part of the update: (its loss on the real batch, NLL_F + NLL_V or the joint NLL, plus
        the logit penalty; its logits, without gradient, at every next state the targets read: the real z', then the
        model batch's synthetic ones). It reads net.imit, the batch and the model batch only, not the thresholds and
        not the heads or the mixer, so runs that differ only in tau share it (adrl/rl/batched.py)."""
        with torch.no_grad():
            logits_n = net.imit(torch.cat([z2, z_hat]) if z_hat is not None else z2)
        return net.imitation_loss(z, a, self.cfg.logit_penalty), logits_n

    def losses(self, net, tgt, z, a, r, z2, done, z_hat=None, src=None, d_k=None, r_k=None,
               diag: bool = True, imit: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict]:
        """``imit``: the result of :meth:`imitation`, computed by a caller whose imitation network several runs share
        (its loss then arrives detached: the caller adds it once per shared network); None: computed here."""
        cfg = self.cfg
        B = z.shape[0]
        scale = cfg.value_scale
        r = r / scale   # values in training units (the model's reward too, below)
        a2d = torch.stack([a // N_VASO, a % N_VASO], 1)
        augment = z_hat is not None   # the model batch of extra() (step 1)
        stats: dict[str, torch.Tensor] = {}

        # 6. (first, as its logits at the next states feed the filter) the imitation loss on the real batch:
        # NLL_F + NLL_V (joint filter: 25-way NLL) + logit penalty
        loss_bc, logits_n = self.imitation(net, z, a, z2, z_hat) if imit is None else imit

        with torch.no_grad():
            # one pass of the online heads, the imitation net and the target heads over every next state
            # (rows 0..B-1: the real z'; then the synthetic z' of B_F, then of B_V)
            nxt = torch.cat([z2, z_hat]) if augment else z2
            q_n, (m_n, mm_n), tq_n = net.heads(nxt), net.masks_of(logits_n), tgt.heads(nxt)

            # 2. mixed target on the real batch: a* = argmax_{a in M(z')} F(q(z', a); z'), by the target copies
            q2, m2, mm2 = q_n[:B], m_n[:B], mm_n[:B]
            f2 = net.mixer(joint_q_pairs(q2), z2, with_bias=False)  # b(z') cannot move the argmax (w(z') can)
            a_star = masked_argmax(f2, mm2)
            f2_target = tgt.mixer(joint_q_pairs(tq_n[:B]), z2).gather(1, a_star[:, None]).squeeze(1)
            y = clip_target(r + cfg.gamma * (1.0 - done) * f2_target, cfg)

            # 3. projected targets on B_k: a*_k = argmax over A_k(z'_k) of online Q_k, evaluated by target Q_k
            if augment:
                y_k = []
                for k in range(2):
                    q_k, m_k, t_k = (x.index_select(0, src[k])[:, k] for x in (q_n, m_n, tq_n))
                    a_k = masked_argmax(q_k, m_k)
                    y_k.append(r_k[k] / scale + cfg.gamma * (1.0 - d_k[k]) * t_k.gather(1, a_k[:, None]).squeeze(1))
                y_k = clip_target(torch.stack(y_k), cfg)

        # 4. mixed loss on the real batch (gradients flow into the heads unless switched off)
        q_pair = net.heads(z).gather(2, a2d[:, :, None]).squeeze(2)  # (B, 2) = [Q_F(z, a_F), Q_V(z, a_V)]
        b = net.mixer.state_bias_values(z)
        f = net.mixer(q_pair if cfg.mixer_grad_to_heads else q_pair.detach(), z, b=b)
        loss_mix = td_loss(f - y, cfg.loss)

        # 5. projected losses: head k on B_k (z and a_k as logged, consequences from B_k)
        loss_proj = torch.zeros(2, device=z.device)
        if augment:
            loss_proj = torch.stack([td_loss(q_pair[:, 0] - y_k[0], cfg.loss), td_loss(q_pair[:, 1] - y_k[1], cfg.loss)])

        # 7. total loss (one Adam step and the target update follow: Learner.update)
        loss = loss_mix + cfg.lambda_proj * loss_proj.sum() + loss_bc if augment else loss_mix + loss_bc

        # diagnostics (method.md 4.10): losses every step, the rest every `diag_every` steps (before the step)
        stats.update({"loss/mix": loss_mix.detach(), "loss/proj_F": loss_proj[0].detach(),
                      "loss/proj_V": loss_proj[1].detach(), "loss/bc": loss_bc.detach()})
        if not diag:
            return loss, stats
        with torch.no_grad():   # values on the reward scale (training units x value_scale)
            qp, fd, yd, f2, q2 = q_pair.detach() * scale, f.detach() * scale, y * scale, f2 * scale, q2 * scale
            stats.update({
                "q/F_mean": qp[:, 0].mean(), "q/F_std": qp[:, 0].std(), "q/V_mean": qp[:, 1].mean(),
                "q/V_std": qp[:, 1].std(), "mix/mean": fd.mean(), "mix/std": fd.std(),
                "target/mean": yd.mean(), "mix/action_std": f2.std(-1).mean(),
                "heads/action_std": q2.std(-1).mean(),
                "allowed/F": m2[:, 0].sum(-1, dtype=torch.float32).mean(),
                "allowed/V": m2[:, 1].sum(-1, dtype=torch.float32).mean(),
                "allowed/joint": mm2.sum(-1, dtype=torch.float32).mean(),
                "agree/proj": (a_star == masked_argmax(q2[:, 0], m2[:, 0]) * N_VASO
                               + masked_argmax(q2[:, 1], m2[:, 1])).float().mean(),
            })
            if augment:
                stats["real_frac/F"] = (src[0] < B).float().mean()
                stats["real_frac/V"] = (src[1] < B).float().mean()
                stats["target/proj_F_mean"], stats["target/proj_V_mean"] = y_k[0].mean() * scale, y_k[1].mean() * scale
            w = net.mixer.weights()
            if w is None and net.mixer.hyper is not None:  # per-state weights: their batch mean and spread
                wz = net.mixer.state_weights(z)
                w = wz.mean(0)
                stats["mixer/w_F_std"], stats["mixer/w_V_std"] = wz[:, 0].std(), wz[:, 1].std()
            if w is not None:
                stats["mixer/w_F"], stats["mixer/w_V"] = w[0], w[1]
            if b is not None:
                stats["mixer/b_mean"], stats["mixer/b_std"] = b.detach().mean() * scale, b.detach().std() * scale
        return loss, stats
