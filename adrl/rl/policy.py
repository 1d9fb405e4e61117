"""The trained policy as a first-class object, and fast access to every checkpoint of a sweep.

A run directory (``models/train/runs/<run_id>/``) holds ``run.json`` (what was trained, the network
config, the checkpoint steps) and ``checkpoints.pt`` (all checkpoints' parameters stacked along a
leading axis of length C). :class:`Policy` is one checkpoint of one run; :func:`greedy_matrix` computes
the greedy actions of all C checkpoints from one read of the checkpoint file.

Greedy action (method.md 4.7): argmax over the allowed set of the (mixed) Q over the 25 joint actions,
ties to the lowest flat index. Action probabilities (method.md 5.2):
pi_e = (1 - eps) onehot(greedy) + eps * behaviour_probs.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..actions import N_ACTIONS
from ..errors import InputError
from .adbcq import ADBCQConfig, ADBCQNet
from .bcq import BCQConfig, BCQNet
from .factored_bcq import FactoredBCQConfig, FactoredBCQNet
from .nets import masked_argmax

RUN_FILE = "run.json"
CKPT_FILE = "checkpoints.pt"
MANIFEST = "runs.json"

NETS = {
    "bcq": (BCQNet, BCQConfig),
    "factored_bcq": (FactoredBCQNet, FactoredBCQConfig),
    "adbcq": (ADBCQNet, ADBCQConfig),
}


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    algorithm: str
    mixer: str | None
    augment: bool | None
    tau: float
    seed: int
    steps: list[int]                 # checkpoint steps
    run_dir: Path
    extra: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["run_dir"] = str(self.run_dir)
        return d


def build_net(algorithm: str, d: int, config: dict) -> nn.Module:
    if algorithm not in NETS:
        raise InputError(f"unknown algorithm {algorithm!r}; expected one of {sorted(NETS)}")
    net_cls, cfg_cls = NETS[algorithm]
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten; leave the caller's RNG alone
        return net_cls(d, cfg_cls(**config))


def _read_run(run_dir: Path) -> dict:
    f = Path(run_dir) / RUN_FILE
    if not f.exists():
        raise InputError(f"{run_dir}: not a training run directory (no {RUN_FILE})")
    return json.loads(f.read_text())


def load_checkpoints(run_dir: str | Path) -> tuple[dict, np.ndarray, dict[str, torch.Tensor]]:
    """(run.json record, steps (C,), stacked parameters {name: (C, ...) float32})."""
    run_dir = Path(run_dir)
    rec = _read_run(run_dir)
    f = run_dir / CKPT_FILE
    if not f.exists():
        raise InputError(f"{run_dir}: no {CKPT_FILE}")
    blob = torch.load(f, map_location="cpu", weights_only=True)
    params = {k: v.float() for k, v in blob["params"].items()}
    return rec, blob["steps"].numpy().astype(np.int64), params


def _as_tensor(z) -> torch.Tensor:
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2:
        raise InputError(f"states must be a 2-D array (N, d), got shape {z.shape}")
    return torch.from_numpy(np.ascontiguousarray(z))


class Policy:
    """One checkpoint of a trained run: greedy actions, Q-values, allowed sets, action probabilities."""

    def __init__(self, net: nn.Module, record: dict | None = None, step: int | None = None):
        self.net = net.eval()
        self.record = record or {}
        self.step = step
        self.d = int(self.record.get("d", 0)) or None

    @classmethod
    def load(cls, path: str | Path, step: int | None = None) -> "Policy":
        """Load a run directory (or its checkpoints.pt); ``step``: a checkpoint step, default the last."""
        path = Path(path)
        run_dir = path.parent if path.name == CKPT_FILE else path
        rec, steps, params = load_checkpoints(run_dir)
        if step is None:
            i = len(steps) - 1
        else:
            hits = np.flatnonzero(steps == step)
            if len(hits) == 0:
                raise InputError(f"{run_dir}: no checkpoint at step {step}; have {steps.tolist()[:5]}..."
                                 f"{steps.tolist()[-3:]}")
            i = int(hits[0])
        net = build_net(rec["algorithm"], rec["d"], rec["config"])
        net.load_state_dict({k: v[i] for k, v in params.items()})
        return cls(net, rec, int(steps[i]))

    def save(self, run_dir: str | Path) -> Path:
        """Write this one checkpoint as a run directory that :meth:`load` reads (e.g. to export a selected
        policy, or to wrap it as an MLflow pyfunc model in the stage that selects it)."""
        from ..io import atomic_path

        rec = {**self.record, "steps": [self.step if self.step is not None else 0]}
        rec.pop("history", None)
        run_dir = Path(run_dir)
        with atomic_path(run_dir) as tmp:
            tmp.mkdir()
            torch.save({"steps": torch.tensor(rec["steps"], dtype=torch.int64),
                        "params": {k: v.detach()[None].clone() for k, v in self.net.state_dict().items()}},
                       tmp / CKPT_FILE)
            (tmp / RUN_FILE).write_text(json.dumps(rec, indent=1) + "\n")
        return run_dir

    @property
    def algorithm(self) -> str | None:
        return self.record.get("algorithm")

    def _check(self, z) -> torch.Tensor:
        t = _as_tensor(z)
        if self.d is not None and t.shape[1] != self.d:
            raise InputError(f"states have {t.shape[1]} columns, the policy was trained on d={self.d}")
        bad = ~torch.isfinite(t)
        if bad.any():   # a NaN state would otherwise give a confident argmax (action 0, "no treatment")
            r, c = (int(i) for i in bad.nonzero()[0])
            raise InputError(f"states: row {r}, column z_{c} is not finite ({int(bad.any(dim=1).sum())} row(s) "
                             "with NaN or infinite values); a policy is applied to finite states only")
        return t

    @torch.no_grad()
    def _forward(self, z) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(self._check(z))

    def q_values(self, z) -> np.ndarray:
        """(N, 25) Q over joint actions (the mixed Q for AD-BCQ), before masking."""
        return self._forward(z)[0].numpy()

    def q_and_mask(self, z) -> tuple[np.ndarray, np.ndarray]:
        """((N, 25) Q before masking, (N, 25) bool allowed set) from one forward pass."""
        q, m = self._forward(z)
        return q.numpy(), m.numpy().astype(bool)

    def allowed_mask(self, z) -> np.ndarray:
        """(N, 25) bool: the BCQ-allowed joint actions."""
        return self._forward(z)[1].numpy()

    def greedy(self, z) -> np.ndarray:
        """(N,) int64 flat actions: argmax of Q over the allowed set, ties to the lowest index."""
        q, m = self._forward(z)
        return masked_argmax(q, m).numpy().astype(np.int64)

    def action_probs(self, z, behaviour_probs: np.ndarray | None = None, epsilon: float = 0.0) -> np.ndarray:
        """(N, 25) = (1 - eps) onehot(greedy) + eps * behaviour_probs."""
        if not 0.0 <= epsilon <= 1.0:
            raise InputError(f"epsilon must lie in [0, 1], got {epsilon}")
        g = self.greedy(z)
        out = np.zeros((len(g), N_ACTIONS), dtype=np.float64)
        out[np.arange(len(g)), g] = 1.0
        if epsilon > 0:
            if behaviour_probs is None:
                raise InputError("action_probs: epsilon > 0 needs behaviour_probs (N, 25)")
            b = np.asarray(behaviour_probs, dtype=np.float64)
            if b.shape != out.shape:
                raise InputError(f"behaviour_probs must have shape {out.shape}, got {b.shape}")
            out = (1.0 - epsilon) * out + epsilon * b
        return out


def list_runs(models_dir: str | Path) -> list[RunRecord]:
    """Every training run under ``models_dir`` (the train stage's output, e.g. models/train)."""
    models_dir = Path(models_dir)
    man = models_dir / MANIFEST
    if man.exists():
        entries = json.loads(man.read_text())["runs"]
        dirs = [models_dir / e["run_dir"] for e in entries]
    else:
        dirs = sorted(p.parent for p in models_dir.glob(f"runs/*/{RUN_FILE}"))
    if not dirs:
        raise InputError(f"{models_dir}: no training runs found (run the train stage first)")
    out = []
    for rd in dirs:
        r = _read_run(rd)
        out.append(RunRecord(run_id=r["run_id"], algorithm=r["algorithm"], mixer=r.get("mixer"),
                             augment=r.get("augment"), tau=float(r["tau"]), seed=int(r["seed"]),
                             steps=list(r["steps"]), run_dir=rd,
                             extra={"steps_per_s": r.get("steps_per_s"), "dynamics": r.get("dynamics")}))
    return out


@torch.no_grad()
def greedy_matrix(run_dir: str | Path, z, row_chunk: int = 16384, only_steps=None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy actions of every checkpoint of a run: (steps (C,), actions (C, N) int64); with ``only_steps``,
    of those checkpoints only (steps the run does not have are left out).

    The stacked checkpoint file is read once; each checkpoint's parameters are swapped into one network
    (torch.func.functional_call, no copies) and applied to the states in large row blocks. (A vmap over
    the checkpoint axis was measured slower on CPU: batched matmuls lose to plain ones here.)
    """
    from torch.func import functional_call

    rec, steps, params = load_checkpoints(run_dir)
    zt = _as_tensor(z)
    if zt.shape[1] != rec["d"]:
        raise InputError(f"states have {zt.shape[1]} columns, run {rec['run_id']} was trained on d={rec['d']}")
    net = build_net(rec["algorithm"], rec["d"], rec["config"]).eval()
    keep = np.arange(len(steps)) if only_steps is None else \
        np.flatnonzero(np.isin(np.asarray(steps), np.asarray(list(only_steps), np.int64)))
    steps = np.asarray(steps)[keep] if only_steps is not None else steps
    out = np.empty((len(keep), zt.shape[0]), dtype=np.int64)
    for j, c in enumerate(keep):
        pc = {k: v[c] for k, v in params.items()}
        for r0 in range(0, zt.shape[0], row_chunk):
            q, m = functional_call(net, pc, (zt[r0:r0 + row_chunk],))
            out[j, r0:r0 + row_chunk] = masked_argmax(q, m).numpy()
    return steps, out
