"""The projected dynamics + reward ensemble of method.md 4.4.

E members (MLP, ``layers`` x ``hidden``, SiLU) take [standardised z, onehot5(a_F), onehot5(a_V)] and predict
the Gaussian of delta z = z' - z (in standardised delta units, log-variance soft-bounded), a termination
logit and a survival logit. ``survival_input``: action (method.md's original: the survival logit is an output of
the same network, so it sees (z, a)) or next_state (a separate ensemble head reading only the next state z'; it is
trained on the terminal rows' real last states and queried at the model's z-hat, so an action changes survival only
through the next state it leads to). ``levels`` sets the number of levels per head (flat a = levels[1] a_0 + a_1);
``reward: dense`` (the online tasks) replaces the terminal survival reward by a per-step reward in
[0, r_max], the last logit then predicting r / r_max on every row. Every member is fitted on its own bootstrap resample of the training
transitions; all members train at once as batched matrix products. Queried at (a_k, no-op) it estimates
the projected MDP M_k (method.md 1.3, 1.5).
"""
from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..actions import N_FLUID, N_VASO
from ..errors import ConfigError, EmptyResultError, InputError
from ..progress import Progress
from .data import Transitions

log = logging.getLogger("adrl.rl")


@dataclass(frozen=True)
class DynamicsConfig:
    ensemble: int = 5
    hidden: int = 256
    layers: int = 1            # method.md: 3; see params.yaml train.dynamics for the measurement
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 256
    max_epochs: int = 200
    patience: int = 20
    linear_skip: bool = True   # a linear path from the inputs to the outputs beside the MLP
    r_max: float = 100.0
    levels: tuple[int, int] = (N_FLUID, N_VASO)  # levels per head (one-hot widths of the action inputs)
    reward: str = "terminal"   # terminal: survival x r_max at termination | dense: r in [0, r_max] every step
    survival_input: str = "action"  # action: (z, a) as the rest of the model | next_state: a head on z' only

    def __post_init__(self):
        object.__setattr__(self, "levels", tuple(int(v) for v in self.levels))
        if self.reward not in ("terminal", "dense"):
            raise ValueError(f"dynamics reward {self.reward!r}: expected terminal or dense")
        if self.survival_input not in SURVIVAL_INPUTS:
            raise ConfigError(f"train.dynamics.survival_input: expected one of {', '.join(SURVIVAL_INPUTS)}, "
                              f"got {self.survival_input!r}")


SURVIVAL_INPUTS = ("next_state", "action")
TERMINATIONS = ("soft", "sample", "logged")   # how a synthetic row ends and is rewarded (method.md 4.5)
NEXT_STATES = ("sample", "mean")              # a member's Gaussian draw | the ensemble-mean prediction
CONTROLS = ("none", "shuffle", "noise")       # E3's controls on the synthetic next states (method.md 7)


def split_action(a, levels: tuple[int, int]):
    """flat a -> (a_0, a_1) with a = levels[1] a_0 + a_1 (numpy or torch)."""
    return a // levels[1], a % levels[1]


