"""The onset-anchored time grid (cohort.md 3.6) and the per-bin dense arrays of concept values.

Times are int64 seconds since the epoch throughout (shifted MIMIC times fit; no nanosecond overflow).
Bin k of a stay covers [g0 + k*B, g0 + (k+1)*B) with g0 = onset - before_onset_h - margin_h. The grid
computed internally spans k = kmin .. kmax-1, wider than the trajectory window 0 .. K-1 when the sepsis
window reaches further (SOFA only). Records earlier than kmin enter only through a "pre" slot (j = 0)
that holds the last earlier bin's aggregate, so hold rules can reach the first bin.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

H = 3600


def to_seconds(x) -> np.ndarray:
    """datetime-like Series/array -> float64 seconds since epoch (NaN for NaT)."""
    a = pd.to_datetime(pd.Series(x) if not isinstance(x, pd.Series) else x)
    out = a.to_numpy(dtype="datetime64[s]").astype(np.int64).astype(np.float64)
    out[a.isna().to_numpy()] = np.nan
    return out


@dataclass(frozen=True)
class GridSpec:
    bin_s: int
    K: int                 # trajectory bins 0 .. K-1
    kmin: int              # first bin computed (<= 0)
    kmax: int              # one past the last bin computed (>= K)
    lead_s: int            # onset - g0
    sepsis_k: tuple        # bins [a, b) of the Sepsis-3 SOFA window

    @classmethod
    def from_params(cls, p) -> "GridSpec":
        w = p.resolved_window()
        b = p.window.bin_h
        m = w["margin_h"]
        lead = p.window.before_onset_h + m
        K = (p.window.before_onset_h + p.window.after_onset_h + 2 * m) // b
        a = math.floor((lead - w["sepsis_window_before_h"] - m) / b)
        z = math.ceil((lead + w["sepsis_window_after_h"] + m) / b)
        return cls(bin_s=b * H, K=int(K), kmin=min(0, a), kmax=max(int(K), z), lead_s=lead * H,
                   sepsis_k=(a, z))

    @property
    def nj(self) -> int:
        """Dense slots per stay: the pre slot plus kmin .. kmax-1."""
        return self.kmax - self.kmin + 1

    def k_of_slot(self) -> np.ndarray:
        return np.arange(self.kmin - 1, self.kmax)

    def bin_start(self, g0: np.ndarray) -> np.ndarray:
        """[S, nj] start of each slot's bin (seconds)."""
        return g0[:, None] + self.k_of_slot()[None, :].astype(np.float64) * self.bin_s


def dense_aggregate(s: np.ndarray, t: np.ndarray, c: np.ndarray, v: np.ndarray, g0: np.ndarray,
                    grid: GridSpec, n_concepts: int):
    """Aggregate long records into dense [S, nj, C] arrays.

    Returns (mean, last_value, last_time, vmax, count). Records at or after the end of bin kmax-1 are
    ignored; records before kmin go to the pre slot, keeping only their latest bin per stay and concept.
    """
    S, nj, C = len(g0), grid.nj, n_concepts
    shape = (S, nj, C)
    k = np.floor((t - g0[s]) / grid.bin_s).astype(np.int64)
    keep = k < grid.kmax
    s, t, c, v, k = s[keep], t[keep], c[keep], v[keep], k[keep]
    pre = k < grid.kmin
    if pre.any():
        key = s[pre] * C + c[pre]
        latest = np.full(S * C, np.iinfo(np.int64).min)
        np.maximum.at(latest, key, k[pre])
        drop = np.zeros(len(k), bool)
        drop[np.flatnonzero(pre)] = k[pre] < latest[key]
        keepp = ~drop
        s, t, c, v, k = s[keepp], t[keepp], c[keepp], v[keepp], k[keepp]
        k = np.maximum(k, grid.kmin - 1)
    j = k - (grid.kmin - 1)
    flat = (s * nj + j) * C + c
    n = S * nj * C
    cnt = np.bincount(flat, minlength=n)
    tot = np.bincount(flat, weights=v, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    order = np.lexsort((t, flat))
    fs = flat[order]
    last = np.r_[fs[1:] != fs[:-1], True] if len(fs) else np.zeros(0, bool)
    lastv = np.full(n, np.nan)
    lastt = np.full(n, np.nan)
    lastv[fs[last]] = v[order][last]
    lastt[fs[last]] = t[order][last]
    vmax = np.full(n, -np.inf)
    if len(flat):
        np.maximum.at(vmax, flat, v)
    vmax[cnt == 0] = np.nan
    return (mean.reshape(shape), lastv.reshape(shape), lastt.reshape(shape), vmax.reshape(shape),
            cnt.reshape(shape))


def ffill_index(has: np.ndarray) -> np.ndarray:
    """For [S, nj, ...] boolean `has`, the index along axis 1 of the latest True at or before j (-1: none)."""
    idx = np.where(has, np.arange(has.shape[1]).reshape((1, -1) + (1,) * (has.ndim - 2)), -1)
    return np.maximum.accumulate(idx, axis=1)


def take_ffill(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    out = np.take_along_axis(a, np.clip(idx, 0, None), axis=1)
    return np.where(idx >= 0, out, np.nan)


def hold(value: np.ndarray, last_t: np.ndarray, bin_start: np.ndarray, hold_s: np.ndarray):
    """Sample-and-hold (cohort.md 3.9): a bin without a value takes the latest earlier bin's value when that
    bin's last raw record is at most ``hold_s`` (per concept) before the start of the current bin."""
    idx = ffill_index(~np.isnan(value))
    v = take_ffill(value, idx)
    lt = take_ffill(last_t, idx)
    ok = (bin_start[:, :, None] - lt) <= hold_s[None, None, :]
    return np.where(ok, v, np.nan)


def ffill_unlimited(value: np.ndarray) -> np.ndarray:
    return take_ffill(value, ffill_index(~np.isnan(value)))
