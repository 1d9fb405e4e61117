"""Fitted Q evaluation (FQE; Le, Voloshin & Yue 2019) of many fixed greedy policies at once.

FQE learns Q^pi of a *given* policy pi from logged transitions by regression on
y = r / R_max + gamma (1 - done) Q_target(z', pi(z')), with a periodically hard-copied target network. Here K
policies (the candidate checkpoints) are fitted together as one network (:class:`BatchedQ`): a shared trunk
and one linear 25-action head per policy, all fed the same minibatch. Per step only the logged action's column of
each head is computed (the rows grouped by action: B h K multiply-adds, not 25 B h K), and the target network's
bootstrap values of every transition are tabulated once per target copy (they change only there).

Settings are those that make value learning converge here (issue "Learners that learn values"): rewards
scaled to [0, 1] by R_max (values reported on the 0-100 scale), MSE loss, Adam, a hard target copy every
``target_every`` steps (one FQE iteration), and enough iterations to propagate a terminal reward over the
longest episode. ``gamma`` defaults to 1: the estimand is the undiscounted survival rate, the same quantity
as WIS and the simulator's truth.

Convergence is checked, never assumed (:class:`FQEResult`): at every target copy the mean value of the
episode starts, V(z_0) = Q(z_0, pi(z_0)), and the RMS TD error on a fixed sample of transitions are recorded;
a policy's fit has converged when its start value moved by at most ``tol`` points over the last
``trend_window`` copies, its mean TD error on the monitor transitions (the regression's bias against its own
targets: about 0 at a fixed point, large for a fit that has not learned) is within ``tol`` points, and
everything is finite.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..actions import N_ACTIONS
from ..errors import InputError
from ..progress import Progress
from .data import Transitions
from .nets import mlp

log = logging.getLogger("adrl.rl")


@dataclass(frozen=True)
class FQEConfig:
    steps: int = 3000           # gradient steps
    batch_size: int = 1024
    lr: float = 1e-3
    hidden: int = 128
    layers: int = 2             # trunk layers (the heads are linear)
    target_every: int = 100     # hard target copy (one FQE iteration) every this many steps
    gamma: float = 1.0
    r_max: float = 100.0        # rewards are divided by this during fitting; values are reported times it
    clip_values: bool = True    # bootstrap values clipped to [0, R_max]: a terminal-only 0 / R_max reward bounds
                                # every return, and unclipped fits extrapolate past it for rarely logged actions
    tol: float = 1.0            # converged: start value moved <= tol points over the last trend_window copies
    trend_window: int = 5
    monitor_rows: int = 4096    # transitions of the TD-error monitor
    seed: int = 0


class BatchedQ(nn.Module):
    """Q of K policies: one shared trunk z -> h (ReLU MLP, :func:`adrl.rl.nets.mlp`) and a linear head of 25
    outputs per policy. The trunk learns features from all K regressions at once; all K heads are one
    (B, h) x (h, 25 K) matrix product (measured 5x faster on CPU than gathering each row's head column)."""

    def __init__(self, K: int, d: int, hidden: int, layers: int):
        super().__init__()
        self.K = K
        self.trunk = nn.Sequential(*mlp(d, hidden, hidden, layers - 1), nn.ReLU())
        bound = 1.0 / math.sqrt(hidden)
        self.head_w = nn.Parameter(torch.empty(K, N_ACTIONS, hidden).uniform_(-bound, bound))
        self.head_b = nn.Parameter(torch.zeros(K, N_ACTIONS))
        self.register_buffer("z_mean", torch.zeros(d))
        self.register_buffer("z_std", torch.ones(d))

    def features(self, z: torch.Tensor) -> torch.Tensor:
        return self.trunk((z - self.z_mean) / self.z_std)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, d) states -> (K, B, 25) Q values (scaled units)."""
        return torch.einsum("bh,kah->kba", self.features(z), self.head_w) + self.head_b[:, None, :]

    def pick(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(K, B) Q(z_b, actions[k, b]) for (K, B) or (B,) actions, without the other 24 columns."""
        if actions.dim() == 1:
            actions = actions.expand(self.K, -1)
        f = self.features(z)
        q = (f @ self.head_w.reshape(self.K * N_ACTIONS, -1).T).view(len(f), self.K, N_ACTIONS) + self.head_b[None]
        return q.gather(2, actions.T[..., None]).squeeze(2).T

    def pick_shared(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(K, B) Q(z_b, actions[b]) for actions shared by all K policies (the logged ones): the rows grouped by
        action, one (rows, h) x (h, K) product per action, B h K multiply-adds instead of the 25 B h K of
        :meth:`pick` (the same values up to float rounding; tests/rl/test_fqe.py)."""
        f = self.features(z)
        order = torch.argsort(actions, stable=True)
        counts = torch.bincount(actions, minlength=N_ACTIONS).tolist()
        heads = self.head_w.transpose(0, 1).unbind(0)  # 25 x (K, h); one gradient tensor for all, not 25
        parts = [fa @ heads[a_].T for a_, fa in enumerate(f[order].split(counts)) if len(fa)]
        q = torch.cat(parts)[torch.argsort(order)]  # (B, K), back in the batch's order
        return q.T + self.head_b[:, actions]

    @torch.no_grad()
    def pick_all(self, z: torch.Tensor, actions: torch.Tensor, row_chunk: int = 4096) -> torch.Tensor:
        """(K, N) Q(z_i, actions[k, i]) on many rows, in row chunks (no gradient)."""
        out = torch.empty(self.K, len(z))
        for r0 in range(0, len(z), row_chunk):
            out[:, r0:r0 + row_chunk] = self.pick(z[r0:r0 + row_chunk], actions[:, r0:r0 + row_chunk])
        return out


@dataclass
class FQEResult:
    """A fitted batched FQE model and its convergence record (values on the 0-100 scale)."""

    net: BatchedQ
    cfg: FQEConfig
    history_steps: list[int]
    history_value: np.ndarray    # (H, K) mean start value after each target copy
    history_td_rmse: np.ndarray  # (H, K) RMS TD error on the monitor transitions
    history_td_mean: np.ndarray  # (H, K) mean TD error (Q - target) on the monitor transitions
    diagnostics: dict = field(default_factory=dict)

    @property
    def K(self) -> int:
        return self.net.K

    @torch.no_grad()
    def q_values(self, z, row_chunk: int = 8192) -> np.ndarray:
        """(K, N, 25) Q on the 0-100 scale."""
        zt = torch.as_tensor(np.asarray(z, np.float32))
        out = np.empty((self.K, len(zt), N_ACTIONS), np.float32)
        for r0 in range(0, len(zt), row_chunk):
            out[:, r0:r0 + row_chunk] = self.net(zt[r0:r0 + row_chunk]).numpy() * self.cfg.r_max
        return out

    def convergence(self) -> dict[str, np.ndarray]:
        """Per policy: converged (bool), drift (points over the last trend_window copies), final value,
        final RMS and mean TD error (points)."""
        v = self.history_value
        w = min(self.cfg.trend_window, len(v))
        tail = v[-w:]
        drift = np.max(np.abs(tail - tail[-1]), axis=0) if len(tail) else np.full(self.K, np.inf)
        td = self.history_td_rmse[-1] if len(self.history_td_rmse) else np.full(self.K, np.nan)
        bias = self.history_td_mean[-1] if len(self.history_td_mean) else np.full(self.K, np.nan)
        finite = np.isfinite(tail).all(axis=0) & np.isfinite(td) & np.isfinite(bias)
        enough = len(v) >= self.cfg.trend_window
        with np.errstate(invalid="ignore"):
            ok = finite & (drift <= self.cfg.tol) & (np.abs(bias) <= self.cfg.tol) & enough
        return {"converged": ok, "drift": drift, "value": v[-1] if len(v) else np.full(self.K, np.nan),
                "td_rmse": td, "td_mean": bias}


def fit_fqe(train: Transitions, next_actions, start_z, start_actions, cfg: FQEConfig = FQEConfig(),
            progress: bool | None = None) -> FQEResult:
    """Fit FQE for K greedy policies on the transitions ``train``.

    ``next_actions``: (K, n) each policy's action at every transition's next state z2 (ignored where done);
    ``start_z`` (n0, d) / ``start_actions`` (K, n0): episode-start states and the policies' actions there,
    for the convergence record.
    """
    na = np.asarray(next_actions)
    if na.ndim == 1:
        na = na[None]
    n, d = len(train), train.dim
    K = na.shape[0]
    if na.shape != (K, n):
        raise InputError(f"FQE: next-state actions of shape {np.asarray(next_actions).shape}; expected "
                         f"(policies, {n})")
    sa = np.asarray(start_actions).reshape(K, -1)
    if len(start_z) == 0 or sa.shape[1] != len(start_z):
        raise InputError("FQE: start states and the policies' start actions disagree in length (or are empty)")
    for name, arr in (("next-state", na), ("start", sa)):
        if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= N_ACTIONS:
            raise InputError(f"FQE: {name} actions must be integers in [0, {N_ACTIONS})")
    if cfg.steps < cfg.target_every:
        raise InputError(f"FQE: steps ({cfg.steps}) < target_every ({cfg.target_every}): not one FQE iteration")
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = BatchedQ(K, d, cfg.hidden, cfg.layers)
    z = torch.from_numpy(np.ascontiguousarray(train.z, np.float32))
    z2 = torch.from_numpy(np.ascontiguousarray(train.z2, np.float32))
    a = torch.from_numpy(train.a.astype(np.int64))
    r = torch.from_numpy((train.r / cfg.r_max).astype(np.float32))
    cont = torch.from_numpy((cfg.gamma * (1.0 - train.done)).astype(np.float32))
    nat = torch.from_numpy(na.astype(np.int64))
    net.z_mean.copy_(z.mean(0))
    net.z_std.copy_(z.std(0).clamp_min(1e-6))
    target = BatchedQ(K, d, cfg.hidden, cfg.layers)
    target.load_state_dict(net.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    # constant learning rate for the first half, then linear decay to 5%: the late iterations average out
    # the regression noise of 0/1 outcomes instead of chasing it
    half = cfg.steps // 2
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 1.0 if s < half else max(0.05, 1.0 - 0.95 * (s - half) / max(1, cfg.steps - half)))
    mon = torch.randperm(n, generator=gen)[:cfg.monitor_rows]
    sz = torch.from_numpy(np.ascontiguousarray(start_z, np.float32))
    sat = torch.from_numpy(sa.astype(np.int64))

    def next_values(tnet):
        """(K, n) each policy's bootstrap value Q_target(z2, pi(z2)) at every transition: the target network
        changes only at a copy, so its values are computed once per copy, not per minibatch."""
        v2 = tnet.pick_all(z2, nat)
        return v2.clamp(0.0, 1.0) if cfg.clip_values else v2

    def targets(idx, v2):
        return r[idx] + cont[idx] * v2[:, idx]

    v2_target = next_values(target)
    steps_h, vals, tds, tdm = [], [], [], []
    for step in Progress(range(1, cfg.steps + 1), desc=f"evaluate: FQE of {K} policies", unit="steps",
                         logger=log, enabled=None if progress is None else bool(progress)):
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        y = targets(idx, v2_target)
        q = net.pick_shared(z[idx], a[idx])
        loss = (q - y).pow(2).mean(1).sum()  # each policy's own MSE; summing keeps their gradients apart
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % cfg.target_every == 0:
            target.load_state_dict(net.state_dict())
            v2_target = next_values(target)
            with torch.no_grad():  # the TD error of the new copy against its own targets
                v0 = net.pick(sz, sat).mean(1) * cfg.r_max
                res_td = net.pick(z[mon], a[mon]) - targets(mon, v2_target)
            steps_h.append(step)
            vals.append(v0.numpy())
            tds.append((res_td.pow(2).mean(1).sqrt() * cfg.r_max).numpy())
            tdm.append((res_td.mean(1) * cfg.r_max).numpy())
    res = FQEResult(net.eval(), cfg, steps_h, np.array(vals).reshape(-1, K), np.array(tds).reshape(-1, K),
                    np.array(tdm).reshape(-1, K))
    conv = res.convergence()
    res.diagnostics = {k: v.tolist() for k, v in conv.items()}
    if not conv["converged"].all():
        log.warning("FQE: %d of %d policies did not converge (start value moved, or mean TD error, > %.2f points "
                    "over the last %d target copies, or non-finite)", int((~conv["converged"]).sum()), K, cfg.tol,
                    cfg.trend_window)
    return res


def fqe_checkpoints(candidates, runs, greedy_fn, train: Transitions, z: dict, cfg: FQEConfig = FQEConfig(),
                    progress: bool | None = None) -> dict:
    """FQE of the candidate checkpoints ``candidates`` (rows with run_id, step), fitted on ``train``.

    ``runs``: records with run_id and run_dir; ``greedy_fn(run_dir, z, only_steps=None) -> (steps, (C, N)
    actions)`` (the contract of :func:`adrl.ope.workflow.score_runs`, e.g. :func:`adrl.rl.policy.greedy_matrix`),
    called once per run, for the run's candidate steps, on all the states needed at once. ``z``:
    {name: (N, d)} states to score; "start" (episode-start states) feeds the convergence record.
    Returns {"greedy": {name: (K, N)}, "q": {name: (K, N, 25)} (0-100 scale), "convergence": {converged,
    drift, value, td_rmse: (K,)}, "history": {steps, value (H, K), td_rmse (H, K)}, "config": cfg}.
    """
    from dataclasses import asdict

    names = list(z)
    blocks = [train.z2, *[np.asarray(z[n], np.float32) for n in names]]
    bounds = np.cumsum([0, *[len(b) for b in blocks]])
    allz = np.concatenate(blocks).astype(np.float32)
    by_id = {str(getattr(r, "run_id", None) or r["run_id"]): r for r in runs}
    K = len(candidates)
    acts = np.empty((K, len(allz)), np.int64)
    rid = candidates["run_id"].astype(str).to_numpy()
    steps_c = candidates["step"].to_numpy(np.int64)
    for run_id in dict.fromkeys(rid):
        if run_id not in by_id:
            raise InputError(f"FQE: no training run {run_id!r}")
        r = by_id[run_id]
        run_dir = getattr(r, "run_dir", None) or r["run_dir"]
        steps, a = greedy_fn(run_dir, allz, only_steps=steps_c[rid == run_id])  # only the FQE'd checkpoints
        steps = np.asarray(steps)
        for k in np.flatnonzero(rid == run_id):
            hit = np.flatnonzero(steps == steps_c[k])
            if len(hit) == 0:
                raise InputError(f"FQE: run {run_id} has no checkpoint at step {steps_c[k]}")
            acts[k] = a[hit[0]]
    part = {n: acts[:, bounds[i + 1]:bounds[i + 2]] for i, n in enumerate(names)}
    start = part.get("start")
    if start is None:
        raise InputError("FQE: z needs 'start' (episode-start states) for the convergence record")
    res = fit_fqe(train, acts[:, :bounds[1]], z["start"], start, cfg, progress=progress)
    conv = res.convergence()
    return {"greedy": part, "q": {n: res.q_values(z[n]) for n in names if n != "start"},
            "convergence": conv, "history": {"steps": res.history_steps, "value": res.history_value,
                                             "td_rmse": res.history_td_rmse, "td_mean": res.history_td_mean},
            "config": asdict(cfg)}
