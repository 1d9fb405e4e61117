"""Transitions from a states table (the encode -> train contract of adrl/schemas.py).

Row t of a stay holds z_t and the decision taken there (the action of row t+1), with the reward and
done flag of row t+1; the last row of a stay holds no decision. Every non-last row gives one transition
(z_t, decision_t, reward_t, z_{t+1}, done_t). Terminal next states are stored as zeros and never
bootstrapped (method.md 2.2).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..actions import N_ACTIONS, N_VASO
from ..errors import EmptyResultError, InputError
from ..schemas import STATES_DECISION_COLUMNS, STATES_ID_COLUMNS, infer_latent_dim, require_columns, z_columns

log = logging.getLogger("adrl.rl")


@dataclass(frozen=True)
class Transitions:
    """Arrays of one split: z (n, d) float32, a (n,) int64 flat action, r (n,) float32, z2, done (n,) float32;
    z2_full (optional): the real next state of every row, terminal rows included (z2 holds zeros there), read only by
    the dynamics model's next-state survival head."""

    z: np.ndarray
    a: np.ndarray
    r: np.ndarray
    z2: np.ndarray
    done: np.ndarray
    z2_full: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.a)

    @property
    def dim(self) -> int:
        return self.z.shape[1]

    @property
    def a_fluid(self) -> np.ndarray:
        return self.a // N_VASO

    @property
    def a_vaso(self) -> np.ndarray:
        return self.a % N_VASO

    def subset(self, idx) -> "Transitions":
        return Transitions(self.z[idx], self.a[idx], self.r[idx], self.z2[idx], self.done[idx],
                           None if self.z2_full is None else self.z2_full[idx])


def read_states(path: str | Path) -> pd.DataFrame:
    """Read a states table and check the contract's columns (InputError names the file and columns)."""
    df = read_states_file(path, missing_hint="run the encode stage first")
    validate_states(df, where=str(path))
    return df


def read_states_file(path: str | Path, missing_hint: str = "") -> pd.DataFrame:
    """Read a Parquet states file; a missing or unreadable file is an InputError naming it (no traceback)."""
    import pyarrow as pa

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: states file not found" + (f" ({missing_hint})" if missing_hint else ""))
    if path.is_dir() and not any(path.glob("*.parquet")):
        raise InputError(f"{path}: a directory without Parquet files, not a states file")
    try:
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable Parquet file ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160] if str(e) else 'unreadable'})") from None


def check_state_columns(df: pd.DataFrame, where: str = "states table") -> int:
    """The latent dimension d of z_0..z_{d-1}; text or non-finite values are InputErrors naming the first bad
    row (0-based position in the file) and column. Values are never printed (they may describe a patient)."""
    try:
        d = infer_latent_dim(df.columns)
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    for c in z_columns(d):
        col = df[c]
        if pd.api.types.is_bool_dtype(col.dtype) or not (pd.api.types.is_float_dtype(col.dtype)
                                                         or pd.api.types.is_integer_dtype(col.dtype)):
            num = pd.to_numeric(col, errors="coerce")
            bad = np.flatnonzero(num.isna().to_numpy() & col.notna().to_numpy())
            row = f"; first at row {int(bad[0])}" if len(bad) else ""
            raise InputError(f"{where}: column {c} holds {col.dtype} values, not numbers{row} "
                             f"(state columns z_0..z_{d - 1} must be float)")
    z = df[z_columns(d)].to_numpy(np.float64)
    bad = ~np.isfinite(z)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        r0 = int(rows[0])
        c0 = z_columns(d)[int(np.flatnonzero(bad[r0])[0])]
        kind = "NaN" if np.isnan(z[r0, z_columns(d).index(c0)]) else "infinite"
        raise InputError(f"{where}: row {r0}, column {c0}: {kind} state value ({len(rows)} row(s) with non-finite "
                         f"state values in z_0..z_{d - 1}); states must be finite")
    return d


