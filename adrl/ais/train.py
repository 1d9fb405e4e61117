"""Fit the AIS encoder (method.md 2.3): masked Gaussian NLL of o_{t+1}, Adam, early stopping on validation.

Loss of a batch of B stays: (1/B) sum_i sum_{t=0}^{L_i-2} 1/2 ||o_{i,t+1} - o_hat_{i,t+1}||^2 (identity
covariance, constant dropped); padded steps and each stay's last real step are masked. Curves and the
reported NLLs are per transition (the same sum divided by the number of transitions), so train, validation
and the carry-forward baseline (o_hat_{t+1} = o_t) are on one scale. Fitted on `train`, early-stopped on
`val` (the best epoch's weights are kept), then frozen.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, EmptyResultError
from ..progress import Progress
from ..schemas import OBS_COLS
from .data import Padded, to_padded, validate_trajectories
from .encoder import AisEncoder
from .model import N_OBS, AisNet
from .params import AisParams

log = logging.getLogger("adrl.ais")


@dataclass
class FitResult:
    encoder: AisEncoder
    history: pd.DataFrame                    # epoch, train_nll, val_nll (per transition)
    metrics: dict                            # best epoch, NLLs, naive baseline, timing, counts
    per_feature: pd.DataFrame = field(default_factory=pd.DataFrame)  # validation MSE per observation


@contextlib.contextmanager
def torch_settings(threads: int, deterministic: bool = True):
    """Thread count and deterministic algorithms for the duration of a fit, restored afterwards."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def naive_sums(p: Padded) -> tuple[np.ndarray, int]:
    """Carry-forward baseline o_hat_{t+1} = o_t: per-feature sums of squared error and the transition count."""
    o = p.x[:, :, :N_OBS].astype(np.float64)
    mask = np.arange(o.shape[1] - 1)[None, :] < (p.length[:, None] - 1)
    err = (o[:, 1:] - o[:, :-1]) ** 2 * mask[..., None]
    return err.sum((0, 1)), int(mask.sum())


@torch.no_grad()
def model_sums(net: AisNet, p: Padded, batch_size: int = 1024) -> tuple[np.ndarray, int]:
    """The model's per-feature sums of squared error of o_{t+1} and the transition count."""
    sums = np.zeros(N_OBS)
    count = 0
    for i in range(0, len(p.length), batch_size):
        x, a, m = _batch(p, slice(i, i + batch_size))
        err = _sq_err(net, x, a, m)
        sums += err.sum((0, 1)).double().numpy()
        count += int(m.sum())
    return sums, count


def fit_encoder(df: pd.DataFrame, params: AisParams, where: str = "trajectory table",
                progress: bool | None = None, require_splits=("train", "val")) -> FitResult:
    """Validate the table, fit on `train` with early stopping on `val`, return the frozen encoder.

    ``require_splits``: splits that must hold at least one stay (the stage asks for all three)."""
    validate_trajectories(df, where, require_splits=tuple(dict.fromkeys(("train", "val", *require_splits))))
    p = to_padded(df)
    train, val = p.subset(p.split == "train"), p.subset(p.split == "val")
    for name, part in (("train", train), ("val", val)):
        if part.n_transitions == 0:
            raise EmptyResultError(f"{where}: split {name!r} has no transitions (every stay has one step)")
    with torch_settings(params.threads):
        return _fit(p, train, val, params, progress)


