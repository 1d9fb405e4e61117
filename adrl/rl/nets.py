"""Networks shared by the learners: MLPs, BCQ filters, joint enumeration and the AD-BCQ mixers (method.md 4.2)."""
from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from ..actions import N_ACTIONS, N_FLUID, N_VASO
from ..errors import ConfigError

NEG = -1e8  # masked-out value (Fujimoto's discrete BCQ uses -1e8)


def mlp(inp: int, hidden: int, out: int, layers: int = 2) -> nn.Sequential:
    """inp -> hidden (ReLU) x layers -> out."""
    mods: list[nn.Module] = []
    w = inp
    for _ in range(layers):
        mods += [nn.Linear(w, hidden), nn.ReLU()]
        w = hidden
    mods.append(nn.Linear(w, out))
    return nn.Sequential(*mods)


def ratio_mask(logp: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """BCQ filter on log-probabilities over the last axis: pi(a)/max_b pi(b) > tau.

    ``tau`` may be a tensor broadcasting against ``logp`` (per-head thresholds: shape (2, 1) for (N, 2, 5)).
    """
    return (logp - logp.max(-1, keepdim=True).values).exp() > tau


def factored_logp(logits10: torch.Tensor) -> torch.Tensor:
    """(N, 10) imitation logits -> (N, 2, 5) per-sub-action log-probabilities."""
    return F.log_softmax(logits10.view(-1, 2, N_FLUID), dim=-1)


def joint_mask(mask2: torch.Tensor) -> torch.Tensor:
    """(N, 2, 5) per-sub-action masks -> (N, 25) product mask M = A_F x A_V (flat a = 5 a_F + a_V)."""
    return (mask2[:, 0, :, None] & mask2[:, 1, None, :]).reshape(-1, N_ACTIONS)


def slice_masks(mask25: torch.Tensor) -> torch.Tensor:
    """(N, 25) joint allowed set M -> (N, 2, 5) per-head sets (method.md 4.3, ``bc_filter: joint``).

    Head k gets the interventional slice A_k = {a_k : (a_k, no-op) in M}; where that slice is empty it
    falls back to the marginal slice {a_k : (a_k, a_-k) in M for some a_-k}, never empty while M is not.
    """
    m = mask25.reshape(-1, N_FLUID, N_VASO)
    inter = torch.stack([m[:, :, 0], m[:, 0, :]], 1)
    marg = torch.stack([m.any(2), m.any(1)], 1)
    return torch.where(inter.any(-1, keepdim=True), inter, marg)


def joint_q_pairs(q2: torch.Tensor) -> torch.Tensor:
    """(N, 2, L) head values -> (N, L*L, 2) = [Q_F(a_F), Q_V(a_V)] for every flat action a = L a_F + a_V
    (L = 5 for the clinical actions; any number of levels per head, e.g. the online action grids)."""
    n, L = q2.shape[0], q2.shape[-1]
    qf = q2[:, 0, :, None].expand(n, L, L)
    qv = q2[:, 1, None, :].expand(n, L, L)
    return torch.stack([qf, qv], dim=-1).reshape(n, L * L, 2)


def masked_argmax(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Argmax over allowed entries; ties go to the lowest index (torch.argmax returns the first maximum)."""
    return torch.where(mask, values, torch.full_like(values, NEG)).argmax(-1)


def huber(x: torch.Tensor) -> torch.Tensor:
    return F.smooth_l1_loss(x, torch.zeros_like(x))


TD_LOSSES = ("huber", "mse")


def td_loss(x: torch.Tensor, kind: str = "huber") -> torch.Tensor:
    """Mean TD loss of the errors ``x`` (training units): Huber with delta 1, or the squared error."""
    return huber(x) if kind == "huber" else x.pow(2).mean()


def clip_target(y: torch.Tensor, cfg) -> torch.Tensor:
    """The bootstrap target ``y`` clipped to [cfg.q_min, cfg.q_max] (training units) where the run has bounds
    (``train.q_clip: auto``: the smallest and largest return the training rewards allow; None: no clip)."""
    if cfg.q_min is None and cfg.q_max is None:
        return y
    return y.clamp(cfg.q_min, cfg.q_max)


HYPER_MIXERS = ("linear",)  # mixers whose weights a hypernetwork w(z) can replace (state_cond: hyper)


def _inv_softplus(x: float) -> float:
    return math.log(math.expm1(x))


class Mixer(nn.Module):
    """F(q; z) of method.md 4.2; q: (..., K) head values, z: (N, d) with N the leading dim of q.

    The action enters only through q, the state only through the bias b(z) and, with ``hyper``, the
    positive per-head weights w(z) = softplus(MLP(z)) of the linear mixer (d -> 64 -> K, initialised at
    w = 1/K). Options: ``monotone`` (relu only) uses |W| and |v| (QMIX), so F is non-decreasing in every
    q_k; ``activation`` (mlp2 only): "none" (deep linear) or "tanh".
    """

    def __init__(self, kind: str, d: int, r_max: float = 100.0, state_bias: bool = False, K: int = 2,
                 hyper: bool = False, monotone: bool = False, activation: str = "none", w0: float | None = None):
        super().__init__()
        if hyper and kind not in HYPER_MIXERS:
            raise ConfigError(f"train.state_cond: hyper supports only the {', '.join(HYPER_MIXERS)} mixer, "
                              f"got mixer {kind!r}")
        if monotone and kind != "relu":
            raise ValueError(f"monotone applies to the relu mixer only, got {kind!r}")
        if activation not in ("none", "tanh") or (activation != "none" and kind != "mlp2"):
            raise ValueError(f"activation {activation!r}: 'none' or 'tanh', for the mlp2 mixer only")
        self.kind, self.r_max, self.K = kind, float(r_max), K
        self.monotone, self.activation = bool(monotone), activation
        self.hyper = None
        if kind == "linear":
            # w_k = softplus(omega_k) initialised at 1/K, c = 0
            if not hyper:
                self.omega = nn.Parameter(torch.full((K,), _inv_softplus(w0 or 1.0 / K)))
            self.c = nn.Parameter(torch.zeros(()))
        elif kind in ("mlp2", "relu"):
            width = 16 if kind == "mlp2" else 32
            self.W = nn.Linear(K, width)
            self.v = nn.Linear(width, 1)
        elif kind not in ("mean", "sum"):
            raise ValueError(f"unknown mixer {kind!r}")
        self.bias = None
        if state_bias:
            self.bias = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, 1))
            nn.init.zeros_(self.bias[2].weight)
            nn.init.zeros_(self.bias[2].bias)
        if hyper:
            # w(z) = softplus(MLP(z)); zero last-layer weights and bias softplus^-1(1/K): w = 1/K at start
            self.hyper = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, K))
            nn.init.zeros_(self.hyper[2].weight)
            nn.init.constant_(self.hyper[2].bias, _inv_softplus(w0 or 1.0 / K))

    def weights(self) -> torch.Tensor | None:
        """Effective per-head weights dF/dq_k where they are global (linear, deep-linear mlp2), else None."""
        if self.kind == "linear" and self.hyper is None:
            return F.softplus(self.omega)
        if self.kind == "mlp2" and self.activation == "none":
            return (self.v.weight @ self.W.weight).reshape(-1)
        return None

    def state_weights(self, z: torch.Tensor) -> torch.Tensor | None:
        """(N, K) per-state weights w(z) of the hyper linear mixer, else None."""
        return None if self.hyper is None else F.softplus(self.hyper(z))

    def forward(self, q: torch.Tensor, z: torch.Tensor, b: torch.Tensor | None = None,
                with_bias: bool = True) -> torch.Tensor:
        """F(q; z); ``b``: the state bias b(z) if already computed; ``with_bias=False`` leaves b(z) out
        (it is a state-only offset, so it never moves an argmax over actions)."""
        if self.kind == "mean":
            out = q.mean(-1)
        elif self.kind == "sum":
            out = q.sum(-1)
        elif self.kind == "linear":
            if self.hyper is None:
                w = F.softplus(self.omega)
            else:  # (N, K) -> (N, 1, ..., K): one weight vector per state, shared by that state's actions
                w = self.state_weights(z)
                w = w.reshape(w.shape[:1] + (1,) * (q.dim() - 2) + w.shape[1:])
            out = (w * q).sum(-1) + self.c
        elif self.monotone:  # relu with QMIX-style absolute weights: non-decreasing in every q_k
            h = F.relu(F.linear(q / self.r_max, self.W.weight.abs(), self.W.bias))
            out = self.r_max * F.linear(h, self.v.weight.abs(), self.v.bias).squeeze(-1)
        else:
            h = self.W(q / self.r_max)
            if self.kind == "relu":
                h = F.relu(h)
            elif self.activation == "tanh":
                h = torch.tanh(h)
            out = self.r_max * self.v(h).squeeze(-1)
        if self.bias is not None and with_bias:
            b = self.bias(z).squeeze(-1) if b is None else b
            out = out + b.reshape(b.shape + (1,) * (out.dim() - 1))
        return out

    def state_bias_values(self, z: torch.Tensor) -> torch.Tensor | None:
        return None if self.bias is None else self.bias(z).squeeze(-1)


def update_target(target, online, cfg, n_updates: int) -> None:
    """After update number ``n_updates``: Polyak averaging at ``cfg.polyak`` (``cfg.target_every`` = 0), or a hard
    copy every ``cfg.target_every`` updates. ``target``, ``online``: modules or lists of (stacked) tensors."""
    if cfg.target_every <= 0:
        polyak_(target, online, cfg.polyak)
    elif n_updates % cfg.target_every == 0:
        polyak_(target, online, 1.0)


def polyak_(target, online, rate: float) -> None:
    """target <- (1 - rate) target + rate online, for every parameter (one fused call)."""
    if isinstance(target, nn.Module):
        target, online = list(target.parameters()), list(online.parameters())
    with torch.no_grad():
        torch._foreach_lerp_(target, online, rate)


class Learner:
    """What the three learners share around their losses: an online net, its target copy, one fused Adam.

    A learner defines ``losses(net, target, z, a, r, z2, done, *extra, diag=...) -> (loss, stats)``, a pure function
    of the networks and the batch (the whole update, top to bottom), and may define ``extra(z, a, r, z2, done)``
    (per-run random inputs such as AD-BCQ's model batch, drawn outside ``losses``). :meth:`update` is one step of
    one run; adrl/rl/batched.py steps many runs at once through the same ``losses``.
    """
    diag_every = 1   # stats beyond the losses are computed every `diag_every` updates

    def __init__(self, net: nn.Module, cfg, seed: int):
        self.cfg, self.seed = cfg, seed
        self.net = net
        self.target = copy.deepcopy(net)
        for q in self.target.parameters():
            q.requires_grad_(False)
        self.opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        self.n_updates = 0

    def extra(self, z, a, r, z2, done) -> tuple:
        return ()

    def update(self, z, a, r, z2, done) -> dict[str, torch.Tensor]:
        loss, stats = self.losses(self.net, self.target, z, a, r, z2, done, *self.extra(z, a, r, z2, done),
                                  diag=self.n_updates % self.diag_every == 0)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.n_updates += 1
        update_target(self.target, self.net, self.cfg, self.n_updates)
        return stats

    def snapshot(self) -> list[dict[str, torch.Tensor]]:
        """[the online net's state dict at this step] (a list: one entry per run, as BatchedLearners.snapshot)."""
        return [{k: v.detach().to("cpu", copy=True) for k, v in self.net.state_dict().items()}]

    def to(self, device) -> "Learner":
        """Move the networks (call before the first update: the optimiser state is created lazily)."""
        self.net.to(device)
        self.target.to(device)
        return self