class EnsembleLinear(nn.Module):
    """E independent linear layers applied to (E, N, in) at once."""

    def __init__(self, E: int, inp: int, out: int):
        super().__init__()
        bound = 1.0 / math.sqrt(inp)
        self.weight = nn.Parameter(torch.empty(E, inp, out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(E, 1, out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


def _ens_forward(hidden: nn.ModuleList, out: EnsembleLinear, skip: EnsembleLinear | None, x: torch.Tensor):
    """SiLU MLP of ensemble layers, plus the optional linear path from the inputs to the outputs."""
    h = x
    for layer in hidden:
        h = F.silu(layer(h))
    return out(h) if skip is None else out(h) + skip(x)


class SurvivalHead(nn.Module):
    """``survival_input: next_state``: E MLPs (the model's width and depth) from the standardised next state to a
    survival logit."""

    def __init__(self, d: int, cfg: "DynamicsConfig"):
        super().__init__()
        layers, w = [], d
        for _ in range(cfg.layers):
            layers.append(EnsembleLinear(cfg.ensemble, w, cfg.hidden))
            w = cfg.hidden
        self.hidden = nn.ModuleList(layers)
        self.out = EnsembleLinear(cfg.ensemble, w, 1)
        self.skip = EnsembleLinear(cfg.ensemble, d, 1) if cfg.linear_skip else None

    def forward(self, xs: torch.Tensor) -> torch.Tensor:
        """(E, N, d) standardised next states -> (E, N) logits."""
        return _ens_forward(self.hidden, self.out, self.skip, xs)[..., 0]


class DynamicsEnsemble(nn.Module):
    def __init__(self, d: int, cfg: DynamicsConfig):
        super().__init__()
        self.d, self.E, self.r_max = d, cfg.ensemble, float(cfg.r_max)
        self.levels, self.dense = tuple(cfg.levels), cfg.reward == "dense"
        self.surv_next = cfg.survival_input == "next_state"
        inp = d + sum(self.levels)
        layers, w = [], inp
        for _ in range(cfg.layers):
            layers.append(EnsembleLinear(cfg.ensemble, w, cfg.hidden))
            w = cfg.hidden
        self.hidden = nn.ModuleList(layers)
        n_out = 2 * d + 1 + (not self.surv_next)   # mu, logvar, termination (and survival: action input)
        self.out = EnsembleLinear(cfg.ensemble, w, n_out)
        self.skip = EnsembleLinear(cfg.ensemble, inp, n_out) if cfg.linear_skip else None
        self.surv = SurvivalHead(d, cfg) if self.surv_next else None
        self.max_logvar = nn.Parameter(torch.full((d,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((d,), -10.0))
        for name in ("z_mean", "z_std", "dz_mean", "dz_std"):
            self.register_buffer(name, torch.zeros(d) if "mean" in name else torch.ones(d))
        # per-dimension std of the validation residual of delta z (raw units; NaN until fitted): control: noise
        self.register_buffer("resid_std", torch.full((d,), float("nan")))

    # ---- forward --------------------------------------------------------------------------------
    def inputs(self, z: torch.Tensor, a_f: torch.Tensor, a_v: torch.Tensor) -> torch.Tensor:
        return torch.cat([(z - self.z_mean) / self.z_std, F.one_hot(a_f, self.levels[0]).to(z.dtype),
                          F.one_hot(a_v, self.levels[1]).to(z.dtype)], -1)

    def raw(self, x: torch.Tensor):
        """x (E, N, in) -> mu, logvar (E, N, d) in standardised delta units; term logits (E, N); surv logits (E, N)
        with the action-input survival head, else None (:meth:`surv_logits` reads the next state)."""
        o = _ens_forward(self.hidden, self.out, self.skip, x)
        d = self.d
        mu, lv = o[..., :d], o[..., d:2 * d]
        lv = self.max_logvar - F.softplus(self.max_logvar - lv)
        lv = self.min_logvar + F.softplus(lv - self.min_logvar)
        return mu, lv, o[..., 2 * d], None if self.surv_next else o[..., 2 * d + 1]

    def surv_logits(self, z2: torch.Tensor) -> torch.Tensor:
        """The next-state survival head: raw next states (E, N, d) -> logits (E, N)."""
        return self.surv((z2 - self.z_mean) / self.z_std)

    def predict_all(self, z, a_f, a_v):
        """Every member on every row: mu, logvar (E, N, d), term, surv logits (E, N). The next-state survival head
        reads each member's mean next state z + mu_e."""
        x = self.inputs(z, a_f, a_v)
        mu, lv, ld, ls = self.raw(x.unsqueeze(0).expand(self.E, *x.shape))
        if ls is None:
            ls = self.surv_logits(z + self.dz_mean + self.dz_std * mu)
        return mu, lv, ld, ls

    def mean_delta(self, z, a_f, a_v) -> torch.Tensor:
        """Ensemble-mean predicted delta z in raw units (N, d)."""
        mu = self.predict_all(z, a_f, a_v)[0].mean(0)
        return self.dz_mean + self.dz_std * mu

    @torch.no_grad()
    def expected(self, z: np.ndarray, a_f: np.ndarray, a_v: np.ndarray):
        """numpy in and out: (the ensemble-mean next state (N, d), P(end) (N,), P(survive) (N,)), probabilities
        averaged over members (the next-state survival head reads each member's mean next state)."""
        zt = torch.as_tensor(np.asarray(z, np.float32))
        af, av = torch.as_tensor(np.asarray(a_f, np.int64)), torch.as_tensor(np.asarray(a_v, np.int64))
        mu, _, ld, ls = self.predict_all(zt, af, av)
        z_next = zt + self.dz_mean + self.dz_std * mu.mean(0)
        return z_next.numpy(), torch.sigmoid(ld).mean(0).numpy(), torch.sigmoid(ls).mean(0).numpy()

    @torch.no_grad()
    def sample(self, z, a_f, a_v, gen: torch.Generator | None = None, next_state: str = "sample",
               termination: str = "soft", control: str = "none", noise_scale: float = 0.0):
        """One synthetic consequence per row: (z_hat, d_hat, r_hat), method.md 4.5.

        ``next_state``: sample (a uniformly drawn member's Gaussian draw; rows are grouped by member and padded, so
        each layer is one batched product over E members) | mean (the ensemble-mean prediction, probabilities
        averaged over members). ``control`` (E3): none | shuffle (each row takes another row's z_hat: a random
        derangement, so the next states keep the model's marginal but lose their link to (z, a)) | noise (z_hat +
        noise_scale x the validation residual std x N(0, I)). The next-state survival head reads the z_hat that is
        emitted (after the control). ``termination``: soft (d_hat = P(end), r_hat = r_max P(end) P(survive)) |
        sample (a Bernoulli end and a Bernoulli survival per row from the same probabilities: d_hat in {0, 1},
        r_hat in {0, r_max}) | logged (as soft here; the learner keeps the real row's done and reward). Draws
        come from ``gen`` in a fixed order (member, xi, control, termination), so a seed gives the same rows.
        """
        for key, v, allowed in (("next_state", next_state, NEXT_STATES), ("termination", termination, TERMINATIONS),
                                ("control", control, CONTROLS)):
            if v not in allowed:
                raise ConfigError(f"train.dynamics.{key}: expected one of {', '.join(allowed)}, got {v!r}")
        n = z.shape[0]
        member = torch.randint(self.E, (n,), generator=gen)
        xi = torch.randn(n, self.d, generator=gen)
        if next_state == "mean":
            mu, _, ld, ls = self.raw(self.inputs(z, a_f, a_v).unsqueeze(0).expand(self.E, n, -1))
            z_hat = z + self.dz_mean + self.dz_std * mu.mean(0)
            p_d = torch.sigmoid(ld).mean(0)
        else:
            order = torch.argsort(member, stable=True)
            m_sorted = member[order]
            counts = torch.bincount(member, minlength=self.E)
            starts = torch.cumsum(counts, 0) - counts
            pos = torch.arange(n) - starts[m_sorted]
            x = self.inputs(z, a_f, a_v)[order]
            xp = x.new_zeros(self.E, int(counts.max()), x.shape[1])
            xp[m_sorted, pos] = x
            mu, lv, ld, ls = self.raw(xp)
            mu, lv, ld = mu[m_sorted, pos], lv[m_sorted, pos], ld[m_sorted, pos]
            ls = None if ls is None else ls[m_sorted, pos]
            delta = mu + (0.5 * lv).exp() * xi[order]
            z_hat = torch.empty_like(z)
            z_hat[order] = z[order] + self.dz_mean + self.dz_std * delta
            p_d = torch.empty(n, dtype=z.dtype)
            p_d[order] = torch.sigmoid(ld)
            if ls is not None:
                ls_rows = torch.empty(n, dtype=z.dtype)
                ls_rows[order] = ls
                ls = ls_rows
        if control == "shuffle" and n > 1:
            perm = torch.randperm(n, generator=gen)
            shuffled = torch.empty_like(z_hat)
            shuffled[perm] = z_hat[perm.roll(-1)]   # row perm[i] takes row perm[i + 1]'s: no row keeps its own
            z_hat = shuffled
        elif control == "noise":
            if not torch.isfinite(self.resid_std).all():
                raise ConfigError("train.dynamics.control: noise needs the model's validation residual std, which "
                                  "this ensemble does not have (fitted by older code): refit it")
            z_hat = z_hat + noise_scale * self.resid_std * torch.randn(n, self.d, generator=gen)
        if self.surv_next:   # the survival of the emitted next state
            zs = z_hat.unsqueeze(0).expand(self.E, n, -1)
            p_s_all = torch.sigmoid(self.surv_logits(zs))                          # (E, n)
            p_s = p_s_all.mean(0) if next_state == "mean" else p_s_all.gather(0, member[None]).squeeze(0)
        else:
            p_s = torch.sigmoid(ls).mean(0) if next_state == "mean" else torch.sigmoid(ls)
        if self.dense:
            r_hat = self.r_max * p_s
            d_hat = torch.bernoulli(p_d, generator=gen) if termination == "sample" else p_d
            return z_hat, d_hat, r_hat
        if termination == "sample":
            end = torch.bernoulli(p_d, generator=gen)
            alive = torch.bernoulli(p_s, generator=gen)
            return z_hat, end, self.r_max * end * alive
        return z_hat, p_d, self.r_max * p_d * p_s


# ---- fitting ----------------------------------------------------------------------------------------
def _targets(t: Transitions, r_max: float, where: str, dense: bool = False):
    nonterm = t.done < 0.5
    if dense:  # the reward of every row, as a fraction of r_max
        bad = (t.r < 0) | (t.r > r_max)
        if bad.any():
            raise InputError(f"{where}: rewards must lie in [0, r_max={r_max}]; {int(bad.sum())} do not "
                             f"(e.g. {t.r[bad][:3].tolist()})")
        return (t.r / r_max).astype(np.float32)
    if np.any(t.r[nonterm] != 0):
        raise InputError(f"{where}: the dynamics reward model needs a terminal-only reward (method.md 1.2), "
                         f"but {int((t.r[nonterm] != 0).sum())} non-terminal transition(s) have reward != 0")
    surv = t.r / r_max
    bad = (~nonterm) & ((surv < 0) | (surv > 1))
    if bad.any():
        raise InputError(f"{where}: terminal rewards must lie in [0, train.r_max={r_max}]; "
                         f"{int(bad.sum())} do not (e.g. {t.r[bad][:3].tolist()})")
    return surv.astype(np.float32)


def _member_loss(model: DynamicsEnsemble, z, af, av, dz_std_units, done, surv, z2):
    """Per-member loss (E,) on batches stacked as (E, N, ...); ``surv``: survival (terminal rows) or, with a
    dense reward, r / r_max on every row; ``z2``: the real next states (the next-state survival head's input)."""
    mu, lv, ld, ls = model.raw(model.inputs(z, af, av))
    if ls is None:
        ls = model.surv_logits(z2)
    nonterm = 1.0 - done
    nll = 0.5 * (((dz_std_units - mu) ** 2) * torch.exp(-lv) + lv).mean(-1)  # (E, N)
    nll = (nll * nonterm).sum(-1) / nonterm.sum(-1).clamp_min(1.0)
    bce_d = F.binary_cross_entropy_with_logits(ld, done, reduction="none").mean(-1)
    on = torch.ones_like(done) if model.dense else done
    bce_s = (F.binary_cross_entropy_with_logits(ls, surv, reduction="none") * on).sum(-1) / on.sum(-1).clamp_min(1.0)
    return nll + bce_d + bce_s


def fit_dynamics(train: Transitions, val: Transitions, cfg: DynamicsConfig, seed: int,
                 where: str = "states table", progress: bool | None = None,
                 noop: tuple[int, int] | None = None):
    """Fit the ensemble (bootstrap per member, early stopping per member on validation loss); ``noop``: each
    head's no-op level for the validation report (0 for the clinical actions).

    Returns (model in eval mode, report dict of validation metrics, history dict of per-epoch losses).
    """
    if len(train) == 0 or len(val) == 0:
        raise EmptyResultError(f"{where}: the dynamics model needs train and val transitions")
    dense = cfg.reward == "dense"
    z2_tr, z2_va = (_next_states(t, cfg, where) for t in (train, val))
    s_tr = _targets(train, cfg.r_max, where, dense)
    s_va = _targets(val, cfg.r_max, where, dense)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    d, E = train.dim, cfg.ensemble
    model = DynamicsEnsemble(d, cfg)
    nonterm = train.done < 0.5
    dz = (train.z2 - train.z)[nonterm]
    with torch.no_grad():
        model.z_mean.copy_(torch.from_numpy(train.z.mean(0)))
        model.z_std.copy_(torch.from_numpy(train.z.std(0) + 1e-6))
        if len(dz):
            model.dz_mean.copy_(torch.from_numpy(dz.mean(0)))
            model.dz_std.copy_(torch.from_numpy(dz.std(0) + 1e-6))

    def tensors(t: Transitions, surv, z2):
        dzs = (torch.from_numpy(t.z2 - t.z) - model.dz_mean) / model.dz_std
        a0, a1 = split_action(torch.from_numpy(t.a), cfg.levels)
        return (torch.from_numpy(t.z), a0, a1, dzs, torch.from_numpy(t.done), torch.from_numpy(surv),
                torch.from_numpy(z2))

    tr = tensors(train, s_tr, z2_tr)
    va = tensors(val, s_va, z2_va)
    n = len(train)
    boot = torch.from_numpy(rng.integers(0, n, size=(E, n)))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best = torch.full((E,), float("inf"))
    best_state = copy.deepcopy(model.state_dict())
    since, hist_tr, hist_va = 0, [], []
    bs = cfg.batch_size
    bar = Progress(range(cfg.max_epochs), desc="train: dynamics model", unit="epochs", logger=log,
                   enabled=progress)
    for epoch in bar:
        model.train()
        perm = torch.from_numpy(rng.permuted(np.broadcast_to(np.arange(n), (E, n)), axis=1))
        order = torch.gather(boot, 1, perm)
        tot = 0.0
        for i in range(0, n, bs):
            idx = order[:, i:i + bs]
            batch = [x[idx] for x in tr]
            loss_e = _member_loss(model, *batch)
            loss = loss_e.sum() + 0.01 * (model.max_logvar.sum() - model.min_logvar.sum())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += float(loss_e.detach().mean()) * idx.shape[1]
        model.eval()
        with torch.no_grad():
            v = _member_loss(model, *[x.unsqueeze(0).expand(E, *x.shape) for x in va])
        hist_tr.append(tot / n)
        hist_va.append(float(v.mean()))
        improved = ~torch.isfinite(best) | (v < best - 1e-4 * best.abs())
        if improved.any():
            state = model.state_dict()
            for key, value in state.items():
                if value.dim() >= 1 and value.shape[0] == E and key.startswith(("hidden", "out", "skip", "surv.")):
                    best_state[key][improved] = value[improved].clone()
                elif improved.all() or key in ("max_logvar", "min_logvar"):
                    best_state[key] = value.clone()
            best = torch.where(improved, v, best)
            since = 0
        else:
            since += 1
        bar.set_postfix(val_loss=f"{hist_va[-1]:.3f}")
        if since >= cfg.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    nt = val.done < 0.5
    if nt.any():   # the validation residual of delta z per dimension (control: noise is in its units)
        with torch.no_grad():
            a0, a1 = split_action(torch.from_numpy(val.a[nt]), cfg.levels)
            resid = torch.from_numpy(val.z2[nt] - val.z[nt]) - model.mean_delta(torch.from_numpy(val.z[nt]), a0, a1)
            model.resid_std.copy_(resid.std(0, correction=0))
    report = validation_report(model, val, s_va, noop=noop)
    report["epochs"] = len(hist_va)
    report["best_epoch"] = int(np.argmin(hist_va)) + 1
    report["linear_baseline/dz_r2"] = linear_baseline_r2(train, val, levels=cfg.levels)
    log.info("dynamics fitted: %d epochs, val dz NLL %.3f, R2 %.3f (ridge baseline %.3f), I %.4f", len(hist_va),
             report["ensemble/dz_nll"], report["ensemble/dz_r2"], report["linear_baseline/dz_r2"],
             report["interaction_index"])
    return model, report, {"train_loss": hist_tr, "val_loss": hist_va}


def _next_states(t: Transitions, cfg: DynamicsConfig, where: str) -> np.ndarray:
    """The real next state of every row, terminal rows included (the next-state survival head learns from the
    terminal rows' last states; Transitions.z2 holds zeros there)."""
    if t.z2_full is not None:
        return t.z2_full
    if cfg.survival_input == "next_state" and not cfg.reward == "dense" and (t.done > 0.5).any():
        raise InputError(f"{where}: train.dynamics.survival_input: next_state needs the terminal rows' next states "
                         "(Transitions.z2_full), which these transitions do not carry")
    return t.z2


# ---- validation report ------------------------------------------------------------------------------
def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y) > 0.5  # survival targets are r / r_max; AUROC of the binary outcome
    if len(y) == 0 or y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, p))


def linear_baseline_r2(train: Transitions, val: Transitions, alpha: float = 1.0,
                       levels: tuple[int, int] = (N_FLUID, N_VASO)) -> float:
    """Validation R^2 of delta z for a ridge regression on [z, onehot(a_F), onehot(a_V)]: the reference the
    ensemble should beat (a model below it is underfitted or overfitted)."""
    from sklearn.linear_model import Ridge

    def xy(t: Transitions):
        nt = t.done < 0.5
        a0, a1 = split_action(t.a, levels)
        x = np.hstack([t.z, np.eye(levels[0], dtype=np.float32)[a0], np.eye(levels[1], dtype=np.float32)[a1]])
        return x[nt], (t.z2 - t.z)[nt]

    (xt, yt), (xv, yv) = xy(train), xy(val)
    if len(xt) == 0 or len(xv) == 0:
        return float("nan")
    # one BLAS thread: the same numbers whatever OMP_NUM_THREADS the process inherited (a pool worker and a Ray
    # worker under `make test`'s 2 threads gave R^2 0.2996510 and 0.2996514 on an AMD EPYC)
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1):
        return _r2(yv, Ridge(alpha=alpha).fit(xt, yt).predict(xv))


def _r2(y: np.ndarray, yhat: np.ndarray) -> float:
    if len(y) == 0:
        return float("nan")
    ss_tot = ((y - y.mean(0)) ** 2).sum()
    # a target with (numerically) no variance, e.g. a reward never observed yet, has no R^2
    return float(1.0 - ((y - yhat) ** 2).sum() / ss_tot) if ss_tot > 1e-12 else float("nan")


@torch.no_grad()
def validation_report(model: DynamicsEnsemble, val: Transitions, surv: np.ndarray | None = None,
                      noop: tuple[int, int] | None = None) -> dict:
    """Validation error per member and for the ensemble (method.md 4.4); ``noop``: the no-op level of each
    head (0 for the clinical actions)."""
    if surv is None:
        surv = _targets(val, model.r_max, "validation", model.dense)
    z = torch.from_numpy(val.z)
    a0, a1 = split_action(val.a, model.levels)
    af, av = torch.from_numpy(a0), torch.from_numpy(a1)
    mu, lv, ld, ls = model.predict_all(z, af, av)
    ls_pred = ls   # survival as the learner queries it (next-state head: at the predicted next state)
    if model.surv_next:   # the head's own validation: at the real next states
        ls = model.surv_logits(torch.from_numpy(_next_states(val, DynamicsConfig(survival_input="next_state"),
                                                              "validation")).unsqueeze(0).expand(model.E, -1, -1))
    nonterm = val.done < 0.5
    term = ~nonterm
    y = ((torch.from_numpy(val.z2 - val.z) - model.dz_mean) / model.dz_std).numpy()
    mu_n, lv_n = mu.numpy(), lv.numpy()
    pd_, ps_ = torch.sigmoid(ld).numpy(), torch.sigmoid(ls).numpy()
    dstd, dmean = model.dz_std.numpy(), model.dz_mean.numpy()
    raw_y = val.z2 - val.z

    def block(mu_e, var_e, p_d, p_s, rows) -> dict:
        nt = rows & nonterm
        tr = rows & term
        out = {}
        if nt.any():
            nll = 0.5 * (((y[nt] - mu_e[nt]) ** 2) / var_e[nt] + np.log(var_e[nt]) + np.log(2 * np.pi))
            out["dz_nll"] = float(nll.mean())
            out["dz_r2"] = _r2(raw_y[nt], dmean + dstd * mu_e[nt])
            out["dz_rmse"] = float(np.sqrt(((raw_y[nt] - dmean - dstd * mu_e[nt]) ** 2).mean()))
        out["term_auroc"] = _auroc(val.done[rows], p_d[rows])
        out["term_brier"] = float(((p_d[rows] - val.done[rows]) ** 2).mean()) if rows.any() else float("nan")
        if model.dense:  # per-step reward: R^2 of r / r_max
            out["reward_r2"] = _r2(surv[rows], p_s[rows])
            return out
        out["surv_auroc"] = _auroc(surv[tr], p_s[tr])
        out["surv_brier"] = float(((p_s[tr] - surv[tr]) ** 2).mean()) if tr.any() else float("nan")
        return out

    every = np.ones(len(val), bool)
    rep: dict = {"n_val": len(val), "n_val_nonterminal": int(nonterm.sum())}
    for e in range(model.E):
        for k, v in block(mu_n[e], np.exp(lv_n[e]), pd_[e], ps_[e], every).items():
            rep[f"member{e}/{k}"] = v
    # ensemble: moment-matched Gaussian, mean probabilities
    mu_m = mu_n.mean(0)
    var_m = np.exp(lv_n).mean(0) + mu_n.var(0)
    ens = lambda rows: block(mu_m, var_m, pd_.mean(0), ps_.mean(0), rows)  # noqa: E731
    for k, v in ens(every).items():
        rep[f"ensemble/{k}"] = v
    if model.surv_next and not model.dense:   # survival read at the predicted next state z + mu_e
        p_pred = torch.sigmoid(ls_pred).mean(0).numpy()
        rep["ensemble/surv_auroc_at_predicted"] = _auroc(surv[term], p_pred[term])
    # rows whose other sub-action is no-op: real draws from the projected MDP M_k
    noop = (0, 0) if noop is None else noop
    for name, rows in (("F", a1 == noop[1]), ("V", a0 == noop[0])):
        rep[f"noop_other_{name}/n"] = int(rows.sum())
        for k, v in ens(rows).items():
            rep[f"noop_other_{name}/{k}"] = v
    # interaction index I = E || mu(aF,aV) - mu(aF,0) - mu(0,aV) + mu(0,0) || over logged rows (raw units)
    zero0, zero1 = torch.full_like(af, noop[0]), torch.full_like(av, noop[1])
    m_fv = model.mean_delta(z, af, av)
    m_f0 = model.mean_delta(z, af, zero1)
    m_0v = model.mean_delta(z, zero0, av)
    m_00 = model.mean_delta(z, zero0, zero1)
    inter = (m_fv - m_f0 - m_0v + m_00).norm(dim=1)
    rep["interaction_index"] = float(inter.mean())
    rep["interaction_index_rel"] = float(inter.mean() / (m_fv - m_00).norm(dim=1).mean().clamp_min(1e-12))
    return rep