def validate_states(df: pd.DataFrame, where: str = "states table") -> int:
    """Check columns and values; return the latent dimension d."""
    require_columns(df.columns, [*STATES_ID_COLUMNS, *STATES_DECISION_COLUMNS], where)
    d = check_state_columns(df, where)
    last = df["last"].to_numpy(bool)
    dec = df["decision"].to_numpy(np.int64)
    fl = df["decision_fluid"].to_numpy(np.int64)
    va = df["decision_vaso"].to_numpy(np.int64)
    live = ~last
    bad = live & ((dec < 0) | (dec >= N_ACTIONS))
    if bad.any():
        raise InputError(f"{where}: column 'decision' out of range [0, {N_ACTIONS - 1}] on {int(bad.sum())} "
                         f"non-last row(s), e.g. {sorted(set(dec[bad][:5].tolist()))}")
    bad = live & ((fl < 0) | (fl > 4) | (va < 0) | (va > 4) | (dec != fl * N_VASO + va))
    if bad.any():
        raise InputError(f"{where}: 'decision' != 5 * decision_fluid + decision_vaso (or a bin outside 0..4) "
                         f"on {int(bad.sum())} non-last row(s)")
    r = df["reward"].to_numpy(np.float64)
    if not np.isfinite(r[live]).all():
        raise InputError(f"{where}: column 'reward' has non-finite values")
    check_done_last(df, where)
    return d


def check_done_last(df: pd.DataFrame, where: str = "states table") -> None:
    """``done`` on row t says that row t+1 is the stay's last row: it must equal ``last`` on row t+1 (and be
    False on a last row). Otherwise training would bootstrap from an outcome row or stop a stay early."""
    order = np.lexsort((df["step"].to_numpy(np.int64), df["traj"].to_numpy(np.int64)))
    traj = df["traj"].to_numpy(np.int64)[order]
    step = df["step"].to_numpy(np.int64)[order]
    done = df["done"].to_numpy(bool)[order]
    last = df["last"].to_numpy(bool)[order]
    # row t has its next row (step t+1 of the same stay); a gap is reported by transitions()
    same = np.r_[(traj[1:] == traj[:-1]) & (step[1:] == step[:-1] + 1), False]
    nxt_last = np.r_[last[1:], False]
    bad = (same & (done != nxt_last)) | (last & done)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        row = int(order[i])
        if last[i]:
            why = "done is True on a last row (no decision is taken there, so nothing can end after it)"
        elif done[i]:
            why = "done is True but the next row of the stay is not its last row"
        else:
            why = "done is False but the next row of the stay is its last row"
        raise InputError(f"{where}: row {row}: {why}; 'done' on row t must equal 'last' on "
                         f"row t+1 ({int(bad.sum())} row(s) disagree)")


def transitions(df: pd.DataFrame, split: str, where: str = "states table") -> Transitions:
    """The transitions of one split (vectorised; rows are ordered by stay and step)."""
    d = validate_states(df, where)
    part = df[df["split"] == split]
    part = part.sort_values(["traj", "step"], kind="stable")
    traj = part["traj"].to_numpy(np.int64)
    step = part["step"].to_numpy(np.int64)
    last = part["last"].to_numpy(bool)
    idx = np.flatnonzero(~last)
    if len(idx) == 0:
        raise EmptyResultError(f"{where}: split '{split}' has no transitions "
                               f"({len(part)} row(s), all of them last rows of their stays)")
    nxt = idx + 1
    ok = nxt < len(part)
    ok[ok] &= (traj[nxt[ok]] == traj[idx[ok]]) & (step[nxt[ok]] == step[idx[ok]] + 1)
    if not ok.all():
        raise InputError(f"{where}: split '{split}': {int((~ok).sum())} non-last row(s) have no next row "
                         "(step t+1 of the same traj); every stay must be contiguous and end with last=True")
    z_all = part[z_columns(d)].to_numpy(np.float32)
    done = part["done"].to_numpy(bool)[idx]
    z2_full = np.ascontiguousarray(z_all[nxt])
    z2 = z2_full.copy()
    z2[done] = 0.0
    return Transitions(
        z=np.ascontiguousarray(z_all[idx]),
        a=part["decision"].to_numpy(np.int64)[idx],
        r=part["reward"].to_numpy(np.float32)[idx],
        z2=z2,
        done=done.astype(np.float32),
        z2_full=z2_full,
    )


def states_of(df: pd.DataFrame, split: str) -> np.ndarray:
    """All states z_t of a split (N, d), for evaluation."""
    d = infer_latent_dim(df.columns)
    return df.loc[df["split"] == split, z_columns(d)].to_numpy(np.float32)
