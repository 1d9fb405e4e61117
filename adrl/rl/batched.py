"""Many runs of one architecture stepped as one vectorised model (issue 13).

Runs that share an algorithm, a mixer and every option (they differ in seed, threshold and data order) keep their
parameters stacked along a leading run axis R. One step: each run's batch (R, B, ...); the model batch (AD-BCQ's
``extra``, drawn with the run's own generator and dynamics ensemble, outside the vectorised part); the learner's own
``imitation`` for each imitation network (below) and its own ``losses`` for all runs at once, both by ``torch.func.vmap``
over ``functional_call`` (the single-run code, not a copy of it); one backward pass of the summed losses (run r's loss
depends on run r's parameters only, so each run gets its own gradient); one fused Adam step over the stacked tensors
and one Polyak/hard target update. Adam, weight decay and Polyak are elementwise, so the stacked step is the per-run
steps side by side.

One imitation network for runs that differ only in the threshold. In every learner the imitation network's update
depends on its initial parameters, the batch (and AD-BCQ's model batch, whose next states it filters) and nothing else:
the thresholds act only on its output (the filter), its logits at the next states are computed without gradient (so
the TD losses send it no gradient), no RNG is drawn between the networks' initialisations that depends on tau, the
optimiser (Adam with coupled weight decay) is elementwise and no gradient is clipped. Runs with the same seed, config
up to the thresholds and model therefore train bitwise the same imitation network when alone: here they train one
(U <= R copies; a run's checkpoints hold its group's copy). Its loss enters the backward pass once; each run's
``losses`` gets its loss detached (for the record) and its logits. The model batch is drawn once per imitation group
too (same batch, generator stream and model: the same draws). Single-run training is unchanged by this (byte-identical
checkpoints and histories before and after the split into ``imitation`` and ``losses``).

What is equal to single-run training: initial parameters (each run's learner is built exactly as alone), the batch
indices, the model draws (same generator stream), the threshold (a per-run buffer). What is not bitwise equal: the
matrix products run batched (bmm kernels instead of mm, and AD-BCQ's synthetic rows padded to the longest run), so
sums are accumulated in a different order; differences start at float32 rounding (~1e-7 relative) and grow slowly with
training (tests/rl/test_batched.py states the tolerances), and a greedy action may flip where two allowed actions'
values are within that rounding.
"""
from __future__ import annotations

import dataclasses

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

    def forward(self, batch, extra, imit, diag: bool):
        return self.fn(self.net, self.target, *batch, *extra, diag=diag, imit=imit)


class _Imitation(nn.Module):
    """The learner's ``imitation`` (its imitation network's loss and logits) as a module over net.imit."""

    def __init__(self, learner: Learner):
        super().__init__()
        self.net = learner.net
        self.fn = learner.imitation

    def forward(self, batch, extra):
        z, a, _, z2, _ = batch
        return self.fn(self.net, z, a, z2, *extra)


def _pad_rows(xs: list[torch.Tensor]) -> torch.Tensor:
    """Stack tensors of different lengths (n_r, ...) as (R, max n_r, ...), zero-padded (the padding is never read)."""
    n = max(int(x.shape[0]) for x in xs)
    out = xs[0].new_zeros((len(xs), n) + tuple(xs[0].shape[1:]))
    for i, x in enumerate(xs):
        out[i, :x.shape[0]] = x
    return out


IMIT = "imit."   # the imitation network's parameters (every learner's net.imit)


def _share_key(x: Learner) -> tuple:
    """What a run's imitation update depends on besides its initial parameters: its seed (batch indices, model
    draws), its model (AD-BCQ's dynamics ensemble) and its config up to the thresholds."""
    cfg = dataclasses.replace(x.cfg, tau=0.0, **({"tau_per_head": None} if hasattr(x.cfg, "tau_per_head") else {}))
    return x.seed, id(getattr(x, "dynamics", None)), cfg


