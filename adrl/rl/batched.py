"""Many runs of one architecture stepped as one vectorised model (issue 13).

Runs that share an algorithm, a mixer and every option (they differ in seed, threshold and data order) keep their
parameters stacked along a leading run axis R. One step: each run's batch (R, B, ...), each run's model batch (AD-BCQ's
``extra``, drawn per run with its own generator and dynamics ensemble, outside the vectorised part), the learner's own
``losses`` evaluated for all runs at once by ``torch.func.vmap`` over ``functional_call`` (the single-run code, not a
copy of it), one backward pass of the summed losses (run r's loss depends on run r's parameters only, so each run gets
its own gradient), one fused Adam step over the stacked tensors and one Polyak/hard target update. Adam, weight decay
and Polyak are elementwise, so the stacked step is the per-run steps side by side.

What is equal to single-run training: initial parameters (each run's learner is built exactly as alone), the batch
indices, the model draws (same generator stream), the threshold (a per-run buffer). What is not bitwise equal: the
matrix products run batched (bmm kernels instead of mm, and AD-BCQ's synthetic rows padded to the longest run), so
sums are accumulated in a different order; differences start at float32 rounding (~1e-7 relative) and grow slowly with
training (tests/rl/test_batched.py states the tolerances), and a greedy action may flip where two allowed actions'
values are within that rounding.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, vmap

from .nets import Learner, update_target


class _Losses(nn.Module):
    """The learner's ``losses`` as a module over (net, target), so that functional_call can swap in one run's tensors."""

    def __init__(self, learner: Learner):
        super().__init__()
        self.net, self.target = learner.net, learner.target
        self.fn = learner.losses

    def forward(self, batch, extra, diag: bool):
        return self.fn(self.net, self.target, *batch, *extra, diag=diag)


def _pad_rows(xs: list[torch.Tensor]) -> torch.Tensor:
    """Stack tensors of different lengths (n_r, ...) as (R, max n_r, ...), zero-padded (the padding is never read)."""
    n = max(int(x.shape[0]) for x in xs)
    out = xs[0].new_zeros((len(xs), n) + tuple(xs[0].shape[1:]))
    for i, x in enumerate(xs):
        out[i, :x.shape[0]] = x
    return out


class BatchedLearners:
    """R learners of one architecture (same class and config up to tau) stepped together."""

    def __init__(self, learners: list[Learner]):
        first = learners[0]
        if any(type(x) is not type(first) for x in learners):
            raise ValueError("a batched group mixes learner types")
        self.learners, self.cfg, self.R = learners, first.cfg, len(learners)
        self.diag_every = first.diag_every
        self.mod = _Losses(first)
        names = [k for k, _ in first.net.named_parameters()]
        self.names = names
        with torch.no_grad():
            self.params = {k: torch.stack([x.net.get_parameter(k).detach() for x in learners]).requires_grad_(True)
                           for k in names}
            self.tparams = {k: torch.stack([x.target.get_parameter(k).detach() for x in learners]) for k in names}
            bufs = [k for k, _ in first.net.named_buffers()]
            self.buffers = {f"{pre}.{k}": torch.stack([x.net.get_buffer(k) for x in learners])
                            for k in bufs for pre in ("net", "target")}
        self.opt = torch.optim.Adam(list(self.params.values()), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay,
                                    fused=True)
        self.n_updates = 0
        self._call = {diag: vmap(self._one(diag)) for diag in (False, True)}

    def _one(self, diag: bool):
        def f(params, tparams, buffers, batch, extra):
            tensors = {**{"net." + k: v for k, v in params.items()}, **{"target." + k: v for k, v in tparams.items()},
                       **buffers}
            return functional_call(self.mod, tensors, (batch, extra, diag))
        return f

    def extra(self, z, a, r, z2, done) -> tuple:
        """Each run's model batch (drawn as in its single-run training), stacked; variable-length rows padded."""
        per_run = [x.extra(z[i], a[i], r[i], z2[i], done[i]) for i, x in enumerate(self.learners)]
        if not per_run[0]:
            return ()
        return tuple(_pad_rows([e[j] for e in per_run]) if j == 0 else torch.stack([e[j] for e in per_run])
                     for j in range(len(per_run[0])))

    def update(self, z, a, r, z2, done) -> dict[str, torch.Tensor]:
        """One step of every run; inputs (R, B, ...); stats {name: (R,)}."""
        extra = self.extra(z, a, r, z2, done)
        diag = self.n_updates % self.diag_every == 0
        loss, stats = self._call[diag](self.params, self.tparams, self.buffers, (z, a, r, z2, done), extra)
        self.opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        self.opt.step()
        self.n_updates += 1
        update_target(list(self.tparams.values()), list(self.params.values()), self.cfg, self.n_updates)
        return stats

    def snapshot(self) -> list[dict[str, torch.Tensor]]:
        """Each run's online parameters (its state dict) at this step."""
        with torch.no_grad():
            return [{k: self.params[k][i].detach().to("cpu", copy=True) for k in self.names} for i in range(self.R)]
