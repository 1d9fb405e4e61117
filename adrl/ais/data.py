"""Trajectory table -> padded arrays for the AIS encoder, with the input checks of the `encode` stage.

Time alignment (method.md 2.2): row t holds o_t and the action of window t. The encoder reads
x_t = [o_t, c_t, onehot(action_t)]; the decoder predicts o_{t+1} from [z_t, onehot(action_{t+1})].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..actions import N_ACTIONS, N_VASO
from ..errors import EmptyResultError, InputError
from ..schemas import DEMOG_COLS, OBS_COLS, SPLITS, require_columns

INPUT_COLUMNS: tuple[str, ...] = OBS_COLS + DEMOG_COLS   # the 38 encoder features, in this order
ID_COLUMNS = ("subject_id", "icustay_id", "traj", "step", "split")
ACTION_COLUMNS = ("fluid_bin", "vaso_bin", "action")
REQUIRED_COLUMNS: tuple[str, ...] = ID_COLUMNS + INPUT_COLUMNS + ACTION_COLUMNS + ("reward", "done")


@dataclass
class Padded:
    """Stays as padded arrays: N stays x T steps (T = the longest stay)."""

    x: np.ndarray          # (N, T, 38) float32, o: then m: columns; 0 on padding
    action: np.ndarray     # (N, T) int64 flat action of the row; 0 on padding
    length: np.ndarray     # (N,) int64
    split: np.ndarray      # (N,) object: train / val / test
    row_traj: np.ndarray   # (rows,) index 0..N-1 of each table row's stay
    row_step: np.ndarray   # (rows,) step of each table row

    def subset(self, which: np.ndarray) -> "Padded":
        idx = np.flatnonzero(which)
        T = int(self.length[idx].max()) if len(idx) else 0
        return Padded(self.x[idx, :T], self.action[idx, :T], self.length[idx], self.split[idx],
                      np.empty(0, np.int64), np.empty(0, np.int64))

    @property
    def n_transitions(self) -> int:
        return int(np.maximum(self.length - 1, 0).sum())


def validate_trajectories(df: pd.DataFrame, where: str, require_splits=()) -> None:
    """Raise InputError / EmptyResultError naming the file, column, rows or split that is wrong."""
    require_columns(df.columns, REQUIRED_COLUMNS, where)
    if len(df) == 0:
        raise EmptyResultError(f"{where}: the trajectory table has no rows")
    for c in INPUT_COLUMNS:
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(np.float64, na_value=np.nan)
        bad = ~np.isfinite(v)
        if bad.any():
            first = df.loc[bad, ["traj", "step"]].iloc[0]
            raise InputError(f"{where}: column {c!r} has {int(bad.sum())} row(s) with NaN or infinite values "
                             f"(first at traj {first['traj']}, step {first['step']}); o:/m: columns must be "
                             "imputed and normalised by the cohort stage")
    for c in ("traj", "step") + ACTION_COLUMNS:
        if df[c].isna().any():
            raise InputError(f"{where}: column {c!r} has {int(df[c].isna().sum())} missing value(s)")
    traj = df["traj"].to_numpy(np.int64)
    step = df["step"].to_numpy(np.int64)
    if (np.diff(traj) < 0).any():
        raise InputError(f"{where}: rows must be sorted by (traj, step); traj decreases at "
                         f"{int((np.diff(traj) < 0).sum())} place(s)")
    start = np.r_[True, traj[1:] != traj[:-1]]
    expect = np.arange(len(step)) - np.maximum.accumulate(np.where(start, np.arange(len(step)), 0))
    if (step != expect).any():
        i = int(np.flatnonzero(step != expect)[0])
        raise InputError(f"{where}: steps must run 0, 1, ..., L-1 within each traj, sorted; traj {traj[i]} has "
                         f"step {step[i]} where {expect[i]} was expected ({int((step != expect).sum())} row(s) off)")
    a = df["action"].to_numpy(np.int64)
    f = df["fluid_bin"].to_numpy(np.int64)
    vb = df["vaso_bin"].to_numpy(np.int64)
    bad = (a < 0) | (a >= N_ACTIONS) | (a != N_VASO * f + vb) | (f < 0) | (vb < 0) | (vb >= N_VASO)
    if bad.any():
        raise InputError(f"{where}: columns 'action', 'fluid_bin', 'vaso_bin': {int(bad.sum())} row(s) where action "
                         f"is not 5*fluid_bin + vaso_bin in 0..{N_ACTIONS - 1}")
    last = np.r_[traj[1:] != traj[:-1], True]
    done = df["done"].to_numpy(bool)
    if (done != last).any():
        raise InputError(f"{where}: column 'done' must be true exactly on each traj's last row; "
                         f"{int((done != last).sum())} row(s) disagree")
    split = df["split"].astype(object).to_numpy()
    unknown = sorted({str(s) for s in pd.unique(split)} - set(SPLITS))
    if unknown:
        raise InputError(f"{where}: column 'split' has value(s) {unknown}; allowed: {list(SPLITS)}")
    first_split = split[np.flatnonzero(start)]
    mixed = (split != np.repeat(first_split, np.diff(np.r_[np.flatnonzero(start), len(split)])))
    if mixed.any():
        raise InputError(f"{where}: column 'split' changes within a traj ({int(mixed.sum())} row(s))")
    present = set(first_split)
    for s in require_splits:
        if s not in present:
            raise EmptyResultError(f"{where}: split {s!r} has no stays (column 'split'); encode needs stays "
                                   f"in {list(require_splits)} (fit on 'train', early stopping on 'val')")


def to_padded(df: pd.DataFrame) -> Padded:
    """The (already validated) table as padded arrays; rows keep their order through row_traj/row_step."""
    traj = df["traj"].to_numpy(np.int64)
    step = df["step"].to_numpy(np.int64)
    start = np.r_[True, traj[1:] != traj[:-1]]
    row_traj = np.cumsum(start) - 1
    n = int(row_traj[-1]) + 1
    length = np.bincount(row_traj, minlength=n).astype(np.int64)
    T = int(length.max())
    x = np.zeros((n, T, len(INPUT_COLUMNS)), np.float32)
    x[row_traj, step] = df[list(INPUT_COLUMNS)].to_numpy(np.float32)
    action = np.zeros((n, T), np.int64)
    action[row_traj, step] = df["action"].to_numpy(np.int64)
    split = df["split"].astype(object).to_numpy()[start]
    return Padded(x, action, length, split, row_traj, step)