class BatchedLearners:
    """R learners of one architecture (same class and config up to tau) stepped together; runs that differ only in
    tau train one imitation network (``share_imitation``; U <= R of them)."""

    def __init__(self, learners: list[Learner], share_imitation: bool = True):
        first = learners[0]
        if any(type(x) is not type(first) for x in learners):
            raise ValueError("a batched group mixes learner types")
        self.learners, self.cfg, self.R = learners, first.cfg, len(learners)
        self.diag_every = first.diag_every
        self.mod, self.imod = _Losses(first), _Imitation(first)
        self.names = [k for k, _ in first.net.named_parameters()]
        inames = [k for k in self.names if k.startswith(IMIT)]
        # imitation groups: u(r) = the first run with the same key and bitwise the same initial imitation network
        reps: list[int] = []
        of: list[int] = []
        for i, x in enumerate(learners):
            u = next((j for j, r in enumerate(reps) if share_imitation and _share_key(learners[r]) == _share_key(x)
                      and all(torch.equal(learners[r].net.get_parameter(k), x.net.get_parameter(k)) for k in inames)),
                     None)
            if u is None:
                u = len(reps)
                reps.append(i)
            of.append(u)
        self.U, self.reps, self.imit_of = len(reps), reps, of
        dev = next(first.net.parameters()).device
        self._reps, self._of = torch.tensor(reps, device=dev), torch.tensor(of, device=dev)
        self._rep_of = self._reps[self._of]   # (R,): the run whose batch and model draws stand for run r's
        self.qnames = [k for k in self.names if not k.startswith(IMIT)]
        self.inames = inames
        # the linear layers' weights are stacked transposed, (R, in, out): each run's layer then multiplies by its
        # stored matrix as it lies, and the gradient arrives in the stored layout, where nn.Linear's (out, in) had cost
        # a transposed copy of every weight's gradient per update (bitwise the same parameters; the update scan's BCQ
        # group of 2 seeds x 8 thresholds went from 787 to 874 run-steps per CPU-second: benchmarks/results/sweep.md)
        self.transposed = {k for k in self.names if k.endswith(".weight")
                           and isinstance(first.net.get_submodule(k.rsplit(".", 1)[0]), nn.Linear)}
        # under bfloat16 autocast the linear layers' weights and biases are cast once per update, outside vmap
        # (_cast16): vmapped layers neither hit autocast's cache of cast weights (each use cast the weight again) nor
        # add a float32 bias (which made each layer's output float32 and the next layer cast its input again)
        self.lin16 = self.transposed | ({k.rsplit(".", 1)[0] + ".bias" for k in self.transposed} & set(self.names))

        def stack(ps: list[torch.Tensor], k: str) -> torch.Tensor:
            return torch.stack([q.detach().t() if k in self.transposed else q.detach() for q in ps])
        with torch.no_grad():
            self.params = {k: stack([x.net.get_parameter(k) for x in learners], k).requires_grad_(True)
                           for k in self.qnames}
            self.iparams = {k: stack([learners[r].net.get_parameter(k) for r in reps], k).requires_grad_(True)
                            for k in inames}
            # the target copies of the Q part (no learner reads a target imitation network)
            self.tparams = {k: stack([x.target.get_parameter(k) for x in learners], k) for k in self.qnames}
            bufs = [k for k, _ in first.net.named_buffers()]
            self.buffers = {f"{pre}.{k}": torch.stack([x.net.get_buffer(k) for x in learners])
                            for k in bufs for pre in ("net", "target")}
        self.opt = torch.optim.Adam([*self.params.values(), *self.iparams.values()], lr=self.cfg.lr,
                                    weight_decay=self.cfg.weight_decay, fused=True)
        self.n_updates = 0
        self._call = {diag: vmap(self._one(diag)) for diag in (False, True)}
        self._imit = vmap(self._imitation)

    def _as_module(self, pre: str, params: dict) -> dict:
        """One run's tensors (inside vmap) under the module's names, the linear weights as (out, in) views."""
        return {pre + k: v.t() if k in self.transposed else v for k, v in params.items()}

    def _one(self, diag: bool):
        def f(params, tparams, buffers, batch, extra, imit):
            tensors = {**self._as_module("net.", params), **self._as_module("target.", tparams), **buffers}
            return functional_call(self.mod, tensors, (batch, extra, imit, diag))
        return f

    def _imitation(self, iparams, batch, extra):
        return functional_call(self.imod, self._as_module("net.", iparams), (batch, extra))

    def extra(self, z, a, r, z2, done) -> tuple:
        """The model batch (drawn as in single-run training) of each imitation group's first run, stacked (U, ...);
        variable-length rows padded. The runs of a group have the same batch, generator stream and model, so the
        same draws."""
        per_run = [self.learners[i].extra(z[u], a[u], r[u], z2[u], done[u]) for u, i in enumerate(self.reps)]
        if not per_run[0]:
            return ()
        return tuple(_pad_rows([e[j] for e in per_run]) if j == 0 else torch.stack([e[j] for e in per_run])
                     for j in range(len(per_run[0])))

    def update(self, z, a, r, z2, done) -> dict[str, torch.Tensor]:
        """One step of every run; inputs (R, B, ...); stats {name: (R,)}."""
        if self.U < self.R and not (torch.equal(a[self._rep_of], a) and torch.equal(z[self._rep_of], z)):
            raise ValueError("runs that share an imitation network were given different batches (their seeds "
                             "must give the same batch indices)")
        batch_u = tuple(x[self._reps] for x in (z, a, r, z2, done))
        extra_u = self.extra(*batch_u)
        params, tparams, iparams = self.params, self.tparams, self.iparams
        if torch.is_autocast_enabled(z.device.type) and torch.get_autocast_dtype(z.device.type) == torch.bfloat16:
            params, tparams, iparams = (self._cast16(d) for d in (params, tparams, iparams))
        loss_bc, logits_n = self._imit(iparams, batch_u, extra_u)          # (U,), (U, N', out)
        extra = tuple(e[self._of] for e in extra_u)
        imit = (loss_bc.detach()[self._of], logits_n[self._of])               # each run's, its gradient taken once
        diag = self.n_updates % self.diag_every == 0
        loss, stats = self._call[diag](params, tparams, self.buffers, (z, a, r, z2, done), extra, imit)
        self.opt.zero_grad(set_to_none=True)
        (loss.sum() + loss_bc.sum()).backward()
        self.opt.step()
        self.n_updates += 1
        update_target(list(self.tparams.values()), list(self.params.values()), self.cfg, self.n_updates)
        return stats

    def _cast16(self, d: dict) -> dict:
        """The linear layers' tensors as bfloat16 (a cast autograd carries back to the float32 parameters), the rest
        as they are: the layers then run in bfloat16 from input to output, as nn.Linear does under autocast alone."""
        return {k: v.to(torch.bfloat16) if k in self.lin16 else v for k, v in d.items()}

    def snapshot(self) -> list[dict[str, torch.Tensor]]:
        """Each run's online parameters (its state dict) at this step."""
        def one(k: str, i: int) -> torch.Tensor:
            v = (self.iparams[k][self.imit_of[i]] if k.startswith(IMIT) else self.params[k][i]).detach()
            return (v.t() if k in self.transposed else v).to("cpu", memory_format=torch.contiguous_format, copy=True)
        with torch.no_grad():
            return [{k: one(k, i) for k in self.names} for i in range(self.R)]