def _fit(p: Padded, train: Padded, val: Padded, params: AisParams, progress) -> FitResult:
    t0 = time.time()
    torch.manual_seed(params.seed)
    gen = torch.Generator().manual_seed(params.seed)
    net = AisNet(params.rnn, params.latent_dim, params.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=params.lr)
    naive_val, n_val = naive_sums(val)
    naive_train, n_train = naive_sums(train)
    naive_val_nll = 0.5 * naive_val.sum() / n_val
    log.info("AIS: %d train stays (%d transitions), %d val stays (%d transitions); carry-forward val NLL %.4f",
             len(train.length), n_train, len(val.length), n_val, naive_val_nll)

    rows = []
    best_nll, best_epoch, best_state = np.inf, 0, None
    bar = Progress(total=params.max_epochs, desc="encode: AIS", unit="epochs", logger=log, enabled=progress)
    t_epochs = time.time()
    for epoch in range(1, params.max_epochs + 1):
        net.train()
        total = 0.0
        perm = torch.randperm(len(train.length), generator=gen).numpy()
        for i in range(0, len(perm), params.batch_size):
            idx = np.sort(perm[i:i + params.batch_size])
            x, a, m = _batch(train, idx)
            sse = _sq_err(net, x, a, m).sum()
            loss = 0.5 * sse / len(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += 0.5 * float(sse.detach())
        net.eval()
        val_sums, _ = model_sums(net, val)
        val_nll = 0.5 * val_sums.sum() / n_val
        rows.append((epoch, total / n_train, val_nll))
        if val_nll < best_nll:
            best_nll, best_epoch = val_nll, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        bar.set_postfix(train_nll=f"{total / n_train:.4f}", val_nll=f"{val_nll:.4f}", best_epoch=best_epoch)
        bar.update()
        log.debug("epoch %d: train NLL %.4f, val NLL %.4f", epoch, total / n_train, val_nll)
        if epoch - best_epoch >= params.patience:
            break
    bar.close()
    epoch_seconds = time.time() - t_epochs
    if best_state is None:
        raise ConfigError(f"ais: the validation NLL was never finite in {len(rows)} epoch(s) (training diverged); "
                          f"lower ais.lr (now {params.lr})")
    net.load_state_dict(best_state)
    net.eval()
    history = pd.DataFrame(rows, columns=["epoch", "train_nll", "val_nll"])

    val_sums, _ = model_sums(net, val)
    train_sums, _ = model_sums(net, train)
    per_feature = pd.DataFrame({"feature": pd.Series(list(OBS_COLS), dtype=object), "ais_val_mse": val_sums / n_val,
                                "naive_val_mse": naive_val / n_val})
    seconds = time.time() - t0
    metrics = {
        "best_epoch": best_epoch,
        "epochs_run": len(rows),
        "stopped_early": len(rows) < params.max_epochs,
        # early stopping decided (patience epochs without improvement), not the epoch cap
        "converged": len(rows) - best_epoch >= params.patience,
        "max_epochs": params.max_epochs,
        "patience": params.patience,
        "val_nll": float(0.5 * val_sums.sum() / n_val),
        "train_nll": float(0.5 * train_sums.sum() / n_train),
        "naive_val_nll": float(naive_val_nll),
        "naive_train_nll": float(0.5 * naive_train.sum() / n_train),
        "val_nll_ratio_to_naive": float(val_sums.sum() / naive_val.sum()),
        "val_mse": float(val_sums.sum() / (n_val * N_OBS)),
        "naive_val_mse": float(naive_val.sum() / (n_val * N_OBS)),
        "beats_naive": bool(val_sums.sum() < naive_val.sum()),
        "seconds": seconds,
        "seconds_per_epoch": epoch_seconds / len(rows),
        "threads": torch.get_num_threads(),
        "n_stays": {s: int((p.split == s).sum()) for s in ("train", "val", "test")},
        "n_transitions": {"train": n_train, "val": n_val},
    }
    log.info("AIS: best epoch %d of %d, val NLL %.4f vs carry-forward %.4f (%.1f s, %.3f s/epoch)",
             best_epoch, len(rows), metrics["val_nll"], naive_val_nll, seconds, metrics["seconds_per_epoch"])
    if not metrics["converged"]:
        log.warning("AIS: stopped at the epoch cap (ais.max_epochs=%d) with the best epoch %d within ais.patience=%d "
                    "of it: the encoder was still improving; raise ais.max_epochs", params.max_epochs, best_epoch,
                    params.patience)
    training = {"params": params.model_dump(), "torch": torch.__version__, **metrics}
    encoder = AisEncoder.from_net(net, params.hidden, training)
    return FitResult(encoder, history, metrics, per_feature)


def _batch(p: Padded, idx):
    """Tensors for stays ``idx``, trimmed to their longest stay: x, actions, transition mask (B, T-1)."""
    length = p.length[idx]
    T = int(length.max())
    x = torch.from_numpy(np.ascontiguousarray(p.x[idx, :T]))
    a = torch.from_numpy(np.ascontiguousarray(p.action[idx, :T]))
    m = torch.from_numpy(np.arange(T - 1)[None, :] < (length[:, None] - 1))
    return x, a, m


def _sq_err(net: AisNet, x: torch.Tensor, a: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Masked squared error (B, T-1, 33) of o_hat_{t+1} = Dec(z_t, A_t = action of row t+1)."""
    z, _ = net.encode(x, a)
    pred = net.decode(z[:, :-1], a[:, 1:])
    return (pred - x[:, 1:, :N_OBS]) ** 2 * m[..., None]
